"""`tierscale migrate check`: is a tier change due for the load a stack is planned for?

The whitepaper's evolution triggers (ch. 4.6, as issue #13 quotes them): a small deployment
moves to medium when it must carry more than 500 QPS or more than 20 nodes' worth of GPUs; a
medium one moves to large above 10,000 QPS or 50 nodes, or when it must survive a region.
The load is the stack's own: the sum of its models' expected QPS, and the nodes the planner
needs for it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from components.planner import tiering
from components.spec import ResolvedStack

# tier -> (QPS above which, nodes above which) the next tier is due.
TRIGGERS = {"small": ("medium", 500, 20), "medium": ("large", tiering.QPS_LARGE_ABOVE, tiering.NODES_MEDIUM_MAX)}
TIER_OF = {"baremetal": "medium"}  # bare-metal fleets are sized like a medium cluster


@dataclass(frozen=True)
class TriggerReport:
    tier: str
    qps: float
    nodes: int
    due: bool
    next_tier: str | None
    reasons: list[str]


def check(stack: ResolvedStack) -> TriggerReport:
    tier = TIER_OF.get(stack.spec.tier, stack.spec.tier)
    qps = sum(m.expected_qps for m in stack.models)
    gpus = sum(m.plan.gpus for m in stack.models)
    nodes = math.ceil(gpus / stack.spec.gpu.per_node) if gpus else 0
    if tier not in TRIGGERS:
        return TriggerReport(stack.spec.tier, qps, nodes, False, None, [f"{tier} is the largest tier"])
    nxt, qps_limit, node_limit = TRIGGERS[tier]
    due = qps > qps_limit or nodes > node_limit
    reasons = []
    if qps > qps_limit:
        reasons.append(f"planned load {qps:g} QPS > {qps_limit:g}")
    if nodes > node_limit:
        reasons.append(f"the planner needs {nodes} nodes ({gpus} GPUs) > {node_limit}")
    if not due:
        reasons.append(f"{qps:g} QPS <= {qps_limit:g} and {nodes} node(s) <= {node_limit}: stay on {stack.spec.tier}")
    return TriggerReport(stack.spec.tier, qps, nodes, due, nxt, reasons)
