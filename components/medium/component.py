"""`tierscale:medium:MediumTier`: models served on one Kubernetes cluster.

Order of operations, enforced with depends_on:
  cluster (existing kubeconfig, or a new EksCluster)
    -> Kubernetes provider
    -> platform add-ons (GPU Operator, KEDA, kube-prometheus-stack: Helm releases)
    -> namespace, Secret, workloads (which need the GPU device plugin)
    -> ScaledObjects (need KEDA's CRDs), ServiceMonitors/PrometheusRule (need the operator's CRDs)
With `platform.gitops`, the workloads are rendered for a Git repository instead and Pulumi
applies only the add-ons, the namespace, the Secrets and the Argo CD Application.

The large tier composes one MediumTier per region through MediumTierArgs (resource names,
labels, weights from S3, canary revisions: components/medium/options.py); nothing it
registers is rewritten afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import copy
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
import yaml

from components import karpenter
from components.medium import addons, autoscaling, efa, gitops, k8s_resources, manifests, monitoring, names, network
from components.medium.eks import EksCluster, EksClusterArgs
from components.medium import router
from components.medium import inference_pool
from components.medium.options import CANARY_SUFFIX, DEFAULT, TRACK, TRACK_LABEL, ServingOptions, canary_model
from components.spec import ResolvedStack
from components.spec.model import EksTarget, KubernetesTarget


@dataclass
class MediumTierArgs:
    """stack: the cluster's stack (the large tier passes each region as one, its target the
    region's cluster and namespace). resource_prefix: prepended to the Pulumi names of the
    Kubernetes objects (the large tier: the region, so regions may share a namespace); None
    keeps the medium names (`<namespace>-<kind>-<name>`). serving: labels, S3 weights,
    canaries (options.ServingOptions)."""

    stack: ResolvedStack
    stack_name: str
    api_key: Optional[pulumi.Input[str]] = None
    hf_token: Optional[pulumi.Input[str]] = None
    kubeconfig: Optional[pulumi.Input[str]] = None
    resource_prefix: Optional[str] = None
    serving: ServingOptions = DEFAULT
    # Karpenter grows a new EKS cluster's GPU capacity up to gpuNodeGroup.maxSize
    # (components/karpenter.py). The large tier installs its own per region (spot pools sized
    # from its regions) and passes False.
    karpenter: bool = True


def workload_manifests(stack: ResolvedStack, ns: str, options: ServingOptions = DEFAULT,
                       auth_sha256: Optional[Any] = None) -> list[dict]:
    """Everything per model plus routing and policies (the GitOps payload), in apply order."""
    docs = network.network_policies(stack, ns)
    for model in stack.models:
        docs += manifests.model_manifests(model, stack, ns, options)
    # One base URL for every model and the only way in: the entry point sends every path to the
    # model router.
    docs += router.router_manifests(stack, ns, options, auth_sha256)
    docs.append(network.entry_point(stack, ns))
    docs += inference_pool.manifests(stack, ns)  # KV-aware routing, [] when off
    return docs


def _relabelings(options: ServingOptions, canaried: bool) -> list[dict]:
    out = []
    if canaried:
        out.append({"sourceLabels": [f"__meta_kubernetes_pod_label_{monitoring._label_name(TRACK_LABEL)}"],
                    "targetLabel": TRACK, "action": "replace"})
    out += [{"action": "replace", "targetLabel": k, "replacement": v} for k, v in options.labels.items()]
    return out


def monitoring_manifests(stack: ResolvedStack, ns: str, options: ServingOptions = DEFAULT) -> list[dict]:
    """The medium tier's monitoring objects; with a canary, its Service's ServiceMonitor too,
    and on the model's both the pod label `tierscale.dev/track` as the series label `track`
    (the migration gates' selectors, components/migration/rollouts.py); the caller's labels on
    every series."""
    docs = monitoring.monitoring_manifests(stack, ns)
    by_name = {names.workload(m.name): m for m in stack.models}
    out = []
    for doc in docs:
        m = by_name.get(doc["metadata"]["name"]) if doc["kind"] == "ServiceMonitor" else None
        if m is None:
            out.append(doc)
            continue
        canary = options.canary_for(m.name)
        found = [(doc, False)]
        if canary is not None:
            c = monitoring.service_monitor(canary_model(m, canary), stack, ns)
            c["metadata"]["labels"][names.MODEL_LABEL] = m.name
            found.append((c, True))
        for d, _ in found:
            for ep in d["spec"]["endpoints"]:
                ep["relabelings"] = list(ep.get("relabelings", [])) + _relabelings(options, canary is not None)
            out.append(d)
    return out


def prometheus_values(values: dict, options: ServingOptions) -> dict:
    """kube-prometheus-stack values with the caller's labels as external labels (federation,
    remote write, alerts carry them)."""
    if not options.labels:
        return values
    out = copy.deepcopy(values)
    spec = out.setdefault("prometheus", {}).setdefault("prometheusSpec", {})
    spec["externalLabels"] = {**spec.get("externalLabels", {}), **options.labels}
    return out


class MediumTier(pulumi.ComponentResource):
    def _karpenter(self, name: str, stack: ResolvedStack, target: EksTarget, stack_name: str) -> list[dict]:
        """Karpenter for medium EKS: the AWS side, the Helm release and the GPU node pool. The
        managed node group keeps desiredSize nodes; Karpenter may add (maxSize - desiredSize)
        nodes of the same instance type, so placement's maxSize nodes exist when KEDA asks for
        them (issue 20 item 4). With EFA (a multi-node model) the nodes go to the EFA subnet
        and security group: Karpenter gives every interface of a node whose pods request
        vpc.amazonaws.com/efa the EFA type, but supports no placement group (AWS EKS user guide,
        device-management-efa)."""
        eks = self.eks
        assert eks is not None
        discovery = karpenter.discovery_name(stack_name)
        tags = {"tierscale:stack": stack_name, "managed-by": "pulumi"}
        efa_group = eks.efa_security_group
        self.karpenter = karpenter.KarpenterAws(
            f"{name}-karpenter", cluster=eks.cluster, discovery=discovery,
            subnets=eks.private_subnets[:1] if efa_group is not None else eks.private_subnets,
            security_groups=[efa_group] if efa_group is not None else None,
            provider=eks.aws_provider, tags=tags, opts=pulumi.ResourceOptions(parent=self))
        pin = karpenter.chart()
        self.karpenter_release = k8s.helm.v3.Release(
            f"{name}-karpenter", name="karpenter", chart=karpenter.chart_reference(), version=pin.version,
            namespace=karpenter.NAMESPACE, values=karpenter.helm_values(eks.cluster_name, self.karpenter.queue.name),
            skip_await=False, atomic=True, timeout=900,
            opts=pulumi.ResourceOptions(parent=self, provider=self.provider,
                                        depends_on=[self.karpenter.pod_identity, *self.karpenter.rules]))
        return karpenter.medium_manifests(target, stack.spec.gpu.per_node, stack.gpu.product_label, discovery)

    def __init__(self, name: str, args: MediumTierArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("tierscale:medium:MediumTier", name, None, opts)
        stack = args.stack
        target = stack.spec.target
        assert isinstance(target, (KubernetesTarget, EksTarget))
        ns = target.namespace
        plat = stack.platform
        self.artifacts: dict[str, str] = {}

        # --- cluster and provider ---------------------------------------------------------
        self.eks: Optional[EksCluster] = None
        if isinstance(target, EksTarget):
            self.eks = EksCluster(f"{name}-cluster", EksClusterArgs(target, stack.gpu.product_label, args.stack_name,
                                                                    efa_interfaces=efa.node_interfaces(stack)),
                                  opts=pulumi.ResourceOptions(parent=self))
            kubeconfig, context = self.eks.kubeconfig, None
            provider_deps = [self.eks.system_nodes, self.eks.gpu_nodes, self.eks.ebs_csi]
        else:
            kubeconfig, context, provider_deps = args.kubeconfig or target.kubeconfig, target.context, []
        # An explicit provider: never deploy to whatever cluster the ambient kubeconfig points
        # at by accident.
        self.provider = k8s.Provider(f"{name}-k8s", kubeconfig=kubeconfig, context=context,
                                     opts=pulumi.ResourceOptions(parent=self, depends_on=provider_deps))
        k8s_opts = pulumi.ResourceOptions(parent=self, provider=self.provider)

        # --- platform add-ons -------------------------------------------------------------
        self.releases: dict[str, k8s.helm.v3.Release] = {}
        storage: list[pulumi.Resource] = []
        if self.eks is not None:
            # EBS gp3 for model caches and Prometheus; WaitForFirstConsumer puts the volume in
            # the AZ where the pod was scheduled.
            storage.append(k8s.storage.v1.StorageClass(
                f"{name}-gp3", metadata={"name": manifests.EKS_STORAGE_CLASS, "labels": dict(names.PART_OF)},
                provisioner="ebs.csi.aws.com", parameters={"type": "gp3", "encrypted": "true"},
                volume_binding_mode="WaitForFirstConsumer", allow_volume_expansion=True, reclaim_policy="Delete",
                opts=k8s_opts))
        self.grafana_admin_password: Optional[pulumi.Output[str]] = None
        for addon in addons.addons(stack):
            plain = prometheus_values(addon.values, args.serving) if addon.chart_name == "kube-prometheus-stack" \
                else addon.values
            values: pulumi.Input[dict] = plain
            if addon.secret_paths:
                password = random.RandomPassword(f"{name}-{addon.release}-grafana-admin", length=32, special=False,
                                                 opts=pulumi.ResourceOptions(parent=self))
                self.grafana_admin_password = pulumi.Output.secret(password.result)
                values = addons.with_secret(plain, addon.secret_paths[0], self.grafana_admin_password)
            self.releases[addon.release] = k8s.helm.v3.Release(
                f"{name}-{addon.release}", name=addon.release, chart=addon.chart, version=addon.version,
                repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=addon.repo),
                namespace=addon.namespace, create_namespace=True, values=values,
                # Wait for the charts' workloads so CRDs and webhooks exist before our objects.
                skip_await=False, atomic=True, timeout=900,
                opts=pulumi.ResourceOptions(parent=self, provider=self.provider, depends_on=storage))
            # A values file per chart whose keys the `Helm values keys` validator can check. The
            # on-demand charts (LWS, EFA device plugin) have no upstream key list in ../shared;
            # their values (none / checked against components/facts/efa.yaml) are in
            # resources.json with the Release.
            if addons.has_key_list(addon):
                self.artifacts[f"helm/{addon.release}.values.yaml"] = (
                    f"# {addon.chart} {addon.version} from {addon.repo}, namespace {addon.namespace}\n"
                    + yaml.safe_dump(plain, sort_keys=False))
        all_addons = list(self.releases.values()) + storage
        self.karpenter: Optional[karpenter.KarpenterAws] = None
        self.karpenter_release: Optional[k8s.helm.v3.Release] = None
        node_pool_docs: list[dict] = []
        if (self.eks is not None and args.karpenter
                and karpenter.medium_growth_gpus(target, stack.spec.gpu.per_node) > 0):
            node_pool_docs = self._karpenter(name, stack, target, args.stack_name)

        prefix = args.resource_prefix

        def register(doc: dict, opts: pulumi.ResourceOptions) -> pulumi.CustomResource:
            meta = doc["metadata"]
            hint = None if prefix is None else "-".join(
                p for p in (prefix, meta.get("namespace"), doc["kind"].lower(), meta["name"]) if p)
            return k8s_resources.register(doc, opts, name=hint)

        # The GPU NodePool and EC2NodeClass (cluster-scoped, after Karpenter's CRDs): Pulumi
        # applies them in GitOps mode too, as the add-ons (the node role is Pulumi's).
        after_karpenter = pulumi.ResourceOptions(parent=self, provider=self.provider,
                                                 depends_on=[self.karpenter_release] if self.karpenter_release else [])
        self.node_pools = [register(doc, after_karpenter) for doc in node_pool_docs]

        # --- namespace and secrets --------------------------------------------------------
        self.namespace_resource = register(
            manifests.namespace(ns), pulumi.ResourceOptions(parent=self, provider=self.provider, depends_on=all_addons))
        in_ns = pulumi.ResourceOptions(parent=self, provider=self.provider,
                                       depends_on=[self.namespace_resource, *all_addons])
        secret_data = pulumi.Output.all(args.api_key, args.hf_token).apply(
            lambda v: {k: s for k, s in (("api-key", v[0]), ("hf-token", v[1])) if s})
        secret_prefix = ns if prefix is None else f"{prefix}-{ns}"
        self.secret = k8s.core.v1.Secret(
            f"{secret_prefix}-secret-{names.SECRET_NAME}",
            metadata={"name": names.SECRET_NAME, "namespace": ns, "labels": dict(names.PART_OF)},
            type="Opaque", string_data=pulumi.Output.secret(secret_data), opts=in_ns)
        # The model router's accepted keys, as SHA-256 digests in an nginx include
        # (model_router.auth_include), in their own Secret: mounted read-only into the router
        # pods only, never in the ConfigMap or in Git. Its digest on the pod template rolls the
        # router when the keys change (Pulumi mode; GitOps manifests cannot carry it).
        self.router_auth: Optional[k8s.core.v1.Secret] = None
        auth_sha256: Optional[pulumi.Output[str]] = None
        if router.auth_enabled(stack):
            include = pulumi.Output.from_input(args.api_key).apply(
                lambda key: router.auth_secret_data([key] if key else [])[router.AUTH_KEY])
            self.router_auth = k8s.core.v1.Secret(
                f"{secret_prefix}-secret-{router.AUTH_SECRET}",
                metadata={"name": router.AUTH_SECRET, "namespace": ns, "labels": router.labels()},
                type="Opaque", string_data=pulumi.Output.secret(include.apply(lambda t: {router.AUTH_KEY: t})),
                opts=in_ns)
            if plat.gitops is None:
                # A digest of digests: nothing to keep secret, and it must show in the diff.
                auth_sha256 = pulumi.Output.unsecret(include.apply(router.auth_checksum))

        # --- workloads ----------------------------------------------------------------------
        workloads = workload_manifests(stack, ns, args.serving, auth_sha256)
        scaled = autoscaling.scaled_objects(stack, ns)
        observed = monitoring_manifests(stack, ns, args.serving) if stack.spec.monitoring.enabled else []
        self.resources: list[pulumi.Resource] = []
        if plat.gitops is not None:
            # GitOps: Argo CD applies the workloads from Git; Pulumi owns what must not be in
            # Git (the Secret) and the Application itself.
            for i, doc in enumerate(workloads + scaled + observed):
                meta = doc["metadata"]
                self.artifacts[f"gitops/{i:03d}-{doc['kind'].lower()}-{meta['name']}.yaml"] = yaml.safe_dump(doc, sort_keys=False)
            self.application = register(gitops.application(stack, args.stack_name, ns), in_ns)
            self.resources.append(self.application)
        else:
            scalable = ("Deployment", "LeaderWorkerSet")
            deployments: dict[tuple[str, str], pulumi.Resource] = {}
            model_services: list[pulumi.Resource] = []
            for doc in workloads:
                autoscaled = doc["kind"] in scalable and any(
                    (s["spec"]["scaleTargetRef"]["kind"], s["spec"]["scaleTargetRef"]["name"])
                    == (doc["kind"], doc["metadata"]["name"]) for s in scaled)
                deps: list[pulumi.Resource] = [self.secret]
                if doc["kind"] == "Deployment" and doc["metadata"]["name"] == router.ROUTER_NAME:
                    # nginx resolves its upstreams (the models' Services) at start and needs
                    # the key digests: both exist before the router's pods.
                    deps += model_services + ([self.router_auth] if self.router_auth is not None else [])
                if doc["kind"] == "LeaderWorkerSet" and "lws" in self.releases:
                    deps.append(self.releases["lws"])  # the CRD and its webhook (explicit, too)
                # KEDA owns the replica count of autoscaled workloads; Pulumi must not reset it.
                opts = pulumi.ResourceOptions.merge(in_ns, pulumi.ResourceOptions(
                    depends_on=deps, ignore_changes=["spec.replicas"] if autoscaled else None))
                resource = register(doc, opts)
                if doc["kind"] == "Service" and doc["metadata"]["name"] != router.ROUTER_NAME:
                    model_services.append(resource)
                if doc["kind"] in scalable:
                    deployments[(doc["kind"], doc["metadata"]["name"])] = resource
                self.resources.append(resource)
            for doc in scaled:
                target = doc["spec"]["scaleTargetRef"]
                deps = [deployments[(target["kind"], target["name"])]]
                if "keda" in self.releases:
                    deps.append(self.releases["keda"])
                self.resources.append(register(doc, pulumi.ResourceOptions.merge(
                    in_ns, pulumi.ResourceOptions(depends_on=deps))))
            for doc in observed:
                self.resources.append(register(doc, in_ns))

        self.namespace = ns
        self.services = {m.served_model_name: f"{names.workload(m.name)}.{ns}.svc:8000" for m in stack.models}
        self.canary_services = {c.model: f"{names.workload(c.model + CANARY_SUFFIX)}.{ns}.svc:8000"
                                for c in args.serving.canaries}
        tls = stack.spec.security.tls
        host = tls.hostname or "<ingress address>"
        self.endpoint = f"{'https' if tls.enabled else 'http'}://{host}/v1"
        self.register_outputs({"namespace": ns, "services": self.services, "endpoint": self.endpoint,
                               "grafana_admin_password": self.grafana_admin_password})
