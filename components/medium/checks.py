"""Medium-tier rules (cluster and cloud facts) and the validators for what it renders.

Imports only the spec types and facts: the spec's resolver calls `problems` through the tier
registry before anything is rendered.
"""

from __future__ import annotations

import functools

from components.facts import gpu_catalog
from components.spec import aws_regions, kubernetes_rules
from components.spec.errors import Problem
from components.spec.model import EksNodeGroup, EksTarget, StackSpec

# StorageClass names whose volumes are ReadWriteOnce only: the EBS CSI driver's (gp3 is what
# the EKS target creates; gp2 is EKS's legacy default). A shared model cache needs RWX (EFS,
# NFS, CephFS, Filestore ...).
READ_WRITE_ONCE_CLASSES = ("gp2", "gp3", "io1", "io2", "st1", "sc1")


def _node_group(group: EksNodeGroup, where: str) -> list[Problem]:
    if not group.min_size <= group.desired_size <= group.max_size:
        return [Problem(f"{where}.desiredSize", f"minSize {group.min_size} <= desiredSize {group.desired_size} <= "
                        f"maxSize {group.max_size} does not hold (AWS rejects the node group)")]
    return []


def problems(spec: StackSpec) -> list[Problem]:
    out: list[Problem] = []
    target, plat = spec.target, spec.platform
    if hasattr(target, "namespace"):  # a target of another tier is reported by rules.py
        argocd = [plat.gitops.argocd_namespace] if plat.gitops else []
        out += kubernetes_rules.problems(spec, plat, "platform", [("target.namespace", target.namespace)], argocd)
    if isinstance(target, EksTarget):
        unknown = aws_regions.unknown_region(target.region)
        if unknown:
            out.append(Problem("target.region", unknown))
        out += _node_group(target.gpu_node_group, "target.gpuNodeGroup")
        out += _node_group(target.system_node_group, "target.systemNodeGroup")
        instances = {i.type: i for i in gpu_catalog()[spec.gpu.type].aws_instances}
        wanted = target.gpu_node_group.instance_type
        if wanted not in instances:
            allowed = ", ".join(f"{t} ({i.gpus} GPUs)" for t, i in instances.items()) or "none (no AWS instance has it)"
            out.append(Problem("target.gpuNodeGroup.instanceType",
                               f"{wanted!r} does not carry {spec.gpu.type} GPUs; instances with {spec.gpu.type}: {allowed}"))
        elif instances[wanted].gpus != spec.gpu.per_node:
            out.append(Problem("gpu.perNode", f"{spec.gpu.per_node} does not match {wanted}, which has "
                               f"{instances[wanted].gpus} {spec.gpu.type} GPUs: set gpu.perNode to {instances[wanted].gpus}"))
    cache = plat.model_cache
    shared = cache.shared if cache.shared is not None else not isinstance(target, EksTarget)
    storage_class = cache.storage_class or ("gp3" if isinstance(target, EksTarget) else None)
    if shared and storage_class in READ_WRITE_ONCE_CLASSES:
        out.append(Problem("platform.modelCache.shared",
                           f"a shared cache is one ReadWriteMany volume, but StorageClass {storage_class!r} (EBS) is "
                           "ReadWriteOnce only: set shared: false (a volume per pod) or a storageClass backed by EFS/NFS"))
    if not plat.kube_prometheus_stack.enabled and not plat.prometheus_url and any(m.autoscaling for m in spec.models):
        out.append(Problem("platform.prometheusUrl", "required when platform.kubePrometheusStack.enabled is false: "
                           "KEDA scales on a Prometheus query"))
    if isinstance(target, EksTarget) and plat.gpu_operator.enabled and plat.gpu_operator.driver:
        out.append(Problem("platform.gpuOperator.driver", (
            "true on EKS, whose GPU nodes run the EKS-optimized NVIDIA AMI with the driver installed; the GPU "
            "Operator's driver container does not start on a node that already has one (NVIDIA GPU Operator docs, "
            "\"Pre-installed NVIDIA GPU drivers\": install with driver.enabled=false): remove it (default: off on EKS)")))
    if plat.gpu_operator.mig_strategy != "none":
        out.append(Problem("platform.gpuOperator.migStrategy",
                           f"{plat.gpu_operator.mig_strategy!r} exposes MIG slices instead of whole GPUs, but every model "
                           f"is planned and placed on whole {spec.gpu.type} GPUs (memory, tensorParallel); tierscale does "
                           "not plan MIG slices: allowed: none"))
    return out


def risks(spec: StackSpec) -> list[Problem]:
    """Legal but likely wrong (warnings: `validate --strict` fails on them)."""
    out = kubernetes_rules.risks(spec, spec.platform, "platform")
    if not spec.security.api_auth and spec.security.tls.hostname:
        out.append(Problem("security.apiAuth", (
            f"false while the API is published as {spec.security.tls.hostname}: anyone who reaches it can use the "
            "GPUs; set apiAuth: true (clients send the apiKey secret as a bearer token)")))
    return out


def validators(stack) -> list:
    from components.validate import registry as v

    # Manifests are checked against the Kubernetes version the stack targets.
    builtin = functools.partial(v.kubernetes_builtin, kubernetes_version=stack.kubernetes_version)
    checks = [builtin, v.kubernetes_crds, v.helm_values_keys, v.checkov]
    if stack.spec.monitoring.enabled:
        checks.append(v.metric_names)
    return checks
