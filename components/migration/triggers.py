"""`tierscale migrate check`: is a tier change due for the load a stack is planned for?

The decision is components.planner.verdict.stack_verdict's, with the one set of tier thresholds
in components.planner.tiering (QPS >= 500 or more than one host -> medium; > 10,000 QPS or > 50
nodes -> large; a stated availability above 99% / 99.9% likewise). The load is the stack's own:
the sum of its models' expected QPS and the nodes the planner needs for it. `validate --strict`
fails (key `tier`) exactly when this reports a move as due.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.planner import tiering, verdict
from components.spec import ResolvedStack


@dataclass(frozen=True)
class TriggerReport:
    tier: str
    qps: float
    nodes: int
    due: bool
    next_tier: str | None
    reasons: list[str]


def check(stack: ResolvedStack) -> TriggerReport:
    v = verdict.stack_verdict(stack.spec, stack.models)
    sized = v.sized_as
    if sized not in tiering.TIERS:
        return TriggerReport(stack.spec.tier, v.qps, v.nodes, False, None, [f"{stack.spec.tier} has no tier thresholds"])
    if v.tier_holds:
        largest = tiering.next_tier(sized) is None
        reason = (f"{sized} is the largest tier" if largest else
                  f"{v.qps:g} QPS and {v.nodes} node(s) ({v.gpus} GPUs): {v.recommended.reason}; stay on {stack.spec.tier}")
        return TriggerReport(stack.spec.tier, v.qps, v.nodes, False, None, [reason])
    reasons = []
    order = tiering.TIERS.index
    if order(tiering.tier_for_qps(v.qps)) > order(sized):
        limit = tiering.QPS_MEDIUM_FROM if sized == "small" else tiering.QPS_LARGE_ABOVE
        reasons.append(f"planned load {v.qps:g} QPS {'>' if v.qps > limit else '>='} {limit:g}")
    if order(tiering.tier_for_nodes(v.nodes)) > order(sized):
        limit = tiering.NODES_SMALL_MAX if sized == "small" else tiering.NODES_MEDIUM_MAX
        reasons.append(f"the planner needs {v.nodes} nodes ({v.gpus} GPUs) > {limit}"
                       + (" (the small tier is one host)" if sized == "small" else ""))
    availability = stack.spec.slo.availability
    if availability is not None and order(tiering.tier_for_availability(availability)) > order(sized):
        limit = tiering.AVAILABILITY_SMALL_MAX if sized == "small" else tiering.AVAILABILITY_MEDIUM_MAX
        reasons.append(f"slo.availability {availability:g}% > {limit:g}%")
    return TriggerReport(stack.spec.tier, v.qps, v.nodes, True, v.next_tier, reasons or [v.recommended.reason])
