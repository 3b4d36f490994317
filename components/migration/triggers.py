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
    return TriggerReport(stack.spec.tier, v.qps, v.nodes, True, v.next_tier,
                         [f"planned load {v.qps:g} QPS on {v.nodes} node(s) ({v.gpus} GPUs): {v.recommended.reason}"])
