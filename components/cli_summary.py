"""What `tierscale render` tells a user about a rendered stack: the facts that decide whether to
deploy it (GPUs by type, cost, endpoints, failover time on the large tier), not the resource list.

summary(result) is the JSON document of `render --json` and the source of the text summary; the
cost is the planner's own figure for each model (plan.json: cost_per_hour_usd/cost_per_year_usd at
the planner's sizing and its price table), summed over the models.
"""

from __future__ import annotations

from typing import Any, Optional


def _gpu_counts(models, default_type: str, attr: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for m in models:
        kind = m.gpu_type or default_type
        counts[kind] = counts.get(kind, 0) + getattr(m, attr) * m.gpus_per_replica
    return dict(sorted(counts.items()))


def _cost(models) -> Optional[dict[str, Any]]:
    plans = [m.plan for m in models]
    if not plans or any(p.cost_per_hour_usd is None for p in plans):
        return None
    sources = sorted({p.price_source for p in plans if getattr(p, "price_source", None)})
    return {"per_hour_usd": round(sum(p.cost_per_hour_usd for p in plans), 2),
            "per_year_usd": round(sum(p.cost_per_year_usd or p.cost_per_hour_usd * 8760 for p in plans), 2),
            "basis": "planner figures per model (plan.json), summed", "price_source": ", ".join(sources) or None}


def _endpoints(result) -> list[str]:
    outputs = result.outputs or {}
    found = []
    if isinstance(outputs.get("endpoint"), str):
        found.append(outputs["endpoint"])
    spec = result.stack.spec
    for region in getattr(getattr(spec, "target", None), "regions", None) or []:
        hostname = getattr(getattr(region, "gateway", None), "hostname", None)
        if hostname:
            found.append(f"{region.name}: {hostname}")
    return found


def _failover(result) -> Optional[dict[str, Any]]:
    large = (result.outputs or {}).get("large")
    failover = large.get("failover") if isinstance(large, dict) else None
    if not isinstance(failover, dict):
        return None
    return {"total_s": failover.get("totalS"), "health_check_s": failover.get("healthCheckS"),
            "dns_ttl_s": failover.get("dnsTtlS"), "rto_s": failover.get("rtoS"),
            "meets_rto": failover.get("meetsRto"), "via": failover.get("via")}


def summary(result, next_command: Optional[list[str]] = None) -> dict[str, Any]:
    """The `render --json` document (docs/reference/cli-conventions.md)."""
    stack = result.stack
    default_type = stack.spec.gpu.type
    gpus = _gpu_counts(stack.models, default_type, "replicas")
    at_max = _gpu_counts(stack.models, default_type, "max_replicas")
    outputs = result.outputs or {}
    return {
        "stack": result.stack_name,
        "tier": stack.spec.tier,
        "out_dir": str(result.out_dir),
        "files": len(result.files),
        "resources": len(result.resources),
        "resources_by_type": dict(sorted(result.counts_by_type().items())),
        "gpus": gpus,
        "gpus_at_max_replicas": at_max,
        "cost": _cost(stack.models),
        "endpoints": _endpoints(result),
        "hosts": list(outputs.get("hosts") or []),
        "failover": _failover(result),
        "models": [{"name": m.name, "gpu_type": m.gpu_type or default_type, "tensor_parallel": m.tensor_parallel,
                    "pipeline_parallel": m.pipeline_parallel, "replicas": m.replicas, "min_replicas": m.min_replicas,
                    "max_replicas": m.max_replicas, "gpus": m.replicas * m.gpus_per_replica,
                    "max_model_len": m.max_model_len, "startup_budget_s": m.startup_budget_s,
                    "derived": sorted(m.derived)} for m in stack.models],
        "warnings": [str(w) for w in stack.warnings],
        "notes": list(stack.notes),
        "next": next_command,
    }


def text_lines(doc: dict[str, Any]) -> list[str]:
    """The summary as lines of prose (wrapped by the caller's console, never cut)."""
    lines = [f"{doc['stack']} ({doc['tier']}): {doc['resources']} resources, {doc['files']} files in {doc['out_dir']}"]
    gpus = ", ".join(f"{n} x {kind}" for kind, n in doc["gpus"].items()) or "none"
    if doc["gpus_at_max_replicas"] != doc["gpus"]:
        gpus += " (at maxReplicas: " + ", ".join(f"{n} x {k}" for k, n in doc["gpus_at_max_replicas"].items()) + ")"
    lines.append(f"GPUs: {gpus}")
    cost = doc["cost"]
    if cost:
        lines.append(f"cost: ${cost['per_hour_usd']:,.2f}/hour, ${cost['per_year_usd']:,.0f}/year "
                     f"(planner, plan.json; {cost['price_source'] or 'planner price table'})")
    else:
        lines.append("cost: no price for this GPU type in the planner's table")
    if doc["endpoints"]:
        lines.append("endpoints: " + "; ".join(doc["endpoints"]))
    if doc["hosts"]:
        lines.append("hosts: " + ", ".join(doc["hosts"]))
    f = doc["failover"]
    if f:
        verdict = "" if f.get("meets_rto") is None else (" (meets" if f["meets_rto"] else " (MISSES") + f" the RTO of {f['rto_s']} s)"
        lines.append(f"failover: {f['total_s']} s = detection {f['health_check_s']} s + DNS TTL {f['dns_ttl_s']} s "
                     f"via {f['via']}{verdict}")
    return lines
