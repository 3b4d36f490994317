"""Multi-node replicas on Kubernetes: the pieces of a LeaderWorkerSet group that a single-node
Deployment does not have (launch flags, group environment, spreading, the group's network
policy). components/medium/manifests.py assembles them into the LeaderWorkerSet.

How a replica that spans nodes runs (kubernetes-sigs/lws v0.9.0, vLLM 0.18.0):
  - one LWS group per replica: `size` = model.nodes_per_replica pods, the leader (worker index 0,
    pipeline stage 0 and the API server) and size-1 workers (headless), each pod requesting one
    node's share of the replica's GPUs (model.gpus_per_node);
  - LWS injects into every container (pkg/utils/pod/pod_utils.go AddLWSVariables, names from
    api/leaderworkerset/v1/leaderworkerset_types.go): LWS_LEADER_ADDRESS (the leader pod's DNS
    name `<lws>-<group>.<lws>.<namespace>` through the headless Service the controller creates,
    which publishes not-ready addresses: pkg/utils/controller/controller_utils.go),
    LWS_GROUP_SIZE and LWS_WORKER_INDEX (0 on the leader, 1.. on the workers). They are
    prepended to the container's env, so `$(VAR)` in args expands to them;
  - vLLM's native multi-node launcher (components.serving.vllm_args.vllm_multinode_args):
    leader `--nnodes N --node-rank 0 --master-addr $(LWS_LEADER_ADDRESS)`, workers the same with
    `--node-rank $(LWS_WORKER_INDEX) --headless`.
"""

from __future__ import annotations

from collections import Counter

from components.facts.kubernetes import minor
from components.medium import efa
from components.medium.names import APP_LABEL, LWS_GROUP_KEY_LABEL, LWS_NAME_LABEL, PART_OF, group_set, workload
from components.serving.vllm_args import vllm_multinode_args
from components.spec import ResolvedModel, ResolvedStack

SINGLE, LEADER, WORKER = "single", "leader", "worker"
HOSTNAME_KEY = "kubernetes.io/hostname"
# matchLabelKeys in pod (anti-)affinity: alpha (off) in 1.29-1.30, beta and on from 1.31
# (KEP-3633, MatchLabelKeysInPodAffinity).
MATCH_LABEL_KEYS_SINCE = (1, 31)


def launch_args(model: ResolvedModel, role: str) -> list[str]:
    """vLLM's multi-node flags for a pod of an LWS group; LWS expands the $(VARS) at start."""
    if role == LEADER:
        return vllm_multinode_args(model, 0, "$(LWS_LEADER_ADDRESS)", headless=False)
    return vllm_multinode_args(model, "$(LWS_WORKER_INDEX)", "$(LWS_LEADER_ADDRESS)", headless=True)


def group_env(model: ResolvedModel, stack: ResolvedStack) -> list[dict]:
    """Environment of every pod of a group (vLLM docs/usage/troubleshooting.md:76@v0.18.0:
    VLLM_HOST_IP must be the address the other nodes reach this one at; NCCL_SOCKET_IFNAME /
    GLOO_SOCKET_IFNAME pick the interface NCCL and Gloo bind to: the pod network, eth0)."""
    env = [
        {"name": "VLLM_HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "NCCL_SOCKET_IFNAME", "value": "eth0"},
        {"name": "GLOO_SOCKET_IFNAME", "value": "eth0"},
    ]
    if efa.per_pod(model, stack):
        # libfabric's EFA provider, with GPUDirect RDMA where the instance supports it (p4d and
        # later). NCCL reaches EFA only through the aws-ofi-nccl plugin, which the image must
        # carry (see README "Models larger than one node"); without it NCCL stays on sockets.
        env += [{"name": "FI_PROVIDER", "value": "efa"}, {"name": "FI_EFA_USE_DEVICE_RDMA", "value": "1"}]
    return env


def pods_per_node(model: ResolvedModel) -> int:
    """The most pods of `model` the placement step put on one node (1 when every node it uses
    holds one pod of it)."""
    counts = Counter(g.node for r in model.placement for g in r.groups)
    return max(counts.values(), default=1)


def spread(model: ResolvedModel, stack: ResolvedStack) -> dict:
    """Pod anti-affinity: the pods of one group on distinct nodes (one pod per node per group).

    When the placement gives every pod of this model a node of its own (each pod holding more
    than half a node's GPUs, as in the example stacks), the rule is "no two pods of this
    LeaderWorkerSet on one node": exact, and available on every supported Kubernetes version.
    When the placement packs pods of different groups onto one node, the rule is narrowed to the
    group with matchLabelKeys on the group key (Kubernetes >= 1.31); before 1.31 it is only
    preferred (the scheduler tries, the placement step has already proven the GPUs exist)."""
    term = {"labelSelector": {"matchLabels": {LWS_NAME_LABEL: group_set(model.name)}}, "topologyKey": HOSTNAME_KEY}
    if pods_per_node(model) <= 1:
        return {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}
    version = stack.kubernetes_version
    if version and minor(version) >= MATCH_LABEL_KEYS_SINCE:
        return {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {**term, "matchLabelKeys": [LWS_GROUP_KEY_LABEL]}]}}
    return {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 100, "podAffinityTerm": term}]}}


def group_network_policy(model: ResolvedModel, ns: str) -> dict:
    """Pod to pod inside the LeaderWorkerSet, every port both ways: the rendezvous port, NCCL's
    and Gloo's ephemeral ports and vLLM's message queues are not fixed. Selected by the LWS name
    label the controller puts on every pod of the set."""
    pods = {"matchLabels": {LWS_NAME_LABEL: group_set(model.name)}}
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": f"allow-group-{workload(model.name)}", "namespace": ns,
                     "labels": {**PART_OF, APP_LABEL: workload(model.name)}},
        "spec": {"podSelector": pods, "policyTypes": ["Ingress", "Egress"],
                 "ingress": [{"from": [{"podSelector": pods}]}],
                 "egress": [{"to": [{"podSelector": pods}]}]},
    }
