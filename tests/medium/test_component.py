"""`tierscale:medium:MediumTier` resource graphs under Pulumi's mocks, for both cluster modes
(existing kubeconfig, new EKS) and GitOps."""

from __future__ import annotations

from collections import Counter

import pytest


def of_type(result, typ):
    return [r for r in result.resources if r.type == typ]


def one(result, typ):
    found = of_type(result, typ)
    assert len(found) == 1, f"{typ}: {len(found)}"
    return found[0]


def closure(result, resource) -> set[str]:
    """URNs `resource` waits for, directly or through its dependencies."""
    by_urn = {r.urn: r for r in result.resources}
    seen, todo = set(), list(resource.dependencies)
    while todo:
        urn = todo.pop()
        if urn in seen:
            continue
        seen.add(urn)
        if urn in by_urn:
            todo += by_urn[urn].dependencies
    return seen


@pytest.mark.parametrize("name", ["medium-prod", "medium-eks", "medium-gitops"])
def test_every_child_is_parented_and_kubernetes_uses_the_stack_provider(medium, name):
    result = medium[name]
    components = {r.urn: r for r in result.resources if r.type.startswith("tierscale:")}
    tier = one(result, "tierscale:medium:MediumTier")
    provider = one(result, "pulumi:providers:kubernetes")
    for r in result.resources:
        if r is not tier:
            assert r.parent in components, f"{r.type} {r.name} has no tierscale parent"
        if r.type.startswith("kubernetes:"):
            assert r.provider and r.provider.startswith(provider.urn + "::"), f"{r.name} must use the stack's provider"


@pytest.mark.parametrize("name", ["medium-prod", "medium-eks"])
def test_addons_come_before_workloads(medium, name):
    result = medium[name]
    # Karpenter (medium EKS, tests/medium/test_karpenter.py) is ordered on its own: node pools after it.
    releases = {r.urn for r in of_type(result, "kubernetes:helm.sh/v3:Release") if r.inputs["name"] != "karpenter"}
    assert len(releases) == 3
    workloads = [r for r in result.resources if r.type.startswith("kubernetes:")
                 and r.type != "kubernetes:helm.sh/v3:Release" and r.type != "kubernetes:storage.k8s.io/v1:StorageClass"
                 and not r.type.startswith("kubernetes:karpenter")]  # node objects: after Karpenter only
    assert workloads
    for r in workloads:
        assert releases <= closure(result, r), f"{r.name} does not wait for every add-on"
    namespace = one(result, "kubernetes:core/v1:Namespace")
    for r in workloads:
        if r is not namespace:
            assert namespace.urn in r.dependencies
    keda = next(r.urn for r in of_type(result, "kubernetes:helm.sh/v3:Release") if r.inputs["chart"] == "keda")
    deployments = {r.inputs["metadata"]["name"]: r.urn for r in of_type(result, "kubernetes:apps/v1:Deployment")}
    for so in of_type(result, "kubernetes:keda.sh/v1alpha1:ScaledObject"):
        assert keda in so.dependencies and deployments[so.inputs["spec"]["scaleTargetRef"]["name"]] in so.dependencies


def test_existing_cluster_mode(medium):
    result = medium["medium-prod"]
    provider = one(result, "pulumi:providers:kubernetes")
    assert provider.inputs["context"] == "prod-gpu"
    assert not [r for r in result.resources if r.type.startswith("aws:")]
    counts = Counter(r.type for r in result.resources)
    # Two models and the model router.
    assert counts["kubernetes:apps/v1:Deployment"] == 3 and counts["kubernetes:keda.sh/v1alpha1:ScaledObject"] == 2
    assert counts["kubernetes:core/v1:PersistentVolumeClaim"] == 2  # shared RWX caches off EKS
    gpu_operator = next(r for r in of_type(result, "kubernetes:helm.sh/v3:Release") if r.inputs["chart"] == "gpu-operator")
    assert gpu_operator.inputs["values"]["driver"]["enabled"] is True
    secrets = {r.inputs["metadata"]["name"]: r for r in of_type(result, "kubernetes:core/v1:Secret")}
    assert set(secrets) == {"tierscale-secrets", "tierscale-model-router-auth"}
    assert all(s.inputs["stringData"] == "[secret]" for s in secrets.values())
    # The router starts after the key digests and the models' Services it resolves exist.
    (router,) = [d for d in of_type(result, "kubernetes:apps/v1:Deployment")
                 if d.inputs["metadata"]["name"] == "tierscale-model-router"]
    services = {r.urn for r in of_type(result, "kubernetes:core/v1:Service")
                if r.inputs["metadata"]["name"].startswith("vllm-")}
    assert len(services) == 2 and services | {secrets["tierscale-model-router-auth"].urn} <= set(router.dependencies)
    assert result.outputs["endpoint"] == "https://llm.example.com/v1"
    assert result.outputs["grafanaAdminPassword"] == "[secret]"


def test_eks_mode(medium):
    result = medium["medium-eks"]
    eks = one(result, "tierscale:medium:EksCluster")
    karpenter = one(result, "tierscale:karpenter:KarpenterAws")  # grows the GPU nodes (test_karpenter.py)
    aws_provider = one(result, "pulumi:providers:aws")
    assert aws_provider.inputs["region"] == "us-east-1"
    for r in result.resources:
        if r.type.startswith("aws:"):
            assert r.parent in (eks.urn, karpenter.urn) and r.provider.startswith(aws_provider.urn + "::"), r.name
    counts = Counter(r.type for r in result.resources)
    assert counts["aws:ec2/subnet:Subnet"] == 6 and counts["aws:ec2/natGateway:NatGateway"] == 3  # 3 AZs
    azs = {s.inputs["availabilityZone"] for s in of_type(result, "aws:ec2/subnet:Subnet")}
    assert len(azs) == 3
    cluster = one(result, "aws:eks/cluster:Cluster")
    assert cluster.inputs["version"] == "1.30"
    groups = {r.name: r for r in of_type(result, "aws:eks/nodeGroup:NodeGroup")}
    gpu = groups["medium-eks-cluster-gpu"]
    assert gpu.inputs["instanceTypes"] == ["p5.48xlarge"] and gpu.inputs["amiType"] == "AL2023_x86_64_NVIDIA"
    assert gpu.inputs["taints"] == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"}]
    assert gpu.inputs["labels"]["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
    addons = {r.inputs["addonName"]: r for r in of_type(result, "aws:eks/addon:Addon")}
    assert set(addons) == {"aws-ebs-csi-driver", "eks-pod-identity-agent"}
    # The Kubernetes provider is built from the new cluster's kubeconfig and waits for the nodes.
    provider = one(result, "pulumi:providers:kubernetes")
    assert provider.inputs["kubeconfig"] == "[secret]"
    assert {g.urn for g in groups.values()} | {addons["aws-ebs-csi-driver"].urn} <= set(provider.dependencies)
    # EKS GPU AMIs ship the driver: the operator must not install another.
    gpu_operator = next(r for r in of_type(result, "kubernetes:helm.sh/v3:Release") if r.inputs["chart"] == "gpu-operator")
    assert gpu_operator.inputs["values"]["driver"]["enabled"] is False
    storage = one(result, "kubernetes:storage.k8s.io/v1:StorageClass")
    assert storage.inputs["provisioner"] == "ebs.csi.aws.com"
    # EBS is ReadWriteOnce: a per-pod ephemeral cache instead of a shared PVC.
    assert not of_type(result, "kubernetes:core/v1:PersistentVolumeClaim")
    (vllm,) = [d for d in of_type(result, "kubernetes:apps/v1:Deployment")
               if d.inputs["metadata"]["labels"]["app.kubernetes.io/component"] == "vllm"]
    volumes = vllm.inputs["spec"]["template"]["spec"]["volumes"]
    cache = next(v for v in volumes if v["name"] == "model-cache")
    assert cache["ephemeral"]["volumeClaimTemplate"]["spec"]["storageClassName"] == "gp3"
    assert result.outputs["kubeconfig"] == "[secret]"
    route = one(result, "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute")
    assert route.inputs["spec"]["parentRefs"][0]["sectionName"] == "https"


def test_gitops_mode_applies_the_application_not_the_workloads(medium):
    result = medium["medium-gitops"]
    assert not of_type(result, "kubernetes:apps/v1:Deployment")
    app = one(result, "kubernetes:argoproj.io/v1alpha1:Application")
    assert app.inputs["spec"]["source"]["repoURL"] == "https://git.example.com/platform/inference.git"
    assert app.inputs["spec"]["source"]["path"] == "clusters/prod/tierscale"
    # ignoreDifferences alone only hides the replicas diff; without RespectIgnoreDifferences
    # every sync would apply Git's replicas over KEDA's.
    assert {"group": "apps", "kind": "Deployment", "jsonPointers": ["/spec/replicas"]} in app.inputs["spec"]["ignoreDifferences"]
    assert "RespectIgnoreDifferences=true" in app.inputs["spec"]["syncPolicy"]["syncOptions"]
    # Secrets (the router's key digests too) stay with Pulumi, never in Git.
    assert len(of_type(result, "kubernetes:core/v1:Secret")) == 2
    files = sorted(p.name for p in (result.out_dir / "gitops").glob("*.yaml"))
    kinds = Counter(name.split("-")[1] for name in files)
    # Two models and the model router.
    assert kinds["deployment"] == 3 and kinds["scaledobject"] == 2 and kinds["secret"] == 0
