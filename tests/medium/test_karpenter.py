"""Issue 20 item 4: medium EKS grows its GPU nodes. The same Karpenter module as the large tier
(components/karpenter.py): Pod Identity controller role, node role with an EKS access entry,
interruption queue with its EventBridge rules, the chart as a full oci:// reference, and an
EC2NodeClass + NodePool whose GPU limit takes the cluster exactly to gpuNodeGroup.maxSize (the
node count placement plans with). Read from the Pulumi mock graph and the rendered manifests,
checked by the real validators."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from components import karpenter, paths
from components.medium.names import GPU_PRODUCT_LABEL, GPU_RESOURCE
from components.render import render_stack
from components.spec.fleet import fleet_for
from components.validate import registry
from tests.medium.conftest import EKS_405B

RELEASE = "kubernetes:helm.sh/v3:Release"
NODEPOOL = "kubernetes:karpenter.sh/v1:NodePool"
NODECLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"


@pytest.fixture(scope="module")
def eks(tmp_path_factory):
    return render_stack("medium-eks", tmp_path_factory.mktemp("karp") / "out")


@pytest.fixture(scope="module")
def eks_efa(tmp_path_factory):
    return render_stack("medium-eks", tmp_path_factory.mktemp("karp-efa") / "out", extra_config=EKS_405B)


def of_type(result, typ):
    return [r for r in result.resources if r.type == typ]


def one(result, typ):
    (r,) = of_type(result, typ)
    return r


def test_karpenter_is_installed_and_wired(eks):
    stack = eks.stack
    release = next(r for r in of_type(eks, RELEASE) if r.inputs["name"] == "karpenter")
    assert release.inputs["chart"] == "oci://public.ecr.aws/karpenter/karpenter" == karpenter.chart_reference()
    assert release.inputs["version"] == karpenter.chart().version and not release.inputs.get("repositoryOpts")
    assert release.inputs["namespace"] == karpenter.NAMESPACE
    # The controller's identity and the interruption queue exist before the controller.
    assoc = one(eks, "aws:eks/podIdentityAssociation:PodIdentityAssociation")
    assert (assoc.inputs["namespace"], assoc.inputs["serviceAccount"]) == (karpenter.NAMESPACE, karpenter.SERVICE_ACCOUNT)
    assert release.inputs["values"]["serviceAccount"]["name"] == karpenter.SERVICE_ACCOUNT
    rules = of_type(eks, "aws:cloudwatch/eventRule:EventRule")
    assert {r.inputs["eventPattern"] for r in rules} == {json.dumps(p) for p in karpenter.EVENT_RULES.values()}
    assert assoc.urn in release.dependencies and all(r.urn in release.dependencies for r in rules)
    assert one(eks, "aws:sqs/queue:Queue")
    # Nodes join through an access entry of the node role the EC2NodeClass names.
    node_class = one(eks, NODECLASS)
    role = next(r for r in of_type(eks, "aws:iam/role:Role") if r.inputs.get("name") == node_class.inputs["spec"]["role"])
    assert "ec2.amazonaws.com" in role.inputs["assumeRolePolicy"]
    assert one(eks, "aws:eks/accessEntry:AccessEntry").inputs["type"] == "EC2_LINUX"
    # Discovery: every private subnet and the cluster security group carry the tag the class selects.
    selector = node_class.inputs["spec"]["subnetSelectorTerms"][0]["tags"]
    tags = [t for t in of_type(eks, "aws:ec2/tag:Tag") if t.inputs["key"] == karpenter.DISCOVERY_TAG]
    assert {t.inputs["value"] for t in tags} == set(selector.values()) == {"medium-eks"}
    assert len(tags) == stack.spec.target.availability_zones + 1
    # The pools come after the controller (its CRDs).
    for r in (*of_type(eks, NODEPOOL), node_class):
        assert release.urn in r.dependencies


def test_the_node_pool_reaches_exactly_max_size_and_fits_the_vllm_pods(eks):
    stack = eks.stack
    group = stack.spec.target.gpu_node_group
    (pool,) = of_type(eks, NODEPOOL)
    spec = pool.inputs["spec"]
    per_node = stack.spec.gpu.per_node
    assert spec["limits"] == {GPU_RESOURCE: str((group.max_size - group.desired_size) * per_node)}
    # desiredSize managed nodes + what Karpenter may add == the nodes placement plans with.
    assert group.desired_size + int(spec["limits"][GPU_RESOURCE]) // per_node == group.max_size \
        == len(fleet_for(stack.spec).nodes)
    reqs = {r["key"]: r["values"] for r in spec["template"]["spec"]["requirements"]}
    assert reqs["node.kubernetes.io/instance-type"] == [group.instance_type]
    assert reqs["karpenter.sh/capacity-type"] == ["on-demand"]
    # A vLLM pod's nodeSelector and toleration match the nodes Karpenter makes.
    deployment = yaml.safe_load(next((eks.out_dir / "kubernetes").glob("*deployment-*-vllm-llama-70b.yaml")).read_text())
    pod = deployment["spec"]["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    assert pod["nodeSelector"].items() <= labels.items() and labels[GPU_PRODUCT_LABEL] == stack.gpu.product_label
    (taint,) = spec["template"]["spec"]["taints"]
    assert any(t["key"] == taint["key"] and t["operator"] == "Exists" for t in pod["tolerations"])


def test_nothing_to_grow_installs_nothing(tmp_path):
    config = yaml.safe_load((paths.STACKS_DIR / "Pulumi.medium-eks.yaml").read_text())["config"]
    config["tierscale:target"]["gpuNodeGroup"]["maxSize"] = config["tierscale:target"]["gpuNodeGroup"]["desiredSize"]
    config["tierscale:models"][0]["autoscaling"] = {"minReplicas": 2, "maxReplicas": 2}
    result = render_stack("medium-eks", tmp_path / "out", extra_config={
        "tierscale:target": json.dumps(config["tierscale:target"]),
        "tierscale:models": json.dumps(config["tierscale:models"])})
    assert not of_type(result, NODEPOOL) and not of_type(result, "tierscale:karpenter:KarpenterAws")


def test_efa_nodes_stay_in_the_efa_subnet_and_group(eks_efa):
    tags = [t for t in of_type(eks_efa, "aws:ec2/tag:Tag") if t.inputs["key"] == karpenter.DISCOVERY_TAG]
    subnets = [t for t in tags if "subnet" in t.name]
    groups = [t for t in tags if "-sg" in t.name]
    assert len(subnets) == 1  # the managed EFA node group's subnet: EFA traffic stays in one subnet
    assert len(groups) == 2   # the cluster security group and the EFA one
    efa_sg = next(r for r in of_type(eks_efa, "aws:ec2/securityGroup:SecurityGroup") if r.name.endswith("-efa"))
    assert any(efa_sg.urn in t.dependencies for t in groups)


@pytest.mark.parametrize("which", ["eks", "eks_efa"])
def test_validators_pass(request, which):
    result = request.getfixturevalue(which)
    for outcome in registry.validate_rendered(result.stack, result.out_dir):
        assert outcome.ok, f"{outcome.name}: {outcome.detail}"


def test_crd_schema_fails_a_bad_node_pool(eks, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(eks.out_dir, out)
    (path,) = list((out / "kubernetes").glob("*nodepool-gpu-on-demand.yaml"))
    doc = yaml.safe_load(path.read_text())
    doc["spec"]["disruption"]["consolidationPolicy"] = "WhenIdle"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    outcome = registry.kubernetes_crds(out)
    assert not outcome.ok and "nodepool" in outcome.detail and "consolidationPolicy" in outcome.detail
