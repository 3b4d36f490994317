"""One verdict: SLO misses, capacity and tier, decided once for every command.

`tierscale plan`, `plan --stack`, `validate` (its capacity warnings, fatal under `--strict`) and
`migrate check` all call this module, so they cannot disagree:

  model_verdict(spec, i, m)   the model as configured (its TP/PP, maxNumSeqs and its peak
                              replicas: autoscaling.maxReplicas or replicas) against the stack's
                              load and SLOs, and the planner's optimum for the same load; each
                              finding names the stack key to change
  stack_verdict(spec, models) every model, the load (sum of expected QPS), the nodes the planner
                              needs for it, and the tier that holds it (tiering.recommend_tier);
                              a stack whose tier does not hold its load is a finding (key `tier`)
                              and is what `migrate check` reports as a move that is due

A configured plan misses an SLO when its estimate exceeds the SLO itself; sizing (`plan`) adds
the model's measured error as headroom (PlanRequest.slo_margin), verdicts do not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

from components.planner import tiering
from components.planner.plan import (DEFAULT_TARGET_UTILIZATION, Plan, PlanError, PlanRequest, compare_to_optimum,
                                     plan, replicas_for_availability)

# Bare-metal fleets are sized like a medium cluster (several hosts, no cloud autoscaling).
TIER_EQUIVALENT = {"baremetal": "medium"}


@dataclass(frozen=True)
class Finding:
    key: str
    message: str
    kind: str  # slo | capacity | availability | cost | tier


@dataclass
class ModelVerdict:
    index: int
    name: str
    configured: Optional[Plan]
    optimum: Optional[Plan]
    findings: list[Finding] = field(default_factory=list)

    @property
    def meets_slo(self) -> bool:
        return not any(f.kind in ("slo", "capacity", "availability") for f in self.findings)


@dataclass
class StackVerdict:
    stack_tier: str
    models: list[ModelVerdict]
    qps: float
    gpus: int
    nodes: int
    recommended: tiering.TierChoice
    findings: list[Finding] = field(default_factory=list)

    @property
    def sized_as(self) -> str:
        return TIER_EQUIVALENT.get(self.stack_tier, self.stack_tier)

    @property
    def tier_holds(self) -> bool:
        return tiering.TIERS.index(self.recommended.tier) <= tiering.TIERS.index(self.sized_as)

    @property
    def next_tier(self) -> Optional[str]:
        return None if self.tier_holds else self.recommended.tier

    def all_findings(self) -> list[Finding]:
        return [f for m in self.models for f in m.findings] + self.findings


def _replicas_key(i: int, m) -> str:
    if m.spec.autoscaling is not None:
        return f"models[{i}].autoscaling.maxReplicas"
    return f"models[{i}].replicas"


def _min_replicas_key(i: int, m) -> str:
    if m.spec.autoscaling is not None:
        return f"models[{i}].autoscaling.minReplicas"
    return f"models[{i}].replicas"


def requests_for(spec, m) -> tuple[PlanRequest, PlanRequest]:
    """The configured evaluation and the optimum search for one resolved model of a stack."""
    common = dict(
        model_key=m.catalog_key, model=m.facts, gpu_key=spec.gpu.type, quantization=m.quantization,
        max_model_len=m.max_model_len, qps=m.expected_qps, prompt_tokens=spec.slo.mean_prompt_tokens,
        output_tokens=spec.slo.mean_output_tokens, ttft_slo_ms=spec.slo.ttft_p99_ms, tpot_slo_ms=spec.slo.tpot_p99_ms,
        availability_pct=spec.slo.availability, gpu_memory_utilization=m.spec.gpu_memory_utilization,
        gpus_per_node=spec.gpu.per_node, kv_cache_dtype=m.spec.kv_cache_dtype,
    )
    configured = PlanRequest(**common, tensor_parallel=m.tensor_parallel, pipeline_parallel=m.pipeline_parallel,
                             max_num_seqs=m.spec.max_num_seqs, replicas=m.max_replicas, top=0, slo_margin=0.0)
    return configured, PlanRequest(**common)


def configured_and_optimum(spec, m) -> tuple[Plan, Plan]:
    configured, optimum = requests_for(spec, m)
    return plan(configured), plan(optimum)


def model_verdict(spec, i: int, m) -> ModelVerdict:
    where = f"models[{i}]"
    try:
        configured, optimum = configured_and_optimum(spec, m)
    except PlanError as exc:
        return ModelVerdict(i, m.name, None, None, [Finding(where, str(exc), "capacity")])
    v = ModelVerdict(i, m.name, configured, optimum)
    qps, slo = m.expected_qps, spec.slo
    qps_key = f"{where}.expectedQps" if m.spec.expected_qps is not None else "slo.expectedQps"
    overloaded = configured.utilization > DEFAULT_TARGET_UTILIZATION + 1e-9
    if overloaded and configured.replica_capacity_qps > 0:
        usable = configured.replica_capacity_qps * DEFAULT_TARGET_UTILIZATION
        spares = configured.spare_replicas
        needed = math.ceil(qps / usable - 1e-9) + spares
        v.findings.append(Finding(
            _replicas_key(i, m),
            f"{m.max_replicas} replica(s) of {m.name} carry about {max(0, m.max_replicas - spares) * usable:.1f} req/s "
            f"({configured.replica_capacity_qps:.2f} req/s each by the planner, planned at "
            f"{DEFAULT_TARGET_UTILIZATION:.0%}); it expects {qps:g} req/s ({qps_key}): needs >= {needed}", "capacity"))
    needed_for_availability = replicas_for_availability(slo.availability)
    if m.min_replicas < needed_for_availability:
        v.findings.append(Finding(
            _min_replicas_key(i, m),
            f"{m.min_replicas} replica(s) of {m.name} cannot meet slo.availability {slo.availability:g}% (one replica "
            f"down for an update or a fault is an outage); needs >= {needed_for_availability}, or lower "
            f"slo.availability to <= {tiering.AVAILABILITY_SMALL_MAX:g}", "availability"))
    if configured.tpot_ms_estimate > slo.tpot_p99_ms:
        v.findings.append(Finding(
            "slo.tpotP99Ms",
            f"{slo.tpot_p99_ms} ms is below what {m.name} can do on {spec.gpu.type} at tensorParallel "
            f"{m.tensor_parallel}: about {configured.tpot_ms_estimate:.1f} ms per token at its batch of "
            f"{configured.decode_batch}; raise it, or use more GPUs per replica or a smaller quantization", "slo"))
    if configured.ttft_ms_estimate > slo.ttft_p99_ms:
        shown = "unbounded (overloaded)" if configured.ttft_ms_estimate >= 1e9 else f"about {configured.ttft_ms_estimate:.0f} ms"
        if overloaded:
            cause = f"the replicas run at {min(configured.utilization, 9.99):.0%} of capacity: add replicas"
        else:
            cause = (f"prefill of {slo.mean_prompt_tokens} prompt tokens plus queueing at "
                     f"{configured.utilization:.0%} utilisation on {spec.gpu.type} at tensorParallel {m.tensor_parallel}: "
                     "add replicas, raise tensorParallel, or raise the SLO")
        v.findings.append(Finding(
            "slo.ttftP99Ms", f"{slo.ttft_p99_ms} ms is below {m.name}'s TTFT p99 of {shown} ({cause})", "slo"))
    for line in compare_to_optimum(configured, optimum, slo_misses=False):
        v.findings.append(Finding(where, line, "cost"))
    return v


def stack_verdict(spec, models) -> StackVerdict:
    verdicts = [model_verdict(spec, i, m) for i, m in enumerate(models)]
    qps = sum(m.expected_qps for m in models)
    gpus = sum(m.plan.gpus for m in models)
    nodes = math.ceil(gpus / spec.gpu.per_node) if gpus else 0
    recommended = tiering.recommend_tier(qps, nodes, spec.slo.availability)
    sv = StackVerdict(spec.tier, verdicts, qps, gpus, nodes, recommended)
    if spec.tier in TIER_EQUIVALENT or spec.tier in tiering.TIERS:
        if not sv.tier_holds:
            sv.findings.append(Finding(
                "tier", f"{spec.tier} does not hold this stack's load: {recommended.reason}; the planner needs "
                f"{nodes} node(s) ({gpus} GPUs) for {qps:g} QPS (`tierscale migrate check` reports the same move)",
                "tier"))
    return sv
