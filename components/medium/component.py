"""`tierscale:medium:MediumTier`: models served on one Kubernetes cluster.

Order of operations, enforced with depends_on:
  cluster (existing kubeconfig, or a new EksCluster)
    -> Kubernetes provider
    -> platform add-ons (GPU Operator, KEDA, kube-prometheus-stack: Helm releases)
    -> namespace, Secret, workloads (which need the GPU device plugin)
    -> ScaledObjects (need KEDA's CRDs), ServiceMonitors/PrometheusRule (need the operator's CRDs)
With `platform.gitops`, the workloads are rendered for a Git repository instead and Pulumi
applies only the add-ons, the namespace, the Secret and the Argo CD Application.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
import yaml

from components.medium import addons, autoscaling, efa, gitops, k8s_resources, manifests, monitoring, names, network
from components.medium.eks import EksCluster, EksClusterArgs
from components.medium import router
from components.spec import ResolvedStack
from components.spec.model import EksTarget, KubernetesTarget


@dataclass
class MediumTierArgs:
    stack: ResolvedStack
    stack_name: str
    api_key: Optional[pulumi.Input[str]] = None
    hf_token: Optional[pulumi.Input[str]] = None
    kubeconfig: Optional[pulumi.Input[str]] = None


def workload_manifests(stack: ResolvedStack, ns: str) -> list[dict]:
    """Everything per model plus routing and policies (the GitOps payload), in apply order."""
    docs = network.network_policies(stack, ns)
    for model in stack.models:
        docs += manifests.model_manifests(model, stack, ns)
    # One base URL for every model: the entry point's `/` goes to the model router.
    docs += router.router_manifests(stack, ns)
    docs.append(network.entry_point(stack, ns))
    return docs


class MediumTier(pulumi.ComponentResource):
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
            values: pulumi.Input[dict] = addon.values
            if addon.secret_paths:
                password = random.RandomPassword(f"{name}-{addon.release}-grafana-admin", length=32, special=False,
                                                 opts=pulumi.ResourceOptions(parent=self))
                self.grafana_admin_password = pulumi.Output.secret(password.result)
                values = addons.with_secret(addon.values, addon.secret_paths[0], self.grafana_admin_password)
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
                    + yaml.safe_dump(addon.values, sort_keys=False))
        all_addons = list(self.releases.values()) + storage

        # --- namespace and secrets --------------------------------------------------------
        self.namespace_resource = k8s_resources.register(
            manifests.namespace(ns), pulumi.ResourceOptions(parent=self, provider=self.provider, depends_on=all_addons))
        in_ns = pulumi.ResourceOptions(parent=self, provider=self.provider,
                                       depends_on=[self.namespace_resource, *all_addons])
        secret_data = pulumi.Output.all(args.api_key, args.hf_token).apply(
            lambda v: {k: s for k, s in (("api-key", v[0]), ("hf-token", v[1])) if s})
        self.secret = k8s.core.v1.Secret(
            f"{ns}-secret-{names.SECRET_NAME}",
            metadata={"name": names.SECRET_NAME, "namespace": ns, "labels": dict(names.PART_OF)},
            type="Opaque", string_data=pulumi.Output.secret(secret_data), opts=in_ns)

        # --- workloads ----------------------------------------------------------------------
        workloads = workload_manifests(stack, ns)
        scaled = autoscaling.scaled_objects(stack, ns)
        observed = monitoring.monitoring_manifests(stack, ns) if stack.spec.monitoring.enabled else []
        self.resources: list[pulumi.Resource] = []
        if plat.gitops is not None:
            # GitOps: Argo CD applies the workloads from Git; Pulumi owns what must not be in
            # Git (the Secret) and the Application itself.
            for i, doc in enumerate(workloads + scaled + observed):
                meta = doc["metadata"]
                self.artifacts[f"gitops/{i:03d}-{doc['kind'].lower()}-{meta['name']}.yaml"] = yaml.safe_dump(doc, sort_keys=False)
            self.application = k8s_resources.register(gitops.application(stack, args.stack_name, ns), in_ns)
            self.resources.append(self.application)
        else:
            scalable = ("Deployment", "LeaderWorkerSet")
            deployments: dict[tuple[str, str], pulumi.Resource] = {}
            for doc in workloads:
                autoscaled = doc["kind"] in scalable and any(
                    (s["spec"]["scaleTargetRef"]["kind"], s["spec"]["scaleTargetRef"]["name"])
                    == (doc["kind"], doc["metadata"]["name"]) for s in scaled)
                deps: list[pulumi.Resource] = [self.secret]
                if doc["kind"] == "LeaderWorkerSet" and "lws" in self.releases:
                    deps.append(self.releases["lws"])  # the CRD and its webhook (explicit, too)
                # KEDA owns the replica count of autoscaled workloads; Pulumi must not reset it.
                opts = pulumi.ResourceOptions.merge(in_ns, pulumi.ResourceOptions(
                    depends_on=deps, ignore_changes=["spec.replicas"] if autoscaled else None))
                resource = k8s_resources.register(doc, opts)
                if doc["kind"] in scalable:
                    deployments[(doc["kind"], doc["metadata"]["name"])] = resource
                self.resources.append(resource)
            for doc in scaled:
                target = doc["spec"]["scaleTargetRef"]
                deps = [deployments[(target["kind"], target["name"])]]
                if "keda" in self.releases:
                    deps.append(self.releases["keda"])
                self.resources.append(k8s_resources.register(doc, pulumi.ResourceOptions.merge(
                    in_ns, pulumi.ResourceOptions(depends_on=deps))))
            for doc in observed:
                self.resources.append(k8s_resources.register(doc, in_ns))

        self.namespace = ns
        self.services = {m.served_model_name: f"{names.workload(m.name)}.{ns}.svc:8000" for m in stack.models}
        tls = stack.spec.security.tls
        host = tls.hostname or "<ingress address>"
        self.endpoint = f"{'https' if tls.enabled else 'http'}://{host}/v1"
        self.register_outputs({"namespace": ns, "services": self.services, "endpoint": self.endpoint,
                               "grafana_admin_password": self.grafana_admin_password})
