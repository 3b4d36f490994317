"""`tierscale:large:LargeTier`: hub and spoke, after pulumi/examples aws-py-hub-and-spoke-network.

  LargeTier
   ├─ RegionSpoke <region> (one per region)
   │    ├─ MediumTier (components.medium, imported), configured through its arguments
   │    │   (regional.region_stack: the region's cluster, namespace, models and placement;
   │    │   regional.serving_options: region label, S3 weights, canary revisions): the region's
   │    │   cluster (a new EksCluster with its own aws.Provider, or an existing cluster by
   │    │   kubeconfig context), its Kubernetes provider, add-ons, namespace, Secrets, serving
   │    │   workloads and model router
   │    ├─ ModelBucket (+ Replication on the primary), model-reader Pod Identity role
   │    ├─ KarpenterAws (IAM, SQS, EventBridge) + Karpenter Helm release + NodePools/EC2NodeClass
   │    └─ Istio VirtualServices (canary.routing: virtualservice)
   ├─ GlobalTraffic (hub: Route 53 or Global Accelerator, its own aws.Provider)
   └─ ApplicationSet (with large.gitops) on the primary region's cluster

Every regional Kubernetes object's Pulumi name starts with its region, so regions may share a
namespace.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components import karpenter
from components.large import gitops, regional, sizing, storage, traffic
from components.medium import k8s_resources
from components.medium.component import MediumTier, MediumTierArgs
from components.spec import ResolvedStack
from components.spec.model import Region


@dataclass
class LargeTierArgs:
    stack: ResolvedStack
    stack_name: str
    api_key: Optional[pulumi.Input[str]] = None
    hf_token: Optional[pulumi.Input[str]] = None


class RegionSpoke(pulumi.ComponentResource):
    def __init__(self, name: str, stack: ResolvedStack, region: Region, args: LargeTierArgs,
                 opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("tierscale:large:RegionSpoke", name, None, opts)
        large = stack.spec.large
        self.region = region
        self.stack = regional.region_stack(stack, region)
        self.namespace = sizing.namespace(region)
        self.discovery = f"{args.stack_name}-{region.name}"
        tags = {"tierscale:stack": args.stack_name, "tierscale:region": region.name, "managed-by": "pulumi"}
        on_eks = region.cluster == "eks"
        self.bucket_name = storage.bucket_name(args.stack_name, region.name) if on_eks and large.model_storage.enabled else None
        self.serving = regional.serving_options(region, self.stack, self.bucket_name, large.model_storage.prefix,
                                                large.canary)
        self.medium = MediumTier(name, MediumTierArgs(
            stack=self.stack, stack_name=self.discovery, api_key=args.api_key, hf_token=args.hf_token,
            resource_prefix=region.name, serving=self.serving, karpenter=False),  # its own, below
            opts=pulumi.ResourceOptions(parent=self))
        self.artifacts: dict[str, str] = dict(self.medium.artifacts)
        if self.serving.canaries:
            # The canary-vs-stable gates (regional.canary_gates) as a rule file for the region's
            # Prometheus (`promtool check rules` checks it).
            self.artifacts["canary/gates.rules.yaml"] = (
                "# Canary vs stable gates (components/migration/gates.py) for this region's Prometheus.\n"
                + yaml.safe_dump(regional.canary_gate_rules(self.stack, self.serving), sort_keys=False))
        in_ns = pulumi.ResourceOptions(parent=self, provider=self.medium.provider,
                                       depends_on=[self.medium.namespace_resource, self.medium.secret])
        extras: list[tuple[dict, pulumi.ResourceOptions]] = []
        self.bucket: Optional[storage.ModelBucket] = None
        self.karpenter: Optional[karpenter.KarpenterAws] = None
        self.karpenter_release: Optional[k8s.helm.v3.Release] = None
        if on_eks:
            eks = self.medium.eks
            aws_provider = eks.aws_provider
            if self.bucket_name:
                self.bucket = storage.ModelBucket(f"{name}-models", self.bucket_name, aws_provider, tags,
                                                  opts=pulumi.ResourceOptions(parent=self))
                self.reader = storage.model_reader(name, self.bucket, eks.cluster, self.namespace,
                                                   regional.MODEL_READER_SA, aws_provider, tags, self)
                extras.append((regional.model_reader_service_account(self.namespace), in_ns))
            self.karpenter = karpenter.KarpenterAws(f"{name}-karpenter", cluster=eks.cluster, discovery=self.discovery,
                                                    subnets=eks.private_subnets, provider=aws_provider, tags=tags,
                                                    opts=pulumi.ResourceOptions(parent=self))
            pin = karpenter.chart()
            # An OCI chart: the full oci:// reference and no repositoryOpts (karpenter.chart_reference).
            self.karpenter_release = k8s.helm.v3.Release(
                f"{name}-karpenter", name="karpenter", chart=karpenter.chart_reference(), version=pin.version,
                namespace=karpenter.NAMESPACE,
                values=karpenter.helm_values(eks.cluster_name, self.karpenter.queue.name),
                skip_await=False, atomic=True, timeout=900,
                opts=pulumi.ResourceOptions(parent=self, provider=self.medium.provider,
                                            depends_on=[self.karpenter.pod_identity, *self.karpenter.rules]))
            models = {m.name: m for m in stack.models}
            floor = sizing.floor_nodes(stack.spec, region, models) * stack.spec.gpu.per_node
            spot = large.karpenter.spot and all(v.spot for v in sizing.spot_verdicts(stack.spec, region, models))
            after_karpenter = pulumi.ResourceOptions(parent=self, provider=self.medium.provider,
                                                     depends_on=[self.karpenter_release])
            extras.append((karpenter.node_class(self.discovery, f"{self.discovery}-karpenter-node"[:64],
                                                sizing.node_volume_gib(region, models)), after_karpenter))
            for pool in karpenter.node_pools(floor, region.gpu_nodes * stack.spec.gpu.per_node, spot,
                                             sizing.instance_types(stack.spec, region), stack.gpu.product_label,
                                             large.karpenter):
                extras.append((pool, after_karpenter))
        for doc in regional.virtual_services(self.serving, self.namespace):
            extras.append((doc, in_ns))
        self.resources: list[pulumi.Resource] = []
        for i, (doc, opts) in enumerate(extras):
            if large.gitops is not None:
                meta = doc["metadata"]
                self.artifacts[f"gitops/{i:03d}-{doc['kind'].lower()}-{meta['name']}.yaml"] = yaml.safe_dump(doc, sort_keys=False)
            else:
                name_hint = "-".join(p for p in (region.name, meta_ns(doc), doc["kind"].lower(), doc["metadata"]["name"]) if p)
                self.resources.append(k8s_resources.register(doc, opts, name=name_hint))
        self.register_outputs({"namespace": self.namespace, "bucket": self.bucket_name})


def meta_ns(doc: dict) -> str:
    return doc["metadata"].get("namespace", "")


class LargeTier(pulumi.ComponentResource):
    def __init__(self, name: str, args: LargeTierArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("tierscale:large:LargeTier", name, None, opts)
        stack = args.stack
        spec, large = stack.spec, stack.spec.large
        primary = sizing.primary(spec)
        tags = {"tierscale:stack": args.stack_name, "managed-by": "pulumi"}
        self.spokes: dict[str, RegionSpoke] = {}
        for region in spec.target.regions:
            self.spokes[region.name] = RegionSpoke(f"{name}-{region.name}", stack, region, args,
                                                   opts=pulumi.ResourceOptions(parent=self))
        # Replication from the primary's bucket, on the primary's provider.
        source = self.spokes[primary.name].bucket
        others = [s.bucket for n, s in self.spokes.items() if n != primary.name and s.bucket is not None]
        if source is not None and others:
            storage.Replication(f"{name}-replication", source, others,
                                self.spokes[primary.name].medium.eks.aws_provider,
                                large.model_storage.replication_time_control, large.model_storage.prefix, tags,
                                opts=pulumi.ResourceOptions(parent=self))
        self.traffic = traffic.GlobalTraffic(f"{name}-global", large, spec.target.regions, primary.name, tags,
                                             opts=pulumi.ResourceOptions(parent=self))
        self.artifacts: dict[str, str] = {}
        for region, spoke in self.spokes.items():
            for rel, text in spoke.artifacts.items():
                self.artifacts[f"{region}/{rel}"] = text
        if large.gitops is not None:
            hub = self.spokes[primary.name]
            self.application_set = k8s_resources.register(
                gitops.application_set(args.stack_name, large.gitops, spec.target.regions),
                pulumi.ResourceOptions(parent=self, provider=hub.medium.provider,
                                       depends_on=[hub.medium.namespace_resource]), name=f"{name}-applicationset")
        # Which folder each Kubernetes object renders to: its cluster's provider decides. A
        # registered resource names its provider as `<provider URN>::<id>` (the engine's
        # provider reference); the URNs are learnt from the providers themselves.
        self._provider_region: dict[str, str] = {}
        for region, spoke in self.spokes.items():
            spoke.medium.provider.urn.apply(lambda urn, region=region: self._provider_region.setdefault(urn, region))
        self.report = report(stack)
        self.endpoint = f"https://{large.global_traffic.domain}/v1"
        self.register_outputs({"endpoint": self.endpoint, "regions": list(self.spokes)})

    def manifest_dir(self, registered) -> str:
        """build/<stack>/<region>/kubernetes/ for objects applied to a region's cluster."""
        provider = registered.provider or ""
        region = self._provider_region.get(provider.rsplit("::", 1)[0]) if provider else None
        return f"{region}/kubernetes" if region else "kubernetes"


def report(stack: ResolvedStack) -> dict:
    """What the configuration gives: failover vs RTO, N+1, spot per model, cold starts."""
    spec = stack.spec
    large = spec.large
    models = {m.name: m for m in stack.models}
    f = sizing.failover(large.global_traffic, large.topology)
    topo = sizing.facts.topology(large.topology)
    return {
        "topology": large.topology, "availabilityPct": topo.availability_pct,
        "failover": {"healthCheckS": f.detection_s, "dnsTtlS": f.dns_ttl_s, "totalS": f.total_s, "rtoS": f.rto_s,
                     "meetsRto": f.meets_rto, "via": large.global_traffic.kind, "basis": f.basis},
        "nPlusOne": {n.model: {"peakQps": n.peak_qps, "perRegionQps": {k: round(v, 1) for k, v in n.per_region_qps.items()},
                               "withoutLargestQps": round(n.without_largest_qps, 1), "largest": n.largest,
                               "holds": n.holds} for n in sizing.n_plus_one(spec, models)},
        "spot": {r.name: {v.model: {"spot": v.spot, "reason": v.reason} for v in sizing.spot_verdicts(spec, r, models)}
                 for r in spec.target.regions},
        "coldStart": {name: sizing.cold_start(m) for name, m in models.items()},
    }
