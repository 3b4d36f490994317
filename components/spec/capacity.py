"""Capacity warnings: what would deploy but miss the stack's own load, SLO or availability.

Each finding uses the planner's figures for the model as configured (components.planner) and
names the key to change. `render` and `validate` print them; `validate --strict` fails on them.
"""

from __future__ import annotations

import math

from components.planner import Plan, PlanError, PlanRequest, plan
from components.planner.plan import DEFAULT_TARGET_UTILIZATION, compare_to_optimum, replicas_for_availability
from components.planner import tiering
from components.spec.errors import Problem
from components.spec.resolved import ResolvedModel
from components.spec.model import StackSpec


def configured_and_optimum(spec: StackSpec, m: ResolvedModel) -> tuple[Plan, Plan]:
    """The planner's figures for the model as configured, and its optimum for the same load."""
    common = dict(
        model_key=m.catalog_key, model=m.facts, gpu_key=spec.gpu.type, quantization=m.quantization,
        max_model_len=m.max_model_len, qps=m.expected_qps, prompt_tokens=spec.slo.mean_prompt_tokens,
        output_tokens=spec.slo.mean_output_tokens, ttft_slo_ms=spec.slo.ttft_p99_ms, tpot_slo_ms=spec.slo.tpot_p99_ms,
        availability_pct=spec.slo.availability, gpu_memory_utilization=m.spec.gpu_memory_utilization,
        gpus_per_node=spec.gpu.per_node, kv_cache_dtype=m.spec.kv_cache_dtype,
    )
    configured = plan(PlanRequest(**common, tensor_parallel=m.tensor_parallel, pipeline_parallel=m.pipeline_parallel,
                                  max_num_seqs=m.spec.max_num_seqs, replicas=m.replicas, top=0))
    optimum = plan(PlanRequest(**common))
    return configured, optimum


def _cost_warnings(spec: StackSpec, i: int, m: ResolvedModel) -> list[Problem]:
    """The planner's > 1.5x-the-optimum rule (components.planner.plan.compare_to_optimum); SLO
    misses are reported above with their keys, so they are left out here."""
    try:
        configured, optimum = configured_and_optimum(spec, m)
    except PlanError:
        return []
    lines = compare_to_optimum(configured, optimum, slo_misses=False)
    return [Problem(f"models[{i}]", line) for line in lines]


def _replicas_key(i: int, m: ResolvedModel, bound: str) -> str:
    if m.spec.autoscaling is not None:
        return f"models[{i}].autoscaling.{bound}Replicas"
    return f"models[{i}].replicas"


def warnings_for(spec: StackSpec, models: list[ResolvedModel], total_gpus: int) -> list[Problem]:
    out: list[Problem] = []
    for i, m in enumerate(models):
        p, qps = m.plan, m.expected_qps
        usable = p.replica_capacity_qps * DEFAULT_TARGET_UTILIZATION
        if qps > 0 and usable > 0 and m.max_replicas * usable < qps:
            needed = math.ceil(qps / usable)
            out.append(Problem(_replicas_key(i, m, "max"),
                               f"{m.max_replicas} replica(s) of {m.name} carry about {m.max_replicas * usable:.1f} req/s "
                               f"({p.replica_capacity_qps:.2f} req/s each by the planner, planned at "
                               f"{DEFAULT_TARGET_UTILIZATION:.0%}); it expects {qps:g} req/s "
                               f"({'models[' + str(i) + '].expectedQps' if m.spec.expected_qps is not None else 'slo.expectedQps'}): needs >= {needed}"))
        needed_for_availability = replicas_for_availability(spec.slo.availability)
        if m.min_replicas < needed_for_availability:
            out.append(Problem(_replicas_key(i, m, "min"),
                               f"{m.min_replicas} replica(s) of {m.name} cannot meet slo.availability "
                               f"{spec.slo.availability:g}% (one replica down for an update or a fault is an outage); "
                               f"needs >= {needed_for_availability}, or lower slo.availability to <= "
                               f"{tiering.AVAILABILITY_SMALL_MAX:g}"))
        if p.tpot_ms_estimate > spec.slo.tpot_p99_ms:
            out.append(Problem("slo.tpotP99Ms",
                               f"{spec.slo.tpot_p99_ms} ms is below what {m.name} can do on {spec.gpu.type} at "
                               f"tensorParallel {m.tensor_parallel}: about {p.tpot_ms_estimate:.1f} ms per token "
                               f"for one sequence; raise it, or use more GPUs per replica or a smaller quantization"))
        if p.ttft_ms_estimate > spec.slo.ttft_p99_ms:
            out.append(Problem("slo.ttftP99Ms",
                               f"{spec.slo.ttft_p99_ms} ms is below {m.name}'s prefill time of about "
                               f"{p.ttft_ms_estimate:.0f} ms for {spec.slo.mean_prompt_tokens} prompt tokens on "
                               f"{spec.gpu.type} at tensorParallel {m.tensor_parallel}"))
        out += _cost_warnings(spec, i, m)
    peak = sum(m.max_replicas * m.gpus_per_replica for m in models)
    if any(m.spec.autoscaling for m in models) and peak > total_gpus:
        detail = " + ".join(f"{m.name} {m.max_replicas}x{m.gpus_per_replica}" for m in models)
        first = next(i for i, m in enumerate(models) if m.spec.autoscaling)
        out.append(Problem(f"models[{first}].autoscaling.maxReplicas",
                           f"at their maxima the models need {peak} GPUs ({detail}) but the cluster has {total_gpus}; "
                           "replicas beyond that stay Pending: lower maxReplicas or add GPU nodes"))
    return out
