"""Large-tier rules (topology, global traffic, regions, N+1, spot) and its validators.

`problems(spec)` runs through the tier registry (`checks`) before the models resolve. The rules
that need the planner's figures (per-region placement, per-replica capacity for N+1 and the
standby, startup budgets for spot) are `resolved_problems(spec, models)`, the registry's
`resolved` role: components.spec.rules calls it once, after every model resolved and the
stack's placement succeeded, with the models it resolved (nothing is resolved twice).
"""

from __future__ import annotations

import functools
from pathlib import Path

from components.large import facts, sizing
from components.spec import aws_regions, kubernetes_rules
from components.spec.errors import Problem
from components.large import traffic as global_traffic
from components.spec.model import MultiRegionTarget, StackSpec
from components.spec.model_resolution import default_name
from components.spec.resolved import ResolvedModel
from components.suggestions import suggestion


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
        if traffic.kind == "globalAccelerator":
            # GA ignores the endpoint group's own check for NLB/ALB endpoints: the load
            # balancers' target health decides (components/large/traffic.failover).
            key = "large.globalTraffic.loadBalancerHealthCheck"
            how = f"{f.basis} = {f.detection_s} s, no DNS TTL (static anycast addresses)"
        else:
            key = "large.globalTraffic.ttlS" if f.dns_ttl_s else "large.globalTraffic.healthCheck.failureThreshold"
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
    out += global_traffic.health_check_problems(traffic, spec.security.tls.enabled)
    if sum(r.traffic_dial == 0 for r in regions) == len(regions):
        out.append(Problem("target.regions", "every region has trafficDial 0: nothing serves"))


def _covers(certificate_name: str, host: str) -> bool:
    """Does a certificate / route name cover `host`? A wildcard covers exactly one label (RFC 6125 6.4.3)."""
    if certificate_name.startswith("*."):
        return host.count(".") == certificate_name.count(".") and host.endswith(certificate_name[1:])
    return certificate_name == host


def _geography(spec: StackSpec, out: list[Problem]) -> None:
    """AWS regions that exist and share a partition, clusters counted once, names that neither loop
    nor collide, and what Route 53 allows at a zone apex."""
    regions, traffic, topology = spec.target.regions, spec.large.global_traffic, spec.large.topology
    partitions: dict[str, int] = {}
    eks_regions: dict[str, int] = {}
    clusters: dict[tuple, int] = {}
    hostnames: dict[str, int] = {}
    for i, r in enumerate(regions):
        where = f"target.regions[{i}]"
        unknown = aws_regions.unknown_region(r.aws_region)
        if unknown:
            out.append(Problem(f"{where}.awsRegion", unknown))
        else:
            part = aws_regions.partition(r.aws_region)
            if partitions and part not in partitions:
                first = next(iter(partitions))
                out.append(Problem(f"{where}.awsRegion", (
                    f"{r.aws_region!r} is in AWS partition {part}, regions[{partitions[first]}] in {first}: one stack's "
                    "credentials, hosted zone, health checks and accelerator belong to one partition")))
            partitions.setdefault(part, i)
            if r.cluster == "eks":
                if r.aws_region in eks_regions and topology != "single-region-multi-az":
                    out.append(Problem(f"{where}.awsRegion", (
                        f"{r.aws_region!r} is also regions[{eks_regions[r.aws_region]}]'s AWS region: one regional "
                        f"outage takes both, so topology {topology!r} would count one failure domain twice; use "
                        "another AWS region, or one region with more gpuNodes")))
                eks_regions.setdefault(r.aws_region, i)
        if r.cluster == "kubernetes":
            # What names an existing cluster to kubectl: the kubeconfig file and its context (None:
            # the file's current context).
            cluster = (r.kubeconfig or "~/.kube/config", r.context)
            if cluster in clusters:
                which = f"{r.context!r}" if r.context else "the kubeconfig's current context"
                out.append(Problem(f"{where}.context", (
                    f"{which} is also regions[{clusters[cluster]}]'s cluster (same kubeconfig and context): one "
                    "cluster would be counted twice for capacity and N+1, and each region's objects deployed on top "
                    "of the other's: give each region its own context (or list the cluster once)")))
            clusters.setdefault(cluster, i)
        host = r.gateway.hostname
        if host.startswith("*."):
            out.append(Problem(f"{where}.gateway.hostname", (
                f"{host!r} is a wildcard; records point at and health checks probe one real name: give the region "
                "gateway's own DNS name")))
        elif host == traffic.domain:
            out.append(Problem(f"{where}.gateway.hostname", (
                f"{host!r} is the global name large.globalTraffic.domain itself: its record would point at itself (a "
                "CNAME loop) and the health check would probe the global name, not this region; use the region "
                "gateway's own name, e.g. <region>." + traffic.domain)))
        elif host in hostnames:
            out.append(Problem(f"{where}.gateway.hostname", (
                f"{host!r} is also regions[{hostnames[host]}]'s gateway: both records and health checks would reach "
                "the same load balancer, so one region's failure could not be told from the other's")))
        hostnames.setdefault(host, i)
    # A CNAME cannot sit at a zone apex (RFC 1034 3.6.2: a CNAME has no other data, the apex has
    # SOA and NS; Route 53 refuses it: "You can't create a CNAME record at the zone apex", Route 53
    # developer guide, "Choosing between alias and non-alias records"). The route53 kind writes
    # CNAME records (components/large/traffic.py); a name of two labels is always a zone's apex
    # (no hosted zone can be a bare top-level domain).
    if traffic.domain.startswith("*."):
        out.append(Problem("large.globalTraffic.domain", (
            f"{traffic.domain!r} is a wildcard; clients, the certificate and every region's route need the one name "
            "the API is published under, e.g. llm.example.com")))
    elif traffic.kind == "route53" and traffic.domain.count(".") == 1:
        out.append(Problem("large.globalTraffic.domain", (
            f"{traffic.domain!r} is a zone apex, where Route 53 refuses the CNAME records the route53 kind creates "
            f"(RFC 1034 3.6.2): use a name below it, e.g. llm.{traffic.domain}, or globalTraffic.kind: "
            "globalAccelerator (an alias A record)")))
    tls = spec.security.tls
    if tls.hostname and not _covers(tls.hostname, traffic.domain):
        out.append(Problem("security.tls.hostname", (
            f"{tls.hostname!r} does not cover large.globalTraffic.domain {traffic.domain!r}, the name clients use: "
            "every region's route serves only security.tls.hostname (and its certificate names only it), so requests "
            f"for {traffic.domain} would get 404 or a certificate error: set it to {traffic.domain!r}")))
    if not spec.security.api_auth:
        out.append(Problem("security.apiAuth", (
            f"false on the large tier: {traffic.domain} is published in Route 53 / on anycast addresses for anyone "
            "to reach, so anyone could use every region's GPUs; set apiAuth: true (clients send the apiKey secret)")))


def _primary(spec: StackSpec, out: list[Problem]) -> None:
    """The EKS regions' model buckets replicate from the primary's (components/large/component.py):
    an existing-cluster primary has no bucket, so they would stay empty."""
    if not spec.large.model_storage.enabled:
        return
    primary = sizing.primary(spec)
    eks = [r.name for r in spec.target.regions if r.cluster == "eks"]
    if primary.cluster != "eks" and eks:
        key = "target.primaryRegion" if spec.target.primary_region else "target.regions[0]"
        out.append(Problem(key, (
            f"{primary.name!r} is the primary region but an existing cluster, which gets no model bucket; the buckets "
            f"of {', '.join(eks)} replicate from the primary's, so they would stay empty: make an EKS region the "
            "primary (target.primaryRegion), or set large.modelStorage.enabled: false")))


def _standby(spec: StackSpec, names: dict[str, int], out: list[Problem]) -> None:
    """active-passive: the secondary serves every model the primary does, and takes traffic."""
    if spec.large.topology != "active-passive" or len(spec.target.regions) < 2:
        return
    primary = sizing.primary(spec)
    standby = [(i, r) for i, r in enumerate(spec.target.regions) if r is not primary]
    for i, r in standby:
        if r.traffic_dial == 0 and spec.large.global_traffic.kind == "route53":
            out.append(Problem(f"target.regions[{i}].trafficDial", (
                f"0 withdraws {r.name!r}'s SECONDARY record: when {primary.name!r} fails, Route 53 has nowhere to "
                "fail over to; keep the standby's dial above 0")))
    for rm in primary.models:
        if rm.name in names and not any(m.name == rm.name for _, r in standby for m in r.models):
            i, r = standby[0]
            out.append(Problem(f"target.regions[{i}].models", (
                f"the standby {r.name!r} does not serve {rm.name!r}, which the primary {primary.name!r} serves: after a "
                f"failover every {rm.name} request would fail; list it here")))


def _standby_capacity(spec: StackSpec, models: dict, names: dict[str, int], out: list[Problem]) -> None:
    """active-passive: at its maxReplicas the standby carries each model's peak on its own."""
    if spec.large.topology != "active-passive" or len(spec.target.regions) < 2:
        return
    primary = sizing.primary(spec)
    for name, m in models.items():
        serving = [(i, r, rm) for i, r in enumerate(spec.target.regions) if r is not primary
                   for rm in r.models if rm.name == name]
        if not serving:
            continue
        carried = sum(sizing.usable_qps(m, rm.max_replicas) for _, _, rm in serving)
        if carried < m.expected_qps:
            i, r, rm = serving[0]
            short = -(-(m.expected_qps - carried) // sizing.usable_qps(m, 1))
            out.append(Problem(f"target.regions[{i}].models", (
                f"the standby {r.name!r} carries {carried:.1f} req/s of {name} at maxReplicas {rm.max_replicas}, below "
                f"the peak {m.expected_qps:g} req/s (models[{names[name]}].expectedQps or slo.expectedQps; "
                f"{m.plan.replica_capacity_qps:.2f} req/s per replica by the planner, at "
                f"{sizing.DEFAULT_TARGET_UTILIZATION:.0%}): after a failover it cannot carry the load; raise its "
                f"maxReplicas by >= {short:.0f}")))


def _drained_capacity(spec: StackSpec, models: dict, names: dict[str, int], out: list[Problem]) -> None:
    """active-active/global with route53: a region at trafficDial 0 has its record withdrawn, so
    the regions still serving must carry each model's peak without it."""
    if spec.large.topology not in ("active-active", "global") or spec.large.global_traffic.kind != "route53":
        return
    drained = [i for i, r in enumerate(spec.target.regions) if r.traffic_dial == 0]
    if not drained or len(drained) == len(spec.target.regions):
        return
    for name, m in models.items():
        carried = sum(sizing.usable_qps(m, rm.max_replicas) for r in spec.target.regions if r.traffic_dial > 0
                      for rm in r.models if rm.name == name)
        if carried < m.expected_qps:
            i = drained[0]
            out.append(Problem(f"target.regions[{i}].trafficDial", (
                f"0 withdraws the record of {spec.target.regions[i].name!r}; the regions still serving carry {carried:.1f} "
                f"req/s of {name} at their maxReplicas, below the peak {m.expected_qps:g} req/s "
                f"(models[{names[name]}].expectedQps or slo.expectedQps): raise their maxReplicas before draining")))


def _regions(spec: StackSpec, names: dict[str, int], out: list[Problem]) -> None:
    target = spec.target
    seen: dict[str, int] = {}
    for i, r in enumerate(target.regions):
        where = f"target.regions[{i}]"
        if r.name in seen:
            out.append(Problem(f"{where}.name", f"{r.name!r} is already regions[{seen[r.name]}]"))
        seen.setdefault(r.name, i)
        # Regions may share a namespace (an ApplicationSet deploys one path everywhere): regional
        # objects are named by region (components/large/regional.py). One cluster listed twice is
        # refused by _geography (same kubeconfig context).
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


def resolved_problems(spec: StackSpec, resolved: list[ResolvedModel]) -> list[Problem]:
    """The registry's `resolved` role: rules on the models components.spec.rules resolved and
    placed (called once, only when every model resolved and `problems(spec)` found nothing)."""
    if not isinstance(spec.target, MultiRegionTarget) or spec.large is None:
        return []
    models = {m.name: m for m in resolved}
    names = {m.name: i for i, m in enumerate(resolved)}
    out: list[Problem] = []
    _capacity(spec, models, names, out)
    return out


def _capacity(spec: StackSpec, models: dict[str, ResolvedModel], names: dict[str, int], out: list[Problem]) -> None:
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
    _standby_capacity(spec, models, names, out)
    _drained_capacity(spec, models, names, out)
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
    out += kubernetes_rules.problems(
        spec, spec.large.platform, "large.platform",
        [(f"target.regions[{i}].namespace", sizing.namespace(r)) for i, r in enumerate(spec.target.regions)],
        [spec.large.gitops.argocd_namespace] if spec.large.gitops else [])
    names: dict[str, int] = {}
    for i, m in enumerate(spec.models):
        name = default_name(m)
        if name is not None:
            names.setdefault(name, i)
        if m.autoscaling is not None:
            out.append(Problem(f"models[{i}].autoscaling", "the large tier scales per region: set "
                               "target.regions[].models[].minReplicas/maxReplicas instead"))
    _traffic(spec, out)
    _geography(spec, out)
    _regions(spec, names, out)
    if not out:
        _primary(spec, out)
    _standby(spec, names, out)
    if spec.large.canary is not None:
        for j, c in enumerate(spec.large.canary.models):
            if c.name not in names:
                out.append(Problem(f"large.canary.models[{j}].name", f"{c.name!r} is not a model name"
                                   f"{suggestion(c.name, names)}; allowed: {', '.join(names)}"))
        # canary.routing httproute: the model router splits body-routed traffic by the weight
        # (components/medium/router.py), behind an Ingress as well as an HTTPRoute.
    return out


def risks(spec: StackSpec) -> list[Problem]:
    """Legal but likely wrong (warnings: `validate --strict` fails on them)."""
    if not isinstance(spec.target, MultiRegionTarget) or spec.large is None:
        return []
    return kubernetes_rules.risks(spec, spec.large.platform, "large.platform")


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
