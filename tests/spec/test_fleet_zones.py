"""Failure domains of the fleet (components/spec/fleet.py): placement spreads a model's replicas
across zones first (components/planner/placement.py), so the fleet must say which nodes share
one: the region on the large tier, the availability zone on a new EKS cluster."""

from __future__ import annotations

from collections import Counter

from components.planner import placement
from components.spec.fleet import eks_zones, fleet_for
from components.spec.model import EksTarget
from components.spec.stack_file import load_stack


def _eks(instance_type: str, azs: int = 3) -> EksTarget:
    return EksTarget.model_validate({"kind": "eks", "region": "us-east-1", "availabilityZones": azs,
                                     "gpuNodeGroup": {"instanceType": instance_type, "minSize": 1, "maxSize": 6,
                                                      "desiredSize": 1}})


class _Model:
    def __init__(self, multi_node: bool):
        self.multi_node = multi_node


def test_eks_nodes_are_balanced_across_the_availability_zones():
    # g5.48xlarge has no EFA (components/facts/efa.yaml): the node group spans every AZ's subnet.
    assert eks_zones(_eks("g5.48xlarge"), 6, None) == ["us-east-1-az1", "us-east-1-az2", "us-east-1-az3"] * 2
    assert eks_zones(_eks("g5.48xlarge", azs=2), 3, None) == ["us-east-1-az1", "us-east-1-az2", "us-east-1-az1"]


def test_eks_with_efa_is_one_zone_and_unknown_before_the_models_resolve():
    target = _eks("p5.48xlarge")
    assert eks_zones(target, 4, None) == [None] * 4
    assert set(eks_zones(target, 4, [_Model(True), _Model(False)])) == {"us-east-1-az1"}
    assert eks_zones(target, 4, [_Model(False)]) == ["us-east-1-az1", "us-east-1-az2", "us-east-1-az3", "us-east-1-az1"]


def test_example_eks_stack_gets_zones_for_placement():
    stack = load_stack("medium-eks")
    fleet = fleet_for(stack.spec, stack.models)
    assert all(n.zone and n.zone.startswith(f"{stack.spec.target.region}-az") for n in fleet.nodes)
    # Same nodes and GPUs with or without the models: only the zones are refined.
    assert [(n.name, n.capacity) for n in fleet.nodes] == [(n.name, n.capacity) for n in fleet_for(stack.spec).nodes]


def test_large_fleet_zone_is_the_region_and_replicas_spread_across_regions():
    stack = load_stack("large-prod")
    regions = [r.name for r in stack.spec.target.regions]
    fleet = fleet_for(stack.spec)
    assert {n.zone for n in fleet.nodes} == set(regions)
    assert all(n.name.startswith(f"{n.zone}-gpu-") for n in fleet.nodes)
    for m in stack.models:
        zones = [n.zone for r in m.placement for n in fleet.nodes if n.name == r.nodes[0]]
        # The first replicas land one per region (before: every one on the first region's nodes
        # until they were full), and no region holds more than one above another's share.
        assert set(zones[:len(regions)]) == set(regions), (m.name, zones)
        counts = Counter(zones)
        assert max(counts.values()) - min(counts.values()) <= 1 or len(m.placement) > len(fleet.nodes), counts


def test_placement_spreads_by_zone_before_nodes():
    """Two nodes in one zone, one in another: two replicas take one node of each zone."""
    nodes = (placement.Node("a-0", "l40s", 8, zone="a"), placement.Node("a-1", "l40s", 8, zone="a"),
             placement.Node("b-0", "l40s", 8, zone="b"))
    result = placement.solve(placement.Fleet(nodes, tier="medium"),
                             [placement.ModelDemand("m", 1, ("l40s",), 1, replicas=2)])
    assert result.ok and {r.nodes[0] for r in result.for_model("m")} == {"a-0", "b-0"}
