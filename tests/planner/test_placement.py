"""The placement step: known placements, every input problem with its message, and properties
over generated fleets and demands (no GPU double-booked, no node over its count, every replica
placed or a named error, GPU types respected, deterministic)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.planner.placement import (
    Fleet,
    ModelDemand,
    Node,
    NodePool,
    PlacementError,
    RankGroup,
    baremetal_fleet,
    baremetal_host,
    kubernetes_fleet,
    place,
    pool_nodes,
    small_host,
    solve,
)

H100, L40S, A100 = "h100-80gb", "l40s", "a100-80gb"
ALL8 = tuple(str(i) for i in range(8))


def two_h100_nodes() -> Fleet:
    return kubernetes_fleet([NodePool("gpu", H100, 8, 2, where="target.gpuNodes")])


def messages(result) -> list[str]:
    return [str(p) for p in result.problems]


# --- fleet constructors -------------------------------------------------------------------


def test_node_pools_expand_to_named_nodes():
    fleet = kubernetes_fleet([NodePool("h100", H100, 8, 2), NodePool("l40s", L40S, 4, 1)])
    assert [(n.name, n.gpu_type, n.gpus, n.pool) for n in fleet.nodes] == [
        ("h100-0", H100, 8, "h100"), ("h100-1", H100, 8, "h100"), ("l40s-0", L40S, 4, "l40s")]
    assert fleet.tier == "medium"
    assert pool_nodes(NodePool("p", L40S, 2, 0)) == []


def test_baremetal_hosts_serve_only_their_models():
    host = baremetal_host("gpu-01", H100, 8, ["llama-70b"], where="target.hosts[0]")
    assert host.serves == frozenset({"llama-70b"}) and host.devices == ALL8
    assert baremetal_host("gpu-02", H100, 8, []).serves == frozenset()
    assert baremetal_host("gpu-03", H100, 8).serves is None


# --- known placements ---------------------------------------------------------------------


def test_405b_bf16_spans_two_nodes_leader_then_worker():
    result = place(two_h100_nodes(), [ModelDemand("llama-405b", 8, H100, pipeline_parallel=2, where="models[0]")])
    [replica] = result.replicas
    assert replica.spans_nodes and replica.nodes == ("gpu-0", "gpu-1")
    assert replica.leader == RankGroup("gpu-0", ALL8, (0,))
    assert replica.workers == (RankGroup("gpu-1", ALL8, (1,)),)
    assert replica.gpus_per_node == 8 and replica.gpus == 16 and replica.gpu_type == H100
    assert result.free_gpus() == {"gpu-0": 0, "gpu-1": 0}


def test_70b_tp4_x3_and_8b_tp1_x2_on_two_nodes():
    result = place(two_h100_nodes(), [
        ModelDemand("llama-70b", 4, H100, replicas=3, where="models[0]"),
        ModelDemand("llama-8b", 1, H100, replicas=2, where="models[1]"),
    ])
    got = [(r.model, r.replica, r.leader.node, r.leader.gpu_indices, r.spans_nodes) for r in result.replicas]
    # each model spread over both nodes as far as room allows; best fit among equals
    assert got == [
        ("llama-70b", 0, "gpu-0", ("0", "1", "2", "3"), False),
        ("llama-70b", 1, "gpu-1", ("0", "1", "2", "3"), False),
        ("llama-70b", 2, "gpu-0", ("4", "5", "6", "7"), False),
        ("llama-8b", 0, "gpu-1", ("4",), False),
        ("llama-8b", 1, "gpu-1", ("5",), False),
    ]
    assert result.free == {"gpu-0": (), "gpu-1": ("6", "7")}
    assert result.ok and not result.unplaced and not result.warnings


def test_replicas_spread_over_the_hosts_that_list_them():
    """Issue 20: five replicas on two listed hosts all landed on the first; losing it lost the model."""
    fleet = baremetal_fleet([baremetal_host(f"gpu-0{i}", H100, 8, ["m"], where=f"target.hosts[{i}]") for i in range(2)])
    result = place(fleet, [ModelDemand("m", 1, H100, replicas=5, where="models[0]")])
    assert [r.leader.node for r in result.replicas] == ["gpu-00", "gpu-01", "gpu-00", "gpu-01", "gpu-00"]
    assert result.free_gpus() == {"gpu-00": 5, "gpu-01": 6} and not result.warnings


def test_replicas_spread_over_zones_before_nodes():
    fleet = Fleet((Node("a1", H100, 8, zone="a"), Node("a2", H100, 8, zone="a"), Node("b1", H100, 8, zone="b")))
    result = place(fleet, [ModelDemand("m", 2, H100, replicas=4)])
    assert [r.leader.node for r in result.replicas] == ["a1", "b1", "a2", "b1"]


def test_spreading_gives_way_to_placing_every_replica():
    """Spreading `wide` over big-1 and big-2 would leave `pinned` (hosts big-2 and tiny) one
    replica short; best fit alone places everything, with a warning per crowded model."""
    fleet = Fleet((Node("tiny", H100, 2), Node("big-1", H100, 8), Node("big-2", H100, 8)))
    demands = [ModelDemand("pinned", 2, H100, pipeline_parallel=2, replicas=2, hosts=("big-2", "tiny"), where="models[0]"),
               ModelDemand("wide", 4, H100, replicas=2, where="models[1]")]
    result = solve(fleet, demands)
    assert result.ok, result.problems
    assert {(r.model, r.leader.node) for r in result.replicas} == {("wide", "big-1"), ("pinned", "big-2")}
    assert any(w.startswith("models[1]: wide's replicas could not be spread") for w in result.warnings), result.warnings


def test_small_host_uses_the_listed_device_ids():
    fleet = small_host(L40S, 4, ["2", "3"])
    result = place(fleet, [ModelDemand("llama-8b", 1, L40S, replicas=2, where="models[0]")])
    assert [r.leader for r in result.replicas] == [RankGroup("localhost", ("2",), (0,)), RankGroup("localhost", ("3",), (0,))]
    assert result.free == {"localhost": ()}
    tp2 = place(fleet, [ModelDemand("qwen", 2, L40S, where="models[0]")])
    assert tp2.replicas[0].leader.gpu_indices == ("2", "3")
    assert place(small_host(L40S, 2), [ModelDemand("m", 1, L40S)]).free == {"localhost": ("1",)}


def test_pipeline_parallel_stays_on_one_node_when_it_fits():
    result = place(two_h100_nodes(), [ModelDemand("m", 2, H100, pipeline_parallel=2)])
    [replica] = result.replicas
    assert not replica.spans_nodes
    assert replica.leader == RankGroup("gpu-0", ("0", "1", "2", "3"), (0, 1))


def test_split_keeps_most_stages_per_node():
    fleet = kubernetes_fleet([NodePool("n", L40S, 4, 4)])
    [replica] = place(fleet, [ModelDemand("m", 2, L40S, pipeline_parallel=4)]).replicas
    assert [(g.node, g.gpu_indices, g.stages) for g in replica.groups] == [
        ("n-0", ("0", "1", "2", "3"), (0, 1)), ("n-1", ("0", "1", "2", "3"), (2, 3))]


def test_one_stage_per_node_when_nothing_bigger_fits():
    fleet = kubernetes_fleet([NodePool("n", H100, 8, 3)])
    [replica] = place(fleet, [ModelDemand("m", 8, H100, pipeline_parallel=3)]).replicas
    assert [(g.node, g.stages) for g in replica.groups] == [("n-0", (0,)), ("n-1", (1,)), ("n-2", (2,))]


def test_best_fit_fills_the_fullest_node_that_fits():
    fleet = Fleet((Node("big", H100, 8), Node("small", H100, 2)))
    result = place(fleet, [ModelDemand("a", 2, H100), ModelDemand("b", 4, H100), ModelDemand("c", 4, H100)])
    where = {r.model: r.leader.node for r in result.replicas}
    assert where == {"a": "small", "b": "big", "c": "big"}
    assert result.free_gpus() == {"big": 0, "small": 0}


def test_largest_replicas_are_placed_first():
    # In demand order the 1-GPU model would take GPU 0 of node a and leave no room for TP 4 x2.
    fleet = Fleet((Node("a", H100, 4), Node("b", H100, 5)))
    result = place(fleet, [ModelDemand("tiny", 1, H100), ModelDemand("big", 4, H100, replicas=2)])
    assert [(r.model, r.leader.node) for r in result.replicas] == [("tiny", "b"), ("big", "a"), ("big", "b")]


def test_gpu_types_are_respected_and_preferred_in_order():
    fleet = Fleet((Node("h", H100, 8), Node("l", L40S, 8)))
    result = place(fleet, [
        ModelDemand("on-l40s", 1, L40S),
        ModelDemand("either", 1, (H100, L40S), replicas=2),
        ModelDemand("prefers-l40s", 1, (L40S, H100)),
    ])
    got = {(r.model, r.replica): (r.leader.node, r.gpu_type) for r in result.replicas}
    assert got == {("on-l40s", 0): ("l", L40S), ("either", 0): ("h", H100), ("either", 1): ("h", H100),
                   ("prefers-l40s", 0): ("l", L40S)}


def test_a_replica_spans_only_nodes_of_one_type():
    fleet = Fleet((Node("h", H100, 8), Node("l", L40S, 8), Node("h2", H100, 8)))
    [replica] = place(fleet, [ModelDemand("m", 8, (H100, L40S), pipeline_parallel=2)]).replicas
    assert replica.nodes == ("h", "h2")


def test_baremetal_models_on_listed_hosts_only():
    fleet = baremetal_fleet([
        baremetal_host("gpu-01", H100, 8, ["llama-8b"], where="target.hosts[0]"),
        baremetal_host("gpu-02", H100, 8, ["llama-70b"], where="target.hosts[1]"),
    ])
    result = place(fleet, [ModelDemand("llama-70b", 4, H100, replicas=2), ModelDemand("llama-8b", 1, H100)])
    assert {(r.model, r.leader.node) for r in result.replicas} == {("llama-70b", "gpu-02"), ("llama-8b", "gpu-01")}


def test_a_listed_host_that_gets_no_replica_is_a_warning():
    fleet = baremetal_fleet([baremetal_host(f"gpu-0{i}", H100, 8, ["m"], where=f"target.hosts[{i}]") for i in range(2)])
    result = place(fleet, [ModelDemand("m", 8, H100)])
    assert result.warnings == ("target.hosts[1]: lists m but none of its 1 replica(s) was placed there",)


def test_demand_hosts_restrict_the_nodes():
    fleet = two_h100_nodes()
    [replica] = place(fleet, [ModelDemand("m", 1, H100, hosts=("gpu-1",))]).replicas
    assert replica.leader.node == "gpu-1"


def test_zero_replicas_place_nothing():
    result = place(two_h100_nodes(), [ModelDemand("m", 8, H100, replicas=0)])
    assert result.replicas == () and result.free_gpus() == {"gpu-0": 8, "gpu-1": 8}


def test_same_input_same_output():
    def run():
        fleet = kubernetes_fleet([NodePool("a", H100, 8, 3), NodePool("b", L40S, 4, 2)])
        return solve(fleet, [ModelDemand("x", 4, (H100, L40S), replicas=4), ModelDemand("y", 2, L40S, pipeline_parallel=2),
                             ModelDemand("z", 8, H100, pipeline_parallel=2)])
    assert run() == run()


# --- errors -------------------------------------------------------------------------------


def test_host_too_small_names_hosts_with_room():
    fleet = baremetal_fleet([
        baremetal_host("gpu-h100-01", H100, 8, [], where="target.hosts[0]"),
        baremetal_host("gpu-h100-02", H100, 8, [], where="target.hosts[1]"),
        baremetal_host("gpu-h100-03", H100, 4, ["llama-70b"], where="target.hosts[2]"),
    ])
    result = solve(fleet, [ModelDemand("llama-70b", 8, H100, where="models[0]")])
    assert messages(result) == [
        "target.hosts[2]: has 4 GPUs (h100-80gb); llama-70b needs 8 per replica (tensorParallel 8); "
        "hosts with room: gpu-h100-01 (8 free), gpu-h100-02 (8 free)"]
    assert result.unplaced == (("llama-70b", 0),)


def test_host_of_another_gpu_type_names_hosts_that_can_run_it():
    fleet = baremetal_fleet([
        baremetal_host("gpu-h100-01", H100, 8, ["llama-70b"], where="target.hosts[0]"),
        baremetal_host("gpu-h100-02", H100, 8, [], where="target.hosts[1]"),
        baremetal_host("gpu-l40s-01", L40S, 4, ["llama-70b"], where="target.hosts[2]"),
    ])
    result = solve(fleet, [ModelDemand("llama-70b", 8, H100, where="models[0]")])
    assert messages(result) == [
        "target.hosts[2]: has 4 GPUs (l40s); llama-70b is planned for h100-80gb (models[0]); "
        "hosts that can run it: gpu-h100-02 (8 free)"]
    assert result.replicas[0].leader.node == "gpu-h100-01"  # placed on the H100 host all the same


def test_tensor_parallel_larger_than_every_node():
    fleet = kubernetes_fleet([NodePool("g", L40S, 4, 3, where="target.gpuNodes")])
    result = solve(fleet, [ModelDemand("llama-70b", 8, L40S, where="models[0]")])
    assert messages(result) == [
        "models[0].tensorParallel: llama-70b needs 8 GPUs per node (tensorParallel 8; a tensor-parallel group "
        "stays on one node) but the largest l40s node it may use has 4 (g-0, g-1, g-2); lower tensorParallel "
        "or add nodes with 8 GPUs"]


def test_not_enough_room_for_the_replicas():
    fleet = baremetal_fleet([baremetal_host(f"gpu-h100-0{i}", H100, 8, where=f"target.hosts[{i - 1}]") for i in (1, 2)])
    result = solve(fleet, [ModelDemand("llama-70b", 8, H100, replicas=3, where="models[0]")])
    assert messages(result) == [
        "models[0].replicas: 3 replicas of llama-70b need 3 x 8 GPUs (tensorParallel 8) on h100-80gb nodes; "
        "only 2 fit (gpu-h100-01, gpu-h100-02); free GPUs left there: none; lower replicas or add h100-80gb nodes"]
    assert result.unplaced == (("llama-70b", 2),) and len(result.replicas) == 2


def test_not_enough_room_names_other_models_and_free_gpus():
    result = solve(two_h100_nodes(), [
        ModelDemand("big", 4, H100, replicas=3, where="models[0]"),
        ModelDemand("small", 2, H100, replicas=3, where="models[1]"),
    ])
    assert messages(result) == [
        "models[1].replicas: 3 replicas of small need 3 x 2 GPUs (tensorParallel 2) on h100-80gb nodes; "
        "only 2 fit (gpu-1 x2); other models use 12 GPUs of those nodes; free GPUs left there: none; "
        "lower replicas or add h100-80gb nodes or move other models off those nodes"]


def test_pipeline_stages_need_more_nodes_than_there_are():
    fleet = Fleet((Node("a", H100, 8, where="target.hosts[0]"), Node("b", H100, 4, where="target.hosts[1]")))
    result = solve(fleet, [ModelDemand("llama-405b", 8, H100, pipeline_parallel=2, where="models[0]")])
    assert messages(result) == [
        "models[0].pipelineParallel: one replica of llama-405b needs 16 GPUs (tensorParallel 8 x pipelineParallel 2): "
        "2 nodes of one GPU type with 8 GPUs each, or one node with 16; only 1 h100-80gb node(s) it may use have 8 (a); "
        "add nodes or lower pipelineParallel"]


def test_model_with_no_node_of_its_gpu_type():
    fleet = Fleet((Node("a", L40S, 8), Node("b", A100, 8)))
    result = solve(fleet, [ModelDemand("llama-70b", 4, H100, where="models[0]")])
    assert messages(result) == [
        "models[0]: no node can serve llama-70b: it runs on h100-80gb GPUs and no node has that type "
        "(nodes: a (l40s), b (a100-80gb)); add h100-80gb nodes or accept another GPU type"]


def test_mixed_fleet_never_puts_an_h100_model_on_l40s():
    fleet = Fleet((Node("h", H100, 4), Node("l", L40S, 8)))
    result = solve(fleet, [ModelDemand("m", 4, H100, replicas=2, where="models[0]")])
    assert [r.leader.node for r in result.replicas] == ["h"]
    assert messages(result) == [
        "models[0].replicas: 2 replicas of m need 2 x 4 GPUs (tensorParallel 4) on h100-80gb nodes; only 1 fit (h); "
        "free GPUs left there: none; lower replicas or add h100-80gb nodes"]
    assert place(fleet, [ModelDemand("m", 4, (H100, L40S), replicas=2)]).for_model("m")[1].leader.node == "l"


def test_model_no_host_lists():
    fleet = baremetal_fleet([
        baremetal_host("gpu-01", H100, 8, ["other"], where="target.hosts[0]"),
        baremetal_host("gpu-02", H100, 8, [], where="target.hosts[1]"),
    ])
    result = solve(fleet, [ModelDemand("llama-8b", 1, H100, where="models[1]"), ModelDemand("other", 1, H100)])
    assert messages(result) == [
        "models[1]: no node may serve llama-8b: the h100-80gb nodes do not list it (gpu-01 (serves other), "
        "gpu-02 (serves nothing)); add llama-8b to the models of one of them"]


def test_duplicate_node_names():
    fleet = baremetal_fleet([baremetal_host("gpu-01", H100, 8, where="target.hosts[0]"),
                             baremetal_host("gpu-01", H100, 4, where="target.hosts[1]")])
    result = solve(fleet, [ModelDemand("m", 1, H100)])
    assert messages(result) == ["target.hosts[1].name: 'gpu-01' is already used by target.hosts[0]; node names must be unique"]
    assert result.replicas == () and result.unplaced == (("m", 0),) and result.free == {}


def test_zero_gpu_host_asked_to_serve():
    fleet = baremetal_fleet([
        baremetal_host("cpu-01", H100, 0, ["llama-8b"], where="target.hosts[0]"),
        baremetal_host("gpu-01", H100, 8, ["llama-8b"], where="target.hosts[1]"),
    ])
    result = solve(fleet, [ModelDemand("llama-8b", 1, H100, where="models[0]")])
    assert messages(result) == [
        "target.hosts[0].models: cpu-01 has 0 GPUs but is asked to serve llama-8b; remove it from this host's models "
        "or give the host GPUs; hosts with room: gpu-01 (7 free)"]
    assert result.replicas[0].leader.node == "gpu-01"


def test_only_zero_gpu_hosts_list_the_model():
    fleet = baremetal_fleet([baremetal_host("cpu-01", H100, 0, ["m"], where="target.hosts[0]")])
    result = solve(fleet, [ModelDemand("m", 1, H100, where="models[0]")])
    assert messages(result) == [
        "models[0]: no node may serve m: the h100-80gb nodes that list it have no GPUs (cpu-01)",
        "target.hosts[0].models: cpu-01 has 0 GPUs but is asked to serve m; remove it from this host's models or "
        "give the host GPUs; hosts with room: none"]


@pytest.mark.parametrize("ids,message", [
    (["0", "1", "2"], "target.gpuDeviceIds: 3 device ids listed but localhost has 2 GPUs; list at most 2"),
    (["1", "1"], "target.gpuDeviceIds: 1 listed more than once; each GPU can be given out only once"),
    (["0", "5"], "target.gpuDeviceIds: index 5 out of range for localhost's 2 GPUs (0..1)"),
])
def test_bad_device_ids(ids, message):
    result = solve(small_host(L40S, 2, ids), [ModelDemand("m", 1, L40S)])
    assert message in messages(result)
    assert result.replicas == ()


def test_uuid_device_ids_are_accepted():
    result = place(small_host(L40S, 2, ["GPU-aaaa", "GPU-bbbb"]), [ModelDemand("m", 2, L40S)])
    assert result.replicas[0].leader.gpu_indices == ("GPU-aaaa", "GPU-bbbb")


def test_small_tier_replica_larger_than_the_host_names_the_tiers():
    result = solve(small_host(H100, 8), [ModelDemand("llama-405b", 8, H100, pipeline_parallel=2, where="models[0]")])
    assert messages(result) == [
        "models[0].pipelineParallel: llama-405b needs 16 GPUs per replica (tensorParallel 8 x pipelineParallel 2) "
        "but the small tier runs on one host with 8 GPUs (localhost); run it on 2 nodes of 8 GPUs, one pipeline "
        "stage each: the medium tier (Kubernetes, one replica across 2 nodes) or the baremetal tier (2 hosts)"]


def test_small_tier_tensor_parallel_larger_than_the_listed_devices():
    result = solve(small_host(L40S, 4, ["2", "3"]), [ModelDemand("llama-70b", 4, L40S, where="models[0]")])
    assert messages(result) == [
        "models[0].tensorParallel: llama-70b needs 4 GPUs per replica (tensorParallel 4) but the small tier runs "
        "on one host with 2 GPUs (localhost, the 2 listed in gpuDeviceIds); run it on nodes with at least 4 GPUs: "
        "the medium tier (Kubernetes, multi-node via pipeline parallelism) or the baremetal tier"]


def test_unknown_names_get_suggestions():
    fleet = Fleet((Node("gpu-01", "h100", 8, where="target.hosts[0]"),))
    result = solve(fleet, [ModelDemand("m", 1, "l40", hosts=("gpu-1",), where="models[0]"),
                           ModelDemand("m", 0, H100, replicas=-1, where="models[1]")])
    got = messages(result)
    assert "target.hosts[0].gpuType: 'h100' is not a known GPU type (did you mean 'h100-80gb'?); known: " in got[0]
    assert any(m.startswith("models[0]: GPU type 'l40' is not known (did you mean 'l40s'?)") for m in got)
    assert "models[0].hosts: 'gpu-1' is not a node (did you mean 'gpu-01'?); nodes: gpu-01" in got
    assert "models[1].name: 'm' is already used by models[0]" in got
    assert "models[1].tensorParallel: 0 must be an integer >= 1" in got
    assert "models[1].replicas: -1 must be an integer >= 0" in got


def test_place_raises_every_problem_at_once():
    fleet = two_h100_nodes()
    with pytest.raises(PlacementError) as info:
        place(fleet, [ModelDemand("a", 8, H100, replicas=3, where="models[0]"),
                      ModelDemand("b", 1, L40S, where="models[1]")])
    assert [p.path for p in info.value.problems] == ["models[0].replicas", "models[1]"]
    assert str(info.value).startswith("placement: 2 problems:\n  - models[0].replicas: 3 replicas of a")


# --- properties ---------------------------------------------------------------------------

TYPES = [H100, L40S, A100]
MODEL_NAMES = ["m0", "m1", "m2", "m3"]


@st.composite
def fleets_and_demands(draw):
    nodes = []
    for i in range(draw(st.integers(1, 6))):
        gpus = draw(st.integers(0, 8))
        indices = None
        if gpus and draw(st.booleans()):
            indices = [str(x) for x in draw(st.permutations(range(gpus)))[:draw(st.integers(0, gpus))]]
        serves = draw(st.none() | st.frozensets(st.sampled_from(MODEL_NAMES), max_size=3))
        nodes.append(Node(f"n{i}", draw(st.sampled_from(TYPES)), gpus, indices, serves, where=f"target.hosts[{i}]"))
    tier = "small" if len(nodes) == 1 and draw(st.booleans()) else draw(st.sampled_from([None, "medium", "baremetal"]))
    demands = []
    for k in range(draw(st.integers(1, 4))):
        hosts = None
        if draw(st.integers(0, 3)) == 0:
            hosts = tuple(draw(st.lists(st.sampled_from([n.name for n in nodes]), unique=True, max_size=3)))
        demands.append(ModelDemand(
            MODEL_NAMES[k], draw(st.sampled_from([1, 2, 4, 8])),
            tuple(draw(st.lists(st.sampled_from(TYPES), min_size=1, max_size=3, unique=True))),
            pipeline_parallel=draw(st.sampled_from([1, 1, 2, 3, 4])), replicas=draw(st.integers(0, 4)),
            hosts=hosts, where=f"models[{k}]",
        ))
    return Fleet(tuple(nodes), tier), demands


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(fleets_and_demands())
def test_placement_invariants(case):
    fleet, demands = case
    result = solve(fleet, demands)
    nodes = {n.name: n for n in fleet.nodes}
    wanted = {d.name: d for d in demands}
    assert set(result.free) == set(nodes)  # generated inputs are always valid

    used: dict[str, list[str]] = {name: [] for name in nodes}
    for r in result.replicas:
        d = wanted[r.model]
        assert 0 <= r.replica < d.replicas
        assert r.gpu_type in d.gpu_types
        assert len(set(r.nodes)) == len(r.nodes)  # one rank group per node
        assert [s for g in r.groups for s in g.stages] == list(range(d.pipeline_parallel))
        assert len({len(g.gpu_indices) for g in r.groups}) == 1  # the same GPUs on every node
        assert r.gpus == d.gpus_per_replica and r.spans_nodes == (len(r.groups) > 1)
        for g in r.groups:
            node = nodes[g.node]
            assert node.gpu_type == r.gpu_type  # mixed GPU types respected
            assert node.serves is None or d.name in node.serves
            assert d.hosts is None or node.name in d.hosts
            assert len(g.gpu_indices) == d.tensor_parallel * len(g.stages)  # whole TP groups
            used[g.node] += g.gpu_indices
    for name, node in nodes.items():
        assert len(used[name]) == len(set(used[name]))  # no GPU double-booked
        assert len(used[name]) <= node.gpus  # no node over its count
        assert sorted(used[name] + list(result.free[name])) == sorted(node.devices)

    placed = {(r.model, r.replica) for r in result.replicas}
    everything = {(d.name, i) for d in demands for i in range(d.replicas)}
    assert placed.isdisjoint(result.unplaced) and placed | set(result.unplaced) == everything
    for model, _ in result.unplaced:  # every replica placed or a named error (at its key, or a host's naming it)
        assert any(p.path.startswith(wanted[model].where) or f" {model} " in p.message for p in result.problems), \
            result.problems
    for p in result.problems:
        assert p.path and p.message and "Traceback" not in p.message
    assert solve(fleet, demands) == result  # deterministic


@PROPERTY
@given(fleets_and_demands())
def test_replicas_are_spread_whenever_room_allows(case):
    """No replica could move to a node of its GPU type that has room for it and holds at least
    two fewer replicas of its model: spreading holds wherever capacity allows it (unless the
    result says it had to give way to placing every replica)."""
    fleet, demands = case
    result = solve(fleet, demands)
    if any("could not be spread" in w for w in result.warnings):
        return
    nodes = {n.name: n for n in fleet.nodes}
    for d in demands:
        mine = [r for r in result.replicas if r.model == d.name]
        if not mine or any(r.spans_nodes for r in mine):
            continue
        count = {n: 0 for n in nodes}
        for r in mine:
            count[r.leader.node] += 1
        allowed = [n for n in fleet.nodes if n.gpu_type in d.gpu_types and (n.serves is None or d.name in n.serves)
                   and (d.hosts is None or n.name in d.hosts)]
        for a in {r.leader.node for r in mine}:
            for b in allowed:
                if b.gpu_type == nodes[a].gpu_type and count[b.name] <= count[a] - 2:
                    assert len(result.free[b.name]) < d.gpus_per_replica, (d.name, a, b.name, count, result.free)


@settings(max_examples=60, deadline=None)
@given(per_node=st.sampled_from([1, 2, 4, 8]), nodes=st.integers(1, 6), tp=st.sampled_from([1, 2, 4, 8]),
       replicas=st.integers(0, 12))
def test_single_model_fills_a_uniform_pool_exactly(per_node, nodes, tp, replicas):
    fleet = kubernetes_fleet([NodePool("p", H100, per_node, nodes)])
    result = solve(fleet, [ModelDemand("m", tp, H100, replicas=replicas, where="models[0]")])
    fit = nodes * (per_node // tp)
    assert len(result.replicas) == min(replicas, fit)
    assert result.ok == (0 < fit and replicas <= fit)  # a model that can never fit is an error even at 0 replicas
    assert not any(r.spans_nodes for r in result.replicas)
    per = [sum(r.leader.node == f"p-{i}" for r in result.replicas) for i in range(nodes)]
    assert max(per) - min(per) <= 1 or min(per) == per_node // tp  # even, unless the emptiest node is full


@settings(max_examples=40, deadline=None)
@given(nodes=st.integers(1, 8), pp=st.integers(2, 4), replicas=st.integers(1, 4))
def test_multi_node_replicas_use_pp_whole_nodes(nodes, pp, replicas):
    fleet = kubernetes_fleet([NodePool("p", H100, 8, nodes)])
    result = solve(fleet, [ModelDemand("m", 8, H100, pipeline_parallel=pp, replicas=replicas, where="models[0]")])
    assert len(result.replicas) == (min(replicas, nodes // pp) if nodes >= pp else 0)
    for r in result.replicas:
        assert len(r.groups) == pp and r.gpus_per_node == 8
