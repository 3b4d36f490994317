"""`plan()`: size a deployment from model facts, GPU facts, load and SLOs.

The result's JSON form (`Plan.to_json()`) is a stable interface: keys are only ever added.
Every figure has its unit in `units`.
"""

from __future__ import annotations

import math
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field

from components.facts import GpuFacts, ModelFacts, gpu_catalog
from components.planner import cost, memory, parallelism, throughput, tiering

# Roofline bounds are ideal; plan replicas so the load uses this share of them.
DEFAULT_TARGET_UTILIZATION = 0.6

# Minimum replicas for an availability target: N+1 from 99.9%, N+2 above it (one replica
# can be drained for an update while another fails).
def replicas_for_availability(availability_pct: float) -> int:
    if availability_pct > tiering.AVAILABILITY_MEDIUM_MAX:
        return 3
    if availability_pct > tiering.AVAILABILITY_SMALL_MAX:
        return 2
    return 1


UNITS = {
    "weight_bytes": "bytes",
    "weight_bytes_per_gpu": "bytes",
    "kv_bytes_per_token": "bytes/token",
    "kv_bytes_per_token_per_replica": "bytes/token",
    "kv_cache_bytes_per_replica": "bytes",
    "tensor_parallel": "GPUs",
    "pipeline_parallel": "stages",
    "gpus_per_replica": "GPUs",
    "max_concurrent_sequences": "sequences at max_model_len",
    "decode_batch": "sequences",
    "decode_tokens_per_s_bound": "output tokens/s per replica",
    "prefill_tokens_per_s_bound": "prompt tokens/s per replica",
    "tpot_ms_estimate": "ms/token",
    "ttft_ms_estimate": "ms",
    "replica_capacity_qps": "requests/s per replica",
    "replicas": "replicas",
    "gpus": "GPUs",
    "nodes": "nodes",
    "rule_of_thumb_gpus": "GPUs",
    "cost_per_hour_usd": "USD/hour",
    "cost_per_year_usd": "USD/year",
    "cost_per_million_output_tokens_usd": "USD per 1M output tokens",
}


class PlanRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_key: str
    model: ModelFacts
    gpu_key: str
    quantization: str
    max_model_len: int = Field(gt=0)
    qps: float = Field(ge=0)
    prompt_tokens: int = Field(default=512, gt=0)
    output_tokens: int = Field(default=256, gt=0)
    ttft_slo_ms: float = Field(default=500, gt=0)
    tpot_slo_ms: float = Field(default=100, gt=0)
    availability_pct: float = Field(default=99.9, gt=0, le=100)
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1)
    gpus_per_node: Optional[int] = None
    max_num_seqs: int = 256
    kv_cache_dtype: str = "auto"
    min_sequences: int = Field(default=1, ge=1)
    tensor_parallel: Optional[int] = None
    pipeline_parallel: Optional[int] = None
    target_utilization: float = Field(default=DEFAULT_TARGET_UTILIZATION, gt=0, le=1)
    price_per_instance_hour: Optional[float] = None


class Plan(BaseModel):
    model: str
    gpu: str
    quantization: str
    max_model_len: int
    weight_bytes: int
    weight_bytes_per_gpu: int
    kv_bytes_per_token: int
    kv_bytes_per_token_per_replica: int
    fits: bool
    fit_advice: Optional[str]
    tensor_parallel: int
    pipeline_parallel: int
    gpus_per_replica: int
    kv_cache_bytes_per_replica: int
    max_concurrent_sequences: int
    decode_batch: int
    decode_tokens_per_s_bound: float
    prefill_tokens_per_s_bound: float
    tpot_ms_estimate: float
    ttft_ms_estimate: float
    replica_capacity_qps: float
    replicas: int
    gpus: int
    nodes: int
    instance_type: Optional[str]
    tier: str
    tier_reason: str
    rule_of_thumb_gpus: float
    cost_per_hour_usd: Optional[float]
    cost_per_year_usd: Optional[float]
    cost_per_million_output_tokens_usd: Optional[float]
    warnings: list[str]
    units: dict[str, str] = Field(default_factory=lambda: dict(UNITS))

    def to_json(self) -> dict:
        return self.model_dump(mode="json")


class PlanError(ValueError):
    """The model cannot be placed on this GPU type at all."""


def plan(req: PlanRequest) -> Plan:
    gpu: GpuFacts = gpu_catalog()[req.gpu_key]
    model = req.model
    per_node = req.gpus_per_node or gpu.max_gpus_per_node
    warnings: list[str] = []

    if req.tensor_parallel is not None:
        placement = parallelism.evaluate(
            model, gpu, req.quantization, req.tensor_parallel, req.pipeline_parallel or 1,
            req.max_model_len, req.gpu_memory_utilization, req.kv_cache_dtype,
        )
    else:
        placement = parallelism.smallest_placement(
            model, gpu, req.quantization, per_node, req.max_model_len,
            req.gpu_memory_utilization, req.min_sequences, req.kv_cache_dtype,
        )
    fits = placement is not None and placement.max_concurrent_sequences >= req.min_sequences
    advice = None
    if not fits:
        tp = req.tensor_parallel or (parallelism.valid_tensor_parallel_sizes(model, per_node) or [1])[-1]
        pp = req.pipeline_parallel or 1
        advice = parallelism.fit_advice(
            model, req.gpu_key, gpu, req.quantization, tp, pp, per_node,
            req.max_model_len, req.gpu_memory_utilization, req.kv_cache_dtype,
        )
        if placement is None:
            raise PlanError(f"{req.model_key} with {req.quantization} at maxModelLen {req.max_model_len} on {req.gpu_key}: {advice}")
        warnings.append(f"does not fit as configured: {advice}")

    tp, pp = placement.tensor_parallel, placement.pipeline_parallel
    gpus_per_replica = tp * pp
    kv_replica = memory.kv_bytes_per_token_per_replica(model, tp, req.kv_cache_dtype)
    sequence_tokens = req.prompt_tokens + req.output_tokens
    memory_batch = memory.sequences_that_fit(placement.kv_budget_bytes, kv_replica, sequence_tokens)
    decode = throughput.decode_bound(
        model, gpu, req.quantization, tp, pp, memory_batch, req.max_num_seqs,
        req.prompt_tokens + req.output_tokens / 2, req.tpot_slo_ms / 1000, req.kv_cache_dtype,
    )
    if not decode.slo_feasible:
        warnings.append(
            f"TPOT SLO {req.tpot_slo_ms:g} ms is below the single-sequence bound "
            f"{decode.tpot_s * 1000:.1f} ms: use more GPUs per replica or a smaller quantization"
        )
    elif decode.slo_limited:
        warnings.append(f"decode batch capped at {decode.batch} sequences to meet TPOT {req.tpot_slo_ms:g} ms")
    prefill = throughput.prefill_bound(model, gpu, req.quantization, gpus_per_replica)
    ttft_s = req.prompt_tokens / prefill
    if ttft_s * 1000 > req.ttft_slo_ms:
        warnings.append(f"prefill alone takes {ttft_s * 1000:.0f} ms for {req.prompt_tokens} prompt tokens (TTFT SLO {req.ttft_slo_ms:g} ms)")

    seconds_per_request = req.prompt_tokens / prefill + req.output_tokens / decode.tokens_per_s
    capacity_qps = 1 / seconds_per_request
    load_replicas = math.ceil(req.qps / (capacity_qps * req.target_utilization)) if req.qps > 0 else 0
    replicas = max(load_replicas, replicas_for_availability(req.availability_pct), 1)
    fleet = cost.cheapest_fleet(gpu, replicas, tp, pp, per_node, req.price_per_instance_hour)
    choice = tiering.recommend_tier(req.qps, fleet.instances, req.availability_pct)
    per_million = None
    if fleet.usd_per_hour is not None:
        tokens_per_hour = replicas * decode.tokens_per_s * 3600
        per_million = fleet.usd_per_hour / tokens_per_hour * 1e6

    weights = memory.weight_bytes(model, req.quantization)
    return Plan(
        model=req.model_key,
        gpu=req.gpu_key,
        quantization=req.quantization,
        max_model_len=req.max_model_len,
        weight_bytes=round(weights),
        weight_bytes_per_gpu=round(weights / gpus_per_replica),
        kv_bytes_per_token=memory.kv_bytes_per_token(model, req.kv_cache_dtype),
        kv_bytes_per_token_per_replica=kv_replica,
        fits=fits,
        fit_advice=advice,
        tensor_parallel=tp,
        pipeline_parallel=pp,
        gpus_per_replica=gpus_per_replica,
        kv_cache_bytes_per_replica=max(0, round(placement.kv_budget_bytes)),
        max_concurrent_sequences=placement.max_concurrent_sequences,
        decode_batch=decode.batch,
        decode_tokens_per_s_bound=round(decode.tokens_per_s, 1),
        prefill_tokens_per_s_bound=round(prefill, 1),
        tpot_ms_estimate=round(decode.tpot_s * 1000, 2),
        ttft_ms_estimate=round(ttft_s * 1000, 2),
        replica_capacity_qps=round(capacity_qps, 3),
        replicas=replicas,
        gpus=replicas * gpus_per_replica,
        nodes=fleet.instances,
        instance_type=fleet.instance_type,
        tier=choice.tier,
        tier_reason=choice.reason,
        rule_of_thumb_gpus=round(tiering.rule_of_thumb_gpus(req.qps), 1),
        cost_per_hour_usd=None if fleet.usd_per_hour is None else round(fleet.usd_per_hour, 2),
        cost_per_year_usd=None if fleet.usd_per_year is None else round(fleet.usd_per_year, 2),
        cost_per_million_output_tokens_usd=None if per_million is None else round(per_million, 4),
        warnings=warnings,
    )
