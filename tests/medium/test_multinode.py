"""Models larger than one node on Kubernetes: LeaderWorkerSets, their launch flags, GPUs per pod,
scaling, disruption budgets, policies, the LWS/EFA add-ons and the Pulumi graph order."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from components import paths, pins
from components.medium import addons, efa, multinode
from components.medium.names import LWS_NAME_LABEL, ROLE_LABEL
from components.planner.placement import RankGroup, ReplicaPlacement
from components.serving.vllm_args import MULTINODE_MASTER_PORT, vllm_multinode_args, vllm_serve_args
from components.validate import registry
from tests.support.stacks import example_stack

# Every medium example stack (stacks/Pulumi.medium-*.yaml) plus the variants the fixture renders.
EXAMPLES = sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml")
                  for p in paths.STACKS_DIR.glob("Pulumi.medium-*.yaml"))
ALL = EXAMPLES + ["medium-gitops", "medium-eks-405b", "medium-405b-gitops"]
MULTI = ["medium-405b", "medium-eks-405b", "medium-405b-gitops"]


def docs(result):
    return [yaml.safe_load(f.read_text()) for d in ("kubernetes", "gitops")
            for f in sorted((result.out_dir / d).glob("*.yaml"))]


def of_kind(result, kind):
    return [d for d in docs(result) if d["kind"] == kind]


def vllm(result, kind):
    """The model-serving objects of a kind (label app.kubernetes.io/component: vllm)."""
    return [d for d in of_kind(result, kind) if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "vllm"]


def pod_templates(doc):
    """(role, pod template) of a Deployment or LeaderWorkerSet."""
    if doc["kind"] == "Deployment":
        return [("single", doc["spec"]["template"])]
    t = doc["spec"]["leaderWorkerTemplate"]
    return [("leader", t["leaderTemplate"]), ("worker", t["workerTemplate"])]


def model_of(result, doc):
    name = doc["metadata"]["labels"]["tierscale.dev/model"]
    return result.stack.model(name)


def test_examples_include_a_multi_node_stack():
    assert "medium-405b" in EXAMPLES
    model = example_stack("medium-405b").model("llama-405b")
    assert (model.tensor_parallel, model.pipeline_parallel, model.nodes_per_replica, model.gpus_per_node) == (8, 2, 2, 8)
    assert model.multi_node and model.quantization == "bf16"


# --- invariants over every medium stack ----------------------------------------------------------

@pytest.mark.parametrize("name", ALL)
def test_gpus_per_pod_are_one_nodes_share_and_add_up_to_the_replica(medium, name):
    result = medium[name]
    per_node = result.stack.spec.gpu.per_node
    workloads = vllm(result, "Deployment") + vllm(result, "LeaderWorkerSet")
    assert {model_of(result, w).name for w in workloads} == {m.name for m in result.stack.models}
    for w in workloads:
        model = model_of(result, w)
        size = w["spec"]["leaderWorkerTemplate"]["size"] if w["kind"] == "LeaderWorkerSet" else 1
        assert (w["kind"] == "LeaderWorkerSet") == model.multi_node
        assert size == model.nodes_per_replica
        for _, template in pod_templates(w):
            (c,) = template["spec"]["containers"]
            res = c["resources"]
            gpus = int(res["requests"]["nvidia.com/gpu"])
            assert res["limits"]["nvidia.com/gpu"] == res["requests"]["nvidia.com/gpu"]
            assert gpus == model.gpus_per_node, w["metadata"]["name"]
            assert gpus <= per_node, "no pod may request more GPUs than its node has"
            assert size * gpus == model.tensor_parallel * model.pipeline_parallel
            shm = next(v for v in template["spec"]["volumes"] if v["name"] == "shm")
            assert shm["emptyDir"]["medium"] == "Memory"
            assert int(shm["emptyDir"]["sizeLimit"].removesuffix("Gi")) >= 2 * gpus


@pytest.mark.parametrize("name", ALL)
def test_every_leader_worker_set_recreates_whole_groups_and_is_scaled_as_one(medium, name):
    result = medium[name]
    sets = {d["metadata"]["name"]: d for d in of_kind(result, "LeaderWorkerSet")}
    for lws in sets.values():
        spec = lws["spec"]
        assert lws["apiVersion"] == "leaderworkerset.x-k8s.io/v1"
        assert spec["leaderWorkerTemplate"]["restartPolicy"] == "RecreateGroupOnPodRestart"
        # LeaderReady would deadlock: the leader is ready only after every worker joined.
        assert spec["startupPolicy"] == "LeaderCreated"
        model = model_of(result, lws)
        assert spec["replicas"] == model.replicas
        rolling = spec["rolloutStrategy"]["rollingUpdateConfiguration"]
        assert rolling == {"maxUnavailable": 0, "maxSurge": model.spec.max_surge}
    for so in of_kind(result, "ScaledObject"):
        target = so["spec"]["scaleTargetRef"]
        model = result.stack.model(so["metadata"]["labels"]["tierscale.dev/model"])
        if model.multi_node:
            assert target == {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet",
                              "name": f"vllm-{model.name}-lws"}
            assert target["name"] in sets
        else:
            assert target["kind"] == "Deployment"


@pytest.mark.parametrize("name", MULTI)
def test_launch_flags_follow_vllm_native_multi_node(medium, name):
    result = medium[name]
    (lws,) = of_kind(result, "LeaderWorkerSet")
    model = model_of(result, lws)
    templates = dict(pod_templates(lws))
    leader, worker = (templates[r]["spec"]["containers"][0] for r in ("leader", "worker"))
    base = vllm_serve_args(model)
    nodes = str(model.nodes_per_replica)
    assert leader["args"] == base + ["--nnodes", nodes, "--node-rank", "0", "--master-addr", "$(LWS_LEADER_ADDRESS)",
                                     "--master-port", str(MULTINODE_MASTER_PORT)]
    assert worker["args"] == base + ["--nnodes", nodes, "--node-rank", "$(LWS_WORKER_INDEX)",
                                     "--master-addr", "$(LWS_LEADER_ADDRESS)", "--master-port",
                                     str(MULTINODE_MASTER_PORT), "--headless"]
    for c in (leader, worker):
        env = {e["name"]: e for e in c["env"]}
        assert env["VLLM_HOST_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
        assert env["NCCL_SOCKET_IFNAME"]["value"] == env["GLOO_SOCKET_IFNAME"]["value"] == "eth0"
    # Probes on the leader only: the workers have no API server.
    assert all(leader[p]["httpGet"]["path"] == "/health" for p in ("startupProbe", "readinessProbe", "livenessProbe"))
    assert not {"startupProbe", "readinessProbe", "livenessProbe"} & set(worker)
    assert "VLLM_API_KEY" in {e["name"] for e in leader["env"]} and "VLLM_API_KEY" not in {e["name"] for e in worker["env"]}
    assert templates["leader"]["metadata"]["labels"][ROLE_LABEL] == "leader"
    assert templates["worker"]["metadata"]["labels"][ROLE_LABEL] == "worker"


@pytest.mark.parametrize("name", MULTI)
def test_group_pods_land_on_distinct_nodes(medium, name):
    result = medium[name]
    (lws,) = of_kind(result, "LeaderWorkerSet")
    for _, template in pod_templates(lws):
        (term,) = template["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert term["topologyKey"] == "kubernetes.io/hostname"
        assert term["labelSelector"]["matchLabels"] == {LWS_NAME_LABEL: lws["metadata"]["name"]}


def test_spread_narrows_to_the_group_when_the_placement_shares_nodes():
    model = example_stack("medium-405b").model("llama-405b")
    shared = tuple(ReplicaPlacement(model.name, r, "h100-80gb", (
        RankGroup("gpu-0", tuple(str(i) for i in range(4 * r, 4 * r + 4)), (0,)),
        RankGroup("gpu-1", tuple(str(i) for i in range(4 * r, 4 * r + 4)), (1,)))) for r in range(2))
    packed = dataclasses.replace(model, placement=shared)
    assert multinode.pods_per_node(model) == 1 and multinode.pods_per_node(packed) == 2
    new = multinode.spread(packed, SimpleNamespace(kubernetes_version="1.31"))
    (term,) = new["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["matchLabelKeys"] == ["leaderworkerset.sigs.k8s.io/group-key"]
    old = multinode.spread(packed, SimpleNamespace(kubernetes_version="1.30"))
    assert old["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["weight"] == 100


@pytest.mark.parametrize("name", MULTI)
def test_service_pdb_and_monitoring_cover_leaders(medium, name):
    result = medium[name]
    (lws,) = of_kind(result, "LeaderWorkerSet")
    leader_labels = lws["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["metadata"]["labels"]
    worker_labels = lws["spec"]["leaderWorkerTemplate"]["workerTemplate"]["metadata"]["labels"]

    def selects(selector, labels):
        return all(labels.get(k) == v for k, v in selector.items())

    (svc,) = vllm(result, "Service")
    (pdb,) = vllm(result, "PodDisruptionBudget")
    for sel in (svc["spec"]["selector"], pdb["spec"]["selector"]["matchLabels"]):
        assert selects(sel, leader_labels) and not selects(sel, worker_labels)
    # One leader per group: maxUnavailable 1 is one group at a time.
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": svc["spec"]["selector"]}}
    (sm,) = vllm(result, "ServiceMonitor")
    assert selects(sm["spec"]["selector"]["matchLabels"], svc["metadata"]["labels"])
    # The LWS controller's headless Service is labelled only with the LWS name: not scraped.
    assert not selects(sm["spec"]["selector"]["matchLabels"], {LWS_NAME_LABEL: lws["metadata"]["name"]})
    assert svc["metadata"]["name"] != lws["metadata"]["name"], "the LWS headless Service would collide"


@pytest.mark.parametrize("name", MULTI)
def test_network_policy_opens_the_group_to_itself_only(medium, name):
    result = medium[name]
    (lws,) = of_kind(result, "LeaderWorkerSet")
    policies = {p["metadata"]["name"]: p["spec"] for p in of_kind(result, "NetworkPolicy")}
    group = policies[f"allow-group-{lws['metadata']['name'].removesuffix('-lws')}"]
    pods = {"matchLabels": {LWS_NAME_LABEL: lws["metadata"]["name"]}}
    assert group == {"podSelector": pods, "policyTypes": ["Ingress", "Egress"],
                     "ingress": [{"from": [{"podSelector": pods}]}], "egress": [{"to": [{"podSelector": pods}]}]}
    # The API and metrics allows skip the headless workers. The model router is the only API
    # path to vLLM (components/medium/router.py): no ingress-controller allow exists.
    assert "allow-gateway-to-vllm" not in policies
    for name_ in ("allow-model-router-to-vllm", "allow-prometheus-to-vllm"):
        assert policies[name_]["podSelector"]["matchExpressions"] == [
            {"key": ROLE_LABEL, "operator": "NotIn", "values": ["worker"]}]


def test_gitops_ignores_the_replicas_keda_sets_on_a_leader_worker_set(medium):
    (app,) = of_kind(medium["medium-405b-gitops"], "Application")
    assert {"group": "leaderworkerset.x-k8s.io", "kind": "LeaderWorkerSet", "jsonPointers": ["/spec/replicas"]} in (
        app["spec"]["ignoreDifferences"])


# --- schemas: the LWS CRD, and its pod templates as Kubernetes pods ------------------------------

@pytest.mark.parametrize("name", MULTI)
def test_leader_worker_set_validates_against_the_lws_crd_schema(medium, name):
    result = medium[name]
    schema = paths.schemas_dir() / "crds" / "leaderworkerset.x-k8s.io" / "leaderworkerset_v1.json"
    assert schema.exists()
    outcome = registry.kubernetes_crds(result.out_dir)
    assert outcome.ok, outcome.detail
    import jsonschema

    (lws,) = of_kind(result, "LeaderWorkerSet")
    validator = jsonschema.Draft7Validator(json.loads(schema.read_text()))
    assert not list(validator.iter_errors(lws))
    broken = json.loads(json.dumps(lws))
    broken["spec"]["leaderWorkerTemplate"]["restartPolicy"] = "RestartEverything"
    assert list(validator.iter_errors(broken)), "the schema must reject an unknown restart policy"


def _as_pods(result, tmp_path: Path) -> Path:
    """Each LWS pod template as a Pod manifest (metadata and annotations merged), so the Pod
    schema of the target Kubernetes version and checkov judge what LWS will create."""
    out = tmp_path / "pods"
    (out / "kubernetes").mkdir(parents=True)
    for lws in of_kind(result, "LeaderWorkerSet"):
        for role, template in pod_templates(lws):
            meta = template["metadata"]
            pod = {"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": f"{lws['metadata']['name']}-{role}", "namespace": lws["metadata"]["namespace"],
                                "labels": meta["labels"],
                                "annotations": {**lws["metadata"].get("annotations", {}), **meta.get("annotations", {})}},
                   "spec": template["spec"]}
            (out / "kubernetes" / f"pod-{role}.yaml").write_text(yaml.safe_dump(pod, sort_keys=False))
    # The namespace's NetworkPolicies, for checkov's pod <-> policy graph check (CKV2_K8S_6).
    for i, policy in enumerate(of_kind(result, "NetworkPolicy")):
        (out / "kubernetes" / f"policy-{i}.yaml").write_text(yaml.safe_dump(policy, sort_keys=False))
    return out


@pytest.mark.parametrize("name", ["medium-405b", "medium-eks-405b"])
def test_lws_pod_templates_are_valid_pods_for_the_target_version_and_checkov_clean(medium, name, tmp_path):
    result = medium[name]
    out = _as_pods(result, tmp_path)
    builtin = registry.kubernetes_builtin(out, kubernetes_version=result.stack.kubernetes_version)
    assert builtin.ok and "manifests valid" in builtin.detail, builtin.detail
    checked = registry.checkov(out)
    assert checked.ok, checked.detail


# --- EFA on EKS ----------------------------------------------------------------------------------

def test_efa_is_requested_only_on_eks_efa_instances_with_multi_node_models(medium):
    eks = medium["medium-eks-405b"]
    (lws,) = of_kind(eks, "LeaderWorkerSet")
    for _, template in pod_templates(lws):
        res = template["spec"]["containers"][0]["resources"]
        assert res["requests"]["vpc.amazonaws.com/efa"] == res["limits"]["vpc.amazonaws.com/efa"] == "32"
        env = {e["name"]: e.get("value") for e in template["spec"]["containers"][0]["env"]}
        assert env["FI_PROVIDER"] == "efa"
    for name in ("medium-prod", "medium-eks", "medium-405b"):
        for w in vllm(medium[name], "Deployment") + vllm(medium[name], "LeaderWorkerSet"):
            for _, template in pod_templates(w):
                assert "vpc.amazonaws.com/efa" not in template["spec"]["containers"][0]["resources"]["requests"]
    assert efa.interfaces("p5.48xlarge") == 32 and efa.interfaces("p4d.24xlarge") == 4
    assert efa.interfaces("g6.xlarge") == 0


def test_efa_facts_cover_the_catalog_instances_the_device_plugin_supports():
    from components.facts import gpu_catalog

    listed = set(efa.facts()["instances"])
    catalog = {i.type for g in gpu_catalog().values() for i in g.aws_instances}
    assert {"p4d.24xlarge", "p4de.24xlarge", "p5.48xlarge", "p5en.48xlarge"} <= listed
    assert listed & catalog == {t for t in catalog if t.startswith("p")} | ({"g6e.48xlarge"} & catalog)


def test_efa_node_group_gets_efa_interfaces_in_one_placement_group(medium):
    result = medium["medium-eks-405b"]
    (lt,) = [r for r in result.resources if r.type == "aws:ec2/launchTemplate:LaunchTemplate"]
    nics = lt.inputs["networkInterfaces"]
    assert [n["networkCardIndex"] for n in nics] == list(range(32))
    assert nics[0]["interfaceType"] == "efa" and {n["interfaceType"] for n in nics[1:]} == {"efa-only"}
    assert lt.inputs["placement"]["groupName"]
    (gpu_ng,) = [r for r in result.resources if r.type == "aws:eks/nodeGroup:NodeGroup"
                 and r.inputs["instanceTypes"] == ["p5.48xlarge"]]
    assert len(gpu_ng.inputs["subnetIds"]) == 1 and "diskSize" not in gpu_ng.inputs
    assert gpu_ng.inputs["launchTemplate"]["id"]
    (sg_in,) = [r for r in result.resources if r.type == "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"]
    assert sg_in.inputs["ipProtocol"] == "-1" and sg_in.inputs["referencedSecurityGroupId"] == sg_in.inputs["securityGroupId"]
    # Without a multi-node model the EKS node group is unchanged: no launch template.
    assert not [r for r in medium["medium-eks"].resources if r.type == "aws:ec2/launchTemplate:LaunchTemplate"]


def test_efa_device_plugin_values_use_its_chart_keys():
    stack = example_stack("medium-eks")
    assert not efa.node_interfaces(stack)  # single-node model: no EFA
    values = {"tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]}
    assert efa.unknown_values_keys(values) == []
    assert efa.unknown_values_keys({"toleration": []}) == ["toleration"]
    entry = efa.facts()["chart_values_keys"]
    pin = pins.chart("aws-efa-k8s-device-plugin")
    assert (entry["chart"], entry["version"], entry["source"]) == ("aws-efa-k8s-device-plugin", pin.version, pin.source)


# --- add-ons and the Pulumi graph -----------------------------------------------------------------

def _releases(result):
    """Helm releases by chart name. An OCI chart (LWS, Karpenter) is released as its full
    `oci://<registry path>/<name>` reference with no repositoryOpts.repo
    (components/medium/addons.helm_chart_reference); other charts by name in their repo."""
    return {r.inputs["chart"].rsplit("/", 1)[-1]: r for r in result.resources
            if r.type == "kubernetes:helm.sh/v3:Release"}


def test_lws_controller_is_installed_only_when_a_model_spans_nodes(medium):
    assert set(_releases(medium["medium-prod"])) == set(addons.INSTALLED_CHARTS)
    # A new EKS cluster also gets Karpenter to grow its GPU nodes up to maxSize (tests/medium/test_karpenter.py).
    assert set(_releases(medium["medium-eks"])) == {*addons.INSTALLED_CHARTS, "karpenter"}
    lws = _releases(medium["medium-405b"])["lws"]
    pin = pins.chart("lws")
    assert pin.repo.startswith("oci://")
    assert (lws.inputs["chart"], lws.inputs["version"], lws.inputs["namespace"]) == (
        f"{pin.repo}/lws", pin.version, "lws-system")
    assert not (lws.inputs.get("repositoryOpts") or {}).get("repo")  # an OCI registry has no index.yaml
    assert lws.inputs.get("values") in (None, {})  # no key list upstream in ../shared: chart defaults
    assert "aws-efa-k8s-device-plugin" not in _releases(medium["medium-405b"])  # not EKS
    efa_release = _releases(medium["medium-eks-405b"])["aws-efa-k8s-device-plugin"]
    assert efa.unknown_values_keys(efa_release.inputs["values"]) == []
    assert efa_release.inputs["version"] == pins.chart("aws-efa-k8s-device-plugin").version
    # Values files only for charts whose keys the validator can check.
    assert sorted(p.name for p in (medium["medium-405b"].out_dir / "helm").glob("*.values.yaml")) == [
        "gpu-operator.values.yaml", "keda.values.yaml", "kps.values.yaml"]


@pytest.mark.parametrize("name", ["medium-405b", "medium-eks-405b"])
def test_leader_worker_set_is_registered_after_the_lws_release_and_before_its_scaled_object(medium, name):
    result = medium[name]
    by_urn = {r.urn: r for r in result.resources}
    (lws,) = [r for r in result.resources if r.type == "kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet"]
    releases = _releases(result)
    assert releases["lws"].urn in lws.dependencies
    (so,) = [r for r in result.resources if r.type == "kubernetes:keda.sh/v1alpha1:ScaledObject"]
    assert lws.urn in so.dependencies and releases["keda"].urn in so.dependencies
    assert all(u in by_urn for u in lws.dependencies if u.startswith("urn:"))


# --- the shared vLLM argument builder -----------------------------------------------------------

def test_vllm_multinode_args():
    model = example_stack("medium-405b").model("llama-405b")
    assert vllm_multinode_args(model, 0, "10.0.0.1", headless=False) == [
        "--nnodes", "2", "--node-rank", "0", "--master-addr", "10.0.0.1", "--master-port", "29501"]
    assert vllm_multinode_args(model, 1, "10.0.0.1", True, master_port=29600)[-3:] == ["--master-port", "29600", "--headless"]
    for rank, headless in ((0, True), (1, False), (2, True), (-1, True)):
        with pytest.raises(ValueError):
            vllm_multinode_args(model, rank, "10.0.0.1", headless)
    single = example_stack("medium-prod").model("llama-70b")
    assert vllm_multinode_args(single, 0, "x", False) == []


# --- stopping a group: the leader drains, the workers outlive it (issue #18 item 4) -----------

@pytest.mark.parametrize("name", MULTI)
def test_group_stop_drains_the_leader_and_workers_outlive_it(medium, name):
    from components.serving import probes

    sets = of_kind(medium[name], "LeaderWorkerSet")
    assert sets
    for lws in sets:
        templates = lws["spec"]["leaderWorkerTemplate"]
        leader, worker = templates["leaderTemplate"]["spec"], templates["workerTemplate"]["spec"]
        (lc,), (wc,) = leader["containers"], worker["containers"]
        # Leader: leaves the endpoints while it still serves, then vLLM drains within its grace.
        assert lc["lifecycle"] == {"preStop": {"sleep": {"seconds": probes.PRESTOP_SLEEP_S}}}
        assert leader["terminationGracePeriodSeconds"] >= probes.PRESTOP_SLEEP_S + probes.VLLM_SHUTDOWN_TIMEOUT_S
        # Worker: SIGTERM (which a headless vLLM obeys at once) only after the leader is gone,
        # waiting at most the leader's whole grace; the kubelet never kills it before that.
        command = wc["lifecycle"]["preStop"]["exec"]["command"]
        assert command[:2] == ["/bin/bash", "-c"]
        assert "$LWS_LEADER_ADDRESS" in command[2] and f"{MULTINODE_MASTER_PORT:04X}" in command[2]
        budget = int(re.search(r"SECONDS \+ (\d+)", command[2]).group(1))
        assert budget >= leader["terminationGracePeriodSeconds"]
        assert worker["terminationGracePeriodSeconds"] > budget


def test_worker_prestop_waits_for_the_leader_to_exit():
    """The worker's preStop script itself, with bash: it returns at once when the leader is gone,
    blocks while the leader accepts on its master port, or while this pod still holds an
    established connection to that port (the leader's address no longer resolving), and never
    past its budget."""
    import os
    import socket
    import subprocess
    import threading
    import time

    port = 29577

    def run(address: str, budget_s: int = 8) -> float:
        script = multinode.leader_gone_wait_script(port=port, budget_s=budget_s)
        start = time.monotonic()
        subprocess.run(["bash", "-c", script], env=dict(os.environ, LWS_LEADER_ADDRESS=address), check=True, timeout=30)
        return time.monotonic() - start

    def listener() -> socket.socket:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen(8)
        return s

    assert run("127.0.0.1") < 1  # nobody listens: the leader is gone

    leader = listener()

    def accept() -> None:
        while True:
            try:
                leader.accept()[0].close()
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    threading.Timer(2.5, leader.close).start()
    assert 2.5 <= run("127.0.0.1") < 6  # waits while the leader listens

    leader = listener()
    client = socket.create_connection(("127.0.0.1", port))
    server_side, _ = leader.accept()
    leader.close()

    def leader_exits() -> None:
        client.close()
        server_side.close()

    threading.Timer(2.5, leader_exits).start()
    assert 2.5 <= run("leader.invalid") < 6  # the established connection alone keeps it waiting

    leader = listener()
    threading.Thread(target=accept, daemon=True).start()
    try:
        assert 2 <= run("127.0.0.1", budget_s=2) < 5  # a leader that never exits: the budget ends it
    finally:
        leader.close()
