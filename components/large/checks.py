"""Large-tier rules (topology, global traffic, regions, N+1, spot) and its validators.

`problems(spec)` runs through the tier registry before anything renders. The figures that
need the planner (per-replica capacity for N+1, startup budgets for spot) come from resolving
the models here the way the resolver does (components.spec.model_resolution); a model that
does not resolve is reported by the resolver and skipped here.
"""

from __future__ import annotations

import functools
from pathlib import Path

from components.large import facts, sizing
from components.spec.errors import Problem
from components.spec.fleet import fleet_for, total_gpus
from components.spec.model import MultiRegionTarget, StackSpec
from components.spec.model_resolution import default_name, resolve_entry
from components.suggestions import suggestion


def _models(spec: StackSpec) -> dict:
    scratch: list[Problem] = []
    total = total_gpus(fleet_for(spec))
    out = {}
    for i, m in enumerate(spec.models):
        r = resolve_entry(i, m, spec, total, scratch)
        if r is not None:
            out[r.name] = r
    return out


def _traffic(spec: StackSpec, out: list[Problem]) -> None:
    large, regions = spec.large, spec.target.regions
    traffic = large.global_traffic
    topo = facts.topology(large.topology)
    if len(regions) < topo.regions_min or (topo.regions_max is not None and len(regions) > topo.regions_max):
        want = (f"exactly {topo.regions_min}" if topo.regions_min == topo.regions_max
                else f"at least {topo.regions_min}")
        out.append(Problem("target.regions", f"topology {large.topology!r} needs {want} region(s), this stack has "
                           f"{len(regions)}"))
    if spec.slo.availability > topo.availability_pct:
        better = [t for t in ("active-passive", "active-active", "global")
                  if facts.topology(t).availability_pct >= spec.slo.availability]
        out.append(Problem("large.topology", f"{large.topology!r} is built for {topo.availability_pct:g}% but "
                           f"slo.availability is {spec.slo.availability:g}%: use {' or '.join(better) or 'global'}"))
    f = sizing.failover(traffic, large.topology)
    if not f.meets_rto:
        key = "large.globalTraffic.ttlS" if traffic.kind == "route53" and f.dns_ttl_s else \
            "large.globalTraffic.healthCheck.failureThreshold"
        how = (f"health check {traffic.health_check.interval_s} s x {traffic.health_check.failure_threshold} = "
               f"{f.detection_s} s" + (f" + DNS TTL {f.dns_ttl_s} s" if f.dns_ttl_s else ""))
        out.append(Problem(key, f"failover takes {f.total_s} s ({how}), above the {f.rto_s} s RTO of topology "
                           f"{large.topology!r}: use {sizing.failover_advice(traffic, large.topology)}"))
    if traffic.kind == "globalAccelerator":
        if large.topology == "active-passive":
            out.append(Problem("large.globalTraffic.kind", "active-passive needs Route 53 failover records "
                               "(PRIMARY/SECONDARY); Global Accelerator serves every healthy region: use route53, "
                               "or topology active-active"))
        for i, r in enumerate(regions):
            if r.cluster != "eks":
                out.append(Problem(f"target.regions[{i}].cluster", f"{r.name!r} is an existing cluster; Global "
                                   "Accelerator endpoints are AWS load balancers or instances: use route53 "
                                   "(latency records reach any hostname)"))
            elif r.gateway.load_balancer_arn is None:
                out.append(Problem(f"target.regions[{i}].gateway.loadBalancerArn",
                                   "required with globalAccelerator: the region's gateway NLB/ALB is its endpoint"))
    if large.topology == "active-passive" and sum(r.traffic_dial == 0 for r in regions) == len(regions):
        out.append(Problem("target.regions", "every region has trafficDial 0: nothing serves"))


def _regions(spec: StackSpec, names: dict[str, int], out: list[Problem]) -> None:
    target = spec.target
    seen: dict[str, int] = {}
    spaces: dict[str, int] = {}
    for i, r in enumerate(target.regions):
        where = f"target.regions[{i}]"
        if r.name in seen:
            out.append(Problem(f"{where}.name", f"{r.name!r} is already regions[{seen[r.name]}]"))
        seen.setdefault(r.name, i)
        ns = sizing.namespace(r)
        if ns in spaces:
            out.append(Problem(f"{where}.namespace", f"{ns!r} is also regions[{spaces[ns]}]'s namespace; Pulumi names "
                               "regional objects by namespace: give each region its own"))
        spaces.setdefault(ns, i)
        if r.cluster == "kubernetes":
            for key in ("on_demand_floor_nodes", "gpu_instance_types"):
                if getattr(r, key) is not None:
                    camel = "onDemandFloorNodes" if key == "on_demand_floor_nodes" else "gpuInstanceTypes"
                    out.append(Problem(f"{where}.{camel}", "applies to cluster: eks only (Karpenter)"))
        else:
            types = sizing.instance_types(spec, r)
            from components.facts import gpu_catalog
            known = {i.type: i.gpus for i in gpu_catalog()[spec.gpu.type].aws_instances}
            for j, t in enumerate(r.gpu_instance_types or []):
                if known.get(t) != spec.gpu.per_node:
                    allowed = ", ".join(k for k, v in known.items() if v == spec.gpu.per_node) or "none"
                    out.append(Problem(f"{where}.gpuInstanceTypes[{j}]", f"{t!r} does not have {spec.gpu.per_node} "
                                       f"{spec.gpu.type} GPUs; allowed: {allowed}"))
            if not types:
                out.append(Problem(f"{where}.gpuInstanceTypes", f"no AWS instance type has {spec.gpu.per_node} "
                                   f"{spec.gpu.type} GPUs (components/facts/gpus.yaml)"))
            if r.on_demand_floor_nodes is not None and r.on_demand_floor_nodes > r.gpu_nodes:
                out.append(Problem(f"{where}.onDemandFloorNodes", f"{r.on_demand_floor_nodes} exceeds gpuNodes "
                                   f"{r.gpu_nodes}"))
        listed: set[str] = set()
        for j, rm in enumerate(r.models):
            if rm.name not in names:
                out.append(Problem(f"{where}.models[{j}].name", f"{rm.name!r} is not a model name"
                                   f"{suggestion(rm.name, names)}; allowed: {', '.join(names)}"))
            if rm.name in listed:
                out.append(Problem(f"{where}.models[{j}].name", f"{rm.name!r} is listed twice"))
            listed.add(rm.name)
            if rm.min_replicas > rm.max_replicas:
                out.append(Problem(f"{where}.models[{j}].minReplicas", f"{rm.min_replicas} exceeds maxReplicas "
                                   f"{rm.max_replicas}"))
    if target.primary_region is not None and target.primary_region not in seen:
        out.append(Problem("target.primaryRegion", f"{target.primary_region!r} is not a region"
                           f"{suggestion(target.primary_region, seen)}; allowed: {', '.join(seen)}"))
    served = {rm.name for r in target.regions for rm in r.models}
    for name, i in names.items():
        if name not in served:
            out.append(Problem(f"models[{i}]", f"{name!r} is served by no region: list it in target.regions[].models"))
        elif spec.large.topology in ("active-active", "global") and \
                sum(any(rm.name == name for rm in r.models) for r in target.regions) < 2:
            out.append(Problem(f"models[{i}]", f"{name!r} is served by one region only; topology "
                               f"{spec.large.topology!r} needs it in at least two (N+1 across regions)"))


def _capacity(spec: StackSpec, names: dict[str, int], out: list[Problem]) -> None:
    models = _models(spec)
    if len(models) != len(spec.models):
        return  # the resolver reports the model that did not resolve
    for i, r in enumerate(spec.target.regions):
        where = f"target.regions[{i}]"
        result = sizing.region_placement(spec, r, models, where)
        out += [Problem(p.path, p.message) for p in result.problems]
        if spec.large.karpenter.spot and r.cluster == "eks":
            for v in sizing.spot_verdicts(spec, r, models):
                if not v.spot:
                    out.append(Problem(f"{where}.onDemandFloorNodes",
                                       f"{v.model}: {v.reason}; spot would lose replicas the model needs: raise "
                                       f"onDemandFloorNodes to >= {-(-sizing.min_gpus(r, models) // spec.gpu.per_node)} "
                                       "or set large.karpenter.spot: false"))
    if spec.large.topology in ("active-active", "global"):
        for n in sizing.n_plus_one(spec, models):
            if n.holds or len(n.per_region_qps) < 2:
                continue
            m = models[n.model]
            region_index = next(i for i, r in enumerate(spec.target.regions) if r.name == n.largest)
            per_replica = sizing.usable_qps(m, 1)
            short = n.peak_qps - n.without_largest_qps
            out.append(Problem(
                f"target.regions[{region_index}].models",
                f"N+1: without {n.largest!r} (the largest, {n.per_region_qps[n.largest]:.1f} req/s of {n.model}) the "
                f"other regions carry {n.without_largest_qps:.1f} req/s at their maxReplicas, below the peak "
                f"{n.peak_qps:g} req/s (models[{names[n.model]}].expectedQps or slo.expectedQps; "
                f"{m.plan.replica_capacity_qps:.2f} req/s per replica by the planner, at "
                f"{sizing.DEFAULT_TARGET_UTILIZATION:.0%}): add >= {-(-short // per_replica):.0f} maxReplicas "
                "outside the largest region"))


def problems(spec: StackSpec) -> list[Problem]:
    if not isinstance(spec.target, MultiRegionTarget):
        return []  # rules.py reports the target kind
    if spec.large is None:
        return [Problem("large", "required for tier large: topology and globalTraffic at least")]
    out: list[Problem] = []
    if spec.large.platform.gitops is not None:
        out.append(Problem("large.platform.gitops", "the large tier deploys with one ApplicationSet: set large.gitops"))
    names: dict[str, int] = {}
    for i, m in enumerate(spec.models):
        name = default_name(m)
        if name is not None:
            names.setdefault(name, i)
        if m.autoscaling is not None:
            out.append(Problem(f"models[{i}].autoscaling", "the large tier scales per region: set "
                               "target.regions[].models[].minReplicas/maxReplicas instead"))
    _traffic(spec, out)
    _regions(spec, names, out)
    if spec.large.canary is not None:
        for j, c in enumerate(spec.large.canary.models):
            if c.name not in names:
                out.append(Problem(f"large.canary.models[{j}].name", f"{c.name!r} is not a model name"
                                   f"{suggestion(c.name, names)}; allowed: {', '.join(names)}"))
        if spec.large.canary.routing == "httproute" and spec.large.platform.routing.kind != "httproute":
            out.append(Problem("large.canary.routing", "httproute weights need large.platform.routing.kind: httproute "
                               "(the regions route with Ingress); or use virtualservice"))
    if not out:
        _capacity(spec, names, out)
    return out


def _per_region(check, stack, out: Path):
    from components.validate.registry import Outcome

    outcomes = [(r.name, check(out / r.name)) for r in stack.spec.target.regions]
    name = outcomes[0][1].name
    return Outcome(name, all(o.ok for _, o in outcomes), "; ".join(f"{r}: {o.detail}" for r, o in outcomes))


def validators(stack) -> list:
    """The medium tier's validators, run on every region's folder (build/<stack>/<region>/)."""
    from components.validate import registry as v

    checks = [functools.partial(v.kubernetes_builtin, kubernetes_version=r.kubernetes_version)
              for r in stack.spec.target.regions]

    def builtin(out: Path):
        from components.validate.registry import Outcome
        results = [(r.name, check(out / r.name)) for r, check in zip(stack.spec.target.regions, checks)]
        return Outcome("kubernetes-validate --strict (each region's version)", all(o.ok for _, o in results),
                       "; ".join(f"{r}: {o.name.split('(')[-1].rstrip(')')} {o.detail}" for r, o in results))

    out = [builtin] + [functools.partial(_per_region, c, stack) for c in (v.kubernetes_crds, v.helm_values_keys, v.checkov)]
    if stack.spec.monitoring.enabled:
        out.append(functools.partial(_per_region, v.metric_names, stack))
    return out
