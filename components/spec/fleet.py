"""The stack's fleet for the placement step: which nodes (with their GPU type and count) exist.

small: the one Docker host; kubernetes: `gpuNodes` nodes of `gpu.perNode`; eks: the GPU node
group at `maxSize` (what the autoscaler can reach); baremetal: every host with its own
`gpuType` (default `gpu.type`) and the models it lists; large (multi-region): every region's
GPU nodes.
"""

from __future__ import annotations

from components.planner import placement
from components.spec.model import BaremetalTarget, DockerHostTarget, EksTarget, KubernetesTarget, MultiRegionTarget, StackSpec


def fleet_for(spec: StackSpec) -> placement.Fleet:
    target = spec.target
    if isinstance(target, DockerHostTarget):
        fleet = placement.small_host(spec.gpu.type, spec.gpu.per_node, target.gpu_device_ids, name=target.host,
                                     where="target")
        return placement.Fleet(fleet.nodes, tier="small")
    if isinstance(target, KubernetesTarget):
        pool = placement.NodePool("gpu", spec.gpu.type, spec.gpu.per_node, target.gpu_nodes, where="target.gpuNodes")
        return placement.Fleet(placement.kubernetes_fleet([pool]).nodes, tier="medium")
    if isinstance(target, EksTarget):
        pool = placement.NodePool("gpu", spec.gpu.type, spec.gpu.per_node, target.gpu_node_group.max_size,
                                  where="target.gpuNodeGroup.maxSize")
        return placement.Fleet(placement.kubernetes_fleet([pool]).nodes, tier="medium")
    if isinstance(target, BaremetalTarget):
        hosts = [placement.baremetal_host(h.name, h.gpu_type or spec.gpu.type, h.gpus, h.models,
                                          where=f"target.hosts[{i}]")
                 for i, h in enumerate(target.hosts)]
        return placement.Fleet(tuple(placement.baremetal_fleet(hosts).nodes), tier="baremetal")
    if isinstance(target, MultiRegionTarget):
        # large: every region's GPU nodes (`gpuNodes`: the Karpenter limit or the cluster's
        # nodes). This places the planner's total; components/large/checks.py places each
        # region's own replicas on its own nodes.
        nodes = [placement.Node(f"{r.name}-gpu-{n}", spec.gpu.type, spec.gpu.per_node, pool=f"{r.name}-gpu",
                                where=f"target.regions[{i}].gpuNodes")
                 for i, r in enumerate(target.regions) for n in range(r.gpu_nodes)]
        return placement.Fleet(tuple(nodes), tier="large")
    raise AssertionError(target)


def total_gpus(fleet: placement.Fleet) -> int:
    """GPUs the placement may use."""
    return sum(node.capacity for node in fleet.nodes)
