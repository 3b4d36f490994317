"""Pure figures of a large stack: failover time vs the topology's RTO, N+1 capacity, the
on-demand floor and spot eligibility, cold start from the regional bucket, per-region placement.

`checks.py` turns them into problems before anything renders; the component and `render`
report them (stack output `large`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from components.large import facts
from components.planner import placement
from components.planner.loading import ENGINE_INIT_S
from components.planner.plan import DEFAULT_TARGET_UTILIZATION
from components.spec.fleet import fleet_for
from components.spec.model import GlobalTrafficSpec, Region, StackSpec
from components.spec.resolved import ResolvedModel


# --- failover ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Failover:
    detection_s: int  # route53: health-check interval x failure threshold; GA: the LBs' target health
    dns_ttl_s: int  # 0 with Global Accelerator (static anycast IPs)
    rto_s: int
    basis: str = ""  # how detection_s was computed (traffic.failover)

    @property
    def total_s(self) -> int:
        return self.detection_s + self.dns_ttl_s

    @property
    def meets_rto(self) -> bool:
        return self.total_s <= self.rto_s


def failover(traffic: GlobalTrafficSpec, topology: str) -> Failover:
    """The failover time (one home: components/large/traffic.failover, from what Route 53 and
    Global Accelerator really do) against the topology's RTO."""
    from components.large import traffic as global_traffic

    t = global_traffic.failover(traffic)
    return Failover(t.detection_s, t.dns_ttl_s, facts.topology(topology).rto_s, t.basis)


def failover_advice(traffic: GlobalTrafficSpec, topology: str) -> str:
    """What would meet the RTO: a lower TTL, a faster health check, or Global Accelerator."""
    f = failover(traffic, topology)
    if traffic.kind == "globalAccelerator":
        lb = traffic.load_balancer_health_check
        threshold = max(2, f.rto_s // 5)
        return (f"loadBalancerHealthCheck intervalS 5 with unhealthyThreshold <= {threshold} (the target groups' "
                f"check; now {lb.interval_s} s x {lb.unhealthy_threshold})" if 5 * 2 <= f.rto_s else
                f"a topology with an RTO of at least 10 s (target groups check every 5 s at best, 2 failures)")
    hc = traffic.health_check
    ways = []
    if f.detection_s < f.rto_s:
        ways.append(f"ttlS <= {f.rto_s - f.detection_s}")
    best_detection = min(facts.health("intervals_s"))
    threshold = max(1, (f.rto_s - f.dns_ttl_s) // best_detection)
    if (hc.interval_s, hc.failure_threshold) != (best_detection, min(threshold, hc.failure_threshold)) and threshold >= 1 \
            and best_detection * 1 + f.dns_ttl_s <= f.rto_s:
        ways.append(f"healthCheck intervalS {best_detection} with failureThreshold <= {threshold}")
    ways.append("kind globalAccelerator (no DNS TTL; failover follows the load balancers' target health)")
    return " or ".join(ways)


# --- per-region figures ----------------------------------------------------------------------


def region_nodes(spec: StackSpec, region: Region) -> tuple[placement.Node, ...]:
    return tuple(n for n in fleet_for(spec).nodes if n.pool == f"{region.name}-gpu")


def min_gpus(region: Region, models: dict[str, ResolvedModel]) -> int:
    return sum(rm.min_replicas * models[rm.name].gpus_per_replica for rm in region.models if rm.name in models)


def floor_nodes(spec: StackSpec, region: Region, models: dict[str, ResolvedModel]) -> int:
    """On-demand GPU nodes Karpenter prefers: set, or enough for every model's minReplicas."""
    if region.on_demand_floor_nodes is not None:
        return region.on_demand_floor_nodes
    return min(region.gpu_nodes, math.ceil(min_gpus(region, models) / spec.gpu.per_node))


@dataclass(frozen=True)
class SpotVerdict:
    model: str
    startup_budget_s: int
    spot: bool
    reason: str


def spot_verdicts(spec: StackSpec, region: Region, models: dict[str, ResolvedModel]) -> list[SpotVerdict]:
    """Spot carries a model's burst replicas only if a replica loads within the interruption
    notice, or the on-demand floor holds all of its minimum replicas (a reclaimed spot node
    then only costs burst capacity)."""
    notice = facts.spot_notice_s()
    covered = floor_nodes(spec, region, models) * spec.gpu.per_node >= min_gpus(region, models)
    out = []
    for rm in region.models:
        m = models.get(rm.name)
        if m is None:
            continue
        if not (spec.large and spec.large.karpenter.spot) or region.cluster != "eks":
            out.append(SpotVerdict(m.name, m.startup_budget_s, False, "on-demand only (spot off)"))
        elif m.startup_budget_s <= notice:
            out.append(SpotVerdict(m.name, m.startup_budget_s, True,
                                   f"load {m.startup_budget_s} s fits the {notice} s interruption notice"))
        elif covered:
            out.append(SpotVerdict(m.name, m.startup_budget_s, True,
                                   f"load {m.startup_budget_s} s exceeds the {notice} s notice; the on-demand floor "
                                   f"holds its {rm.min_replicas} minimum replica(s), spot only adds burst replicas"))
        else:
            out.append(SpotVerdict(m.name, m.startup_budget_s, False,
                                   f"load {m.startup_budget_s} s exceeds the {notice} s notice and the floor does not "
                                   f"hold its minimum replicas"))
    return out


def usable_qps(m: ResolvedModel, replicas: int) -> float:
    return replicas * m.plan.replica_capacity_qps * DEFAULT_TARGET_UTILIZATION


@dataclass(frozen=True)
class NPlusOne:
    model: str
    peak_qps: float
    per_region_qps: dict[str, float]
    largest: str

    @property
    def without_largest_qps(self) -> float:
        return sum(self.per_region_qps.values()) - self.per_region_qps[self.largest]

    @property
    def holds(self) -> bool:
        return self.without_largest_qps >= self.peak_qps


def n_plus_one(spec: StackSpec, models: dict[str, ResolvedModel]) -> list[NPlusOne]:
    """Per model: what each region carries at its maxReplicas (the planner's per-replica
    capacity at its target utilisation), and whether the rest carry the peak without the
    largest region."""
    out = []
    for name, m in models.items():
        per_region = {r.name: usable_qps(m, rm.max_replicas) for r in spec.target.regions
                      for rm in r.models if rm.name == name}
        if not per_region:
            continue
        largest = max(per_region, key=lambda k: per_region[k])
        out.append(NPlusOne(name, m.expected_qps, per_region, largest))
    return out


def cold_start(m: ResolvedModel) -> dict:
    """Expected cold start from the regional bucket: weight bytes / loader bandwidth (each GPU's
    shard streams in parallel), plus engine init, beside the planner's startup budget."""
    load_s = m.plan.weight_bytes_per_gpu / facts.loader_bytes_per_s()
    return {"weightBytes": m.plan.weight_bytes, "loadS": round(load_s, 1),
            "coldStartS": round(load_s + ENGINE_INIT_S, 1), "startupBudgetS": m.startup_budget_s}


def node_volume_gib(region: Region, models: dict[str, ResolvedModel]) -> int:
    """EC2NodeClass data volume: base (image, layers) + every model of the region's weights once."""
    weights = sum(models[rm.name].plan.weight_bytes for rm in region.models if rm.name in models)
    return int(facts.data()["model_loading"]["node_volume_base_gib"] + math.ceil(weights * 1.2 / 2**30))


def region_placement(spec: StackSpec, region: Region, models: dict[str, ResolvedModel],
                     where: str) -> placement.FleetPlacement:
    demands = [placement.ModelDemand(m.name, m.tensor_parallel, (spec.gpu.type,), m.pipeline_parallel,
                                     replicas=rm.min_replicas, where=f"{where}.models[{j}]")
               for j, rm in enumerate(region.models) if (m := models.get(rm.name)) is not None]
    return placement.solve(placement.Fleet(region_nodes(spec, region), tier="medium"), demands)


def instance_types(spec: StackSpec, region: Region) -> list[str]:
    from components.facts import gpu_catalog

    if region.gpu_instance_types:
        return list(region.gpu_instance_types)
    return [i.type for i in gpu_catalog()[spec.gpu.type].aws_instances if i.gpus == spec.gpu.per_node]


def primary(spec: StackSpec) -> Region:
    t = spec.target
    return next((r for r in t.regions if r.name == t.primary_region), t.regions[0])


def namespace(region: Region) -> str:
    return region.namespace or f"tierscale-{region.name}"
