"""`tierscale migrate plan`: how to move from one stack to another, gated on SLOs.

The method is the whitepaper's (ch. 4.6): three strategies — rolling restart (0-10% extra
capacity), buffer-pool replacement (10-20%, recommended for production; for a move to another
tier or cluster the new fleet runs beside the old one), fallback mode (traffic to a cheaper
endpoint while the primary is replaced); warm-up with synthetic requests before real traffic;
canary 1-5% -> 20% -> 50% -> 100% with 30 minutes per step; the P0-P4 checklist. Every figure
(GPUs, cost, cold start) comes from the two resolved stacks and the planner.

The JSON form (`MigrationPlan.to_json`) is a stable interface: keys are only ever added.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Optional

from components.facts import gpu_catalog
from components.migration import gates as gate_defs
from components.spec import ResolvedStack

Strategy = Literal["rolling", "buffer", "fallback"]
STRATEGIES: tuple[str, ...] = ("rolling", "buffer", "fallback")

# Whitepaper ch. 4.6: canary 1-5% -> 20% -> 50% -> 100%, 30 minutes per step.
CANARY_STEPS = (5, 20, 50, 100)
HOLD_MINUTES = 30
WARMUP_REQUESTS = 50  # synthetic requests per new replica before it takes real traffic


@dataclass(frozen=True)
class ModelChange:
    name: str
    change: Literal["added", "removed", "resized", "unchanged", "upgraded"]
    detail: str


@dataclass
class MigrationPlan:
    source: str
    destination: str
    strategy: str
    recommended: str
    why: str
    changes: list[ModelChange]
    traffic_steps: list[dict]
    gates: list[gate_defs.Gate]
    phases: list[dict]
    rollback: str
    extra_gpus: dict[str, int]
    extra_cost_usd: dict[str, Optional[float]]
    cold_start_s: dict[str, int]
    tier_change: Optional[str]
    warnings: list[str] = field(default_factory=list)
    # What the gates were built with (`migrate run` re-derives the source's baseline terms).
    dst_selector: str = '{deployment="dst"}'
    src_selector: str = '{deployment="src"}'
    gate_window: str = gate_defs.WINDOW

    def to_json(self) -> dict:
        return {
            "source": self.source, "destination": self.destination,
            "strategy": self.strategy, "recommended_strategy": self.recommended, "why": self.why,
            "tier_change": self.tier_change,
            "changes": [c.__dict__ for c in self.changes],
            "phases": self.phases,
            "traffic_steps": self.traffic_steps,
            "gates": [g.to_json() for g in self.gates],
            "rollback": self.rollback,
            "extra_gpus": self.extra_gpus[self.strategy],
            "extra_gpus_by_strategy": self.extra_gpus,
            "extra_cost_usd_by_strategy": self.extra_cost_usd,
            "cold_start_s": self.cold_start_s,
            "warnings": self.warnings,
            "selectors": {"destination": self.dst_selector, "source": self.src_selector},
            "gate_window": self.gate_window,
        }


def _gpus(stack: ResolvedStack) -> int:
    return sum(m.min_replicas * m.gpus_per_replica for m in stack.models)


def _usd_per_gpu_hour(stack: ResolvedStack) -> Optional[float]:
    instances = gpu_catalog()[stack.spec.gpu.type].aws_instances
    return min((i.usd_per_hour / i.gpus for i in instances), default=None)


def _changes(src: ResolvedStack, dst: ResolvedStack) -> list[ModelChange]:
    by_served_src = {m.served_model_name: m for m in src.models}
    by_served_dst = {m.served_model_name: m for m in dst.models}
    out = []
    for served, m in by_served_dst.items():
        old = by_served_src.get(served)
        if old is None:
            out.append(ModelChange(m.name, "added", f"{served} is new in the destination"))
            continue
        diffs = []
        if (old.hf_repo, old.spec.revision, old.quantization) != (m.hf_repo, m.spec.revision, m.quantization):
            diffs.append(f"weights {old.hf_repo}@{old.spec.revision or 'main'} {old.quantization} -> "
                         f"{m.hf_repo}@{m.spec.revision or 'main'} {m.quantization}")
        shape = lambda x: (x.tensor_parallel, x.pipeline_parallel, x.min_replicas, x.max_replicas)  # noqa: E731
        if shape(old) != shape(m):
            diffs.append(f"TP{old.tensor_parallel}xPP{old.pipeline_parallel} x {old.min_replicas}..{old.max_replicas} -> "
                         f"TP{m.tensor_parallel}xPP{m.pipeline_parallel} x {m.min_replicas}..{m.max_replicas}")
        kind = "upgraded" if diffs and diffs[0].startswith("weights") else ("resized" if diffs else "unchanged")
        out.append(ModelChange(m.name, kind, "; ".join(diffs) or "same weights and shape"))
    for served, m in by_served_src.items():
        if served not in by_served_dst:
            out.append(ModelChange(m.name, "removed", f"{served} is served by the source and NOT by the destination: "
                                   "clients that request it get a 404 once traffic moves"))
    return out


def _phases(strategy: str, gate_list: list[gate_defs.Gate], src_name: str, dst_name: str) -> list[dict]:
    gate_names = ", ".join(g.name for g in gate_list)
    bring_up = {
        "rolling": f"replace {src_name}'s replicas in place, maxSurge at a time",
        "buffer": f"`pulumi up --stack {dst_name}` beside {src_name} (the buffer pool)",
        "fallback": f"route traffic to the fallback endpoint, then replace {src_name} with {dst_name}",
    }[strategy]
    return [
        {"id": "P0", "name": "preparation",
         "tasks": ["freeze changes to both stacks", f"full load test of {dst_name} (`tierscale bench --stack {dst_name}`)",
                   "verify backups and that `pulumi stack export` of the source succeeds",
                   f"`tierscale validate --strict --stack {dst_name}`"],
         "criteria": ["load test meets the destination's SLOs", "rollback rehearsed"]},
        {"id": "P1", "name": "pilot",
         "tasks": [bring_up, f"warm up every new replica with {WARMUP_REQUESTS} synthetic requests",
                   f"shift {CANARY_STEPS[0]}% of traffic"],
         "criteria": [f"gates hold for {HOLD_MINUTES} minutes: {gate_names}", "error rate no increase",
                      "latency change < 10%", "golden-set outputs within tolerance for a weights/quantization change"]},
        {"id": "P2", "name": "rollout",
         "tasks": [f"shift {p}% and hold {HOLD_MINUTES} minutes" for p in CANARY_STEPS[1:]],
         "criteria": ["every step's gates hold; a failed gate sets the destination's weight back to 0"]},
        {"id": "P3", "name": "acceptance",
         "tasks": [f"hold 100% on {dst_name} for {HOLD_MINUTES} minutes", "compare cost and SLO dashboards"],
         "criteria": ["gates hold at 100%", "no alert fired"]},
        {"id": "P4", "name": "decommission",
         "tasks": [f"`pulumi destroy --stack {src_name}` after the rollback window", "remove the old stack's DNS/weights"],
         "criteria": ["source receives no traffic for a full day"]},
    ]


def _recommend(src: ResolvedStack, dst: ResolvedStack, changes: list[ModelChange]) -> tuple[str, str]:
    if src.spec.tier != dst.spec.tier or src.spec.target.kind != dst.spec.target.kind:
        return "buffer", (f"the tier or cluster changes ({src.spec.tier}/{src.spec.target.kind} -> "
                          f"{dst.spec.tier}/{dst.spec.target.kind}): the destination runs beside the source and takes "
                          "traffic in gated steps; either side can carry 100% until the end")
    if all(c.change in ("unchanged", "resized") for c in changes):
        return "rolling", "same tier and cluster, only replica counts or parallelism change: replace in place"
    return "buffer", "new weights on the same cluster: run them as a separate pool and shift traffic in gated steps"


def plan_migration(src_name: str, src: ResolvedStack, dst_name: str, dst: ResolvedStack,
                   strategy: Optional[str] = None, dst_selector: str = '{deployment="dst"}',
                   src_selector: str = '{deployment="src"}', window: str = gate_defs.WINDOW) -> MigrationPlan:
    changes = _changes(src, dst)
    recommended, why = _recommend(src, dst, changes)
    chosen = strategy or recommended
    warnings: list[str] = []
    cross = src.spec.tier != dst.spec.tier or src.spec.target.kind != dst.spec.target.kind
    if chosen == "rolling" and cross:
        warnings.append("rolling restart replaces replicas in place and cannot move to another tier or cluster; "
                        "use buffer (or fallback when the GPUs cannot run both)")
    if chosen == "fallback" and not (src.spec.gateway.fallback_model or dst.spec.gateway.fallback_model):
        warnings.append("fallback needs a fallback endpoint (gateway.fallbackModel on the small tier's LiteLLM, or an "
                        "external OpenAI-compatible API): none is configured")
    for c in changes:
        if c.change == "removed":
            warnings.append(f"{c.name}: {c.detail}")
    dst_gpus = _gpus(dst)
    surge = max((m.spec.max_surge * m.gpus_per_replica for m in dst.models), default=0)
    extra = {"rolling": surge, "buffer": dst_gpus if cross else math.ceil(0.2 * dst_gpus), "fallback": 0}
    hours = len(CANARY_STEPS) * HOLD_MINUTES / 60 + 1  # the steps plus bring-up and warm-up
    price = _usd_per_gpu_hour(dst)
    cost = {s: (None if price is None else round(n * price * hours, 2)) for s, n in extra.items()}
    if price is None:
        warnings.append(f"no price for {dst.spec.gpu.type}: extra cost not computed")
    gate_list = gate_defs.gates(dst_selector, src_selector, dst.spec.slo.ttft_p99_ms, dst.spec.slo.tpot_p99_ms, window)
    steps = [{"percent": p, "hold": f"{HOLD_MINUTES}m"} for p in CANARY_STEPS]
    cold = {m.name: m.startup_budget_s for m in dst.models}
    rollback = ("set the destination's weight to 0 (nginx upstream weight / HTTPRoute backendRef weight / Route 53 "
                "weight or accelerator dial) within one gate evaluation interval; the source keeps serving at its "
                "full size until P4")
    tier_change = None if src.spec.tier == dst.spec.tier else f"{src.spec.tier} -> {dst.spec.tier}"
    return MigrationPlan(src_name, dst_name, chosen, recommended, why, changes, steps, gate_list,
                         _phases(chosen, gate_list, src_name, dst_name), rollback, extra, cost, cold, tier_change,
                         warnings, dst_selector, src_selector, window)


def hold_seconds(hold: str) -> float:
    """A step's hold ("30m", "90s", "1h") in seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    if not hold or hold[-1] not in units:
        raise ValueError(f"hold {hold!r}: expected a number followed by s, m or h")
    return float(hold[:-1]) * units[hold[-1]]

