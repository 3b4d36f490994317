"""Which tier a workload needs: the one set of tier thresholds.

  QPS:           < 500 small, 500 - 10,000 medium, > 10,000 large
  nodes:         1 small (the small tier is one Docker host), 2 - 50 medium, > 50 large
  availability:  <= 99% small, <= 99.9% medium, > 99.9% large   (only when stated)
The recommendation is the largest tier any criterion asks for; the reason names them. An
availability nobody stated is no criterion (a default must not push every plan to medium).
`plan`, `plan --stack`, `validate` and `migrate check` all decide through this module
(components/planner/verdict.py), so the tier a plan names always holds that plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

TIERS = ("small", "medium", "large")

QPS_MEDIUM_FROM = 500
QPS_LARGE_ABOVE = 10_000
NODES_SMALL_MAX = 1  # the small tier is one host (components/small: Docker Compose on one GPU host)
NODES_MEDIUM_MAX = 50
AVAILABILITY_SMALL_MAX = 99.0
AVAILABILITY_MEDIUM_MAX = 99.9

# The whitepaper's rule of thumb, shown beside the computed figure as a cross-check.
RULE_OF_THUMB_GPUS_PER_1000_QPS = 8


@dataclass(frozen=True)
class TierChoice:
    tier: str
    reason: str


def tier_for_qps(qps: float) -> str:
    if qps < QPS_MEDIUM_FROM:
        return "small"
    return "medium" if qps <= QPS_LARGE_ABOVE else "large"


def tier_for_nodes(nodes: int) -> str:
    if nodes <= NODES_SMALL_MAX:
        return "small"
    return "medium" if nodes <= NODES_MEDIUM_MAX else "large"


def tier_for_availability(availability_pct: float) -> str:
    if availability_pct <= AVAILABILITY_SMALL_MAX:
        return "small"
    return "medium" if availability_pct <= AVAILABILITY_MEDIUM_MAX else "large"


def recommend_tier(qps: float, nodes: int, availability_pct: Optional[float] = None) -> TierChoice:
    votes = {
        "qps": (tier_for_qps(qps), f"{qps:g} QPS"),
        "nodes": (tier_for_nodes(nodes), f"{nodes} node(s)"),
    }
    if availability_pct is not None:
        votes["availability"] = (tier_for_availability(availability_pct), f"{availability_pct:g}% availability")
    tier = max((t for t, _ in votes.values()), key=TIERS.index)
    drivers = [f"{label} -> {t}" for t, label in votes.values()]
    deciding = [label for t, label in votes.values() if t == tier]
    unstated = "" if availability_pct is not None else "; availability not stated"
    return TierChoice(tier, f"{tier} because of {' and '.join(deciding)} ({'; '.join(drivers)}{unstated})")


def rule_of_thumb_gpus(qps: float) -> float:
    return qps / 1000 * RULE_OF_THUMB_GPUS_PER_1000_QPS


def next_tier(tier: str) -> str | None:
    i = TIERS.index(tier)
    return TIERS[i + 1] if i + 1 < len(TIERS) else None


def holds(tier: str, qps: float, nodes: int, availability_pct: Optional[float] = None) -> bool:
    """Does `tier` hold this load (no criterion asks for a larger tier)?"""
    return TIERS.index(recommend_tier(qps, nodes, availability_pct).tier) <= TIERS.index(tier)
