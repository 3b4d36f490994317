"""Roofline bounds for one replica: decode is memory-bandwidth bound, prefill FLOP bound.

  step_time(B)  = PP x (active_weight_bytes + B x context x kv_bytes_per_token) / (GPUs x bandwidth)
                  (each decode step streams the active weights plus every running sequence's
                  KV cache; pipeline stages run one after another for a given token)
  decode_bound  = B / step_time(B)       tokens/s, B = the batch the replica can run
  TPOT(B)       = step_time(B)           s/token, so the TPOT SLO caps B
  prefill_bound = GPUs x peak_FLOPS / (2 x active_params)     tokens/s
Peak FLOPS follow the compute dtype: FP8 tensor cores for fp8 weights (when the GPU has them),
INT8 for int8 (W8A8), BF16 otherwise (weight-only 4-bit kernels compute in 16 bit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from components.facts import GpuFacts, ModelFacts
from components.planner import memory


def peak_flops_per_gpu(gpu: GpuFacts, quantization: str) -> float:
    if quantization == "fp8" and gpu.fp8_tflops is not None:
        return gpu.fp8_tflops * 1e12
    if quantization == "int8":
        return gpu.int8_tops * 1e12
    return gpu.bf16_tflops * 1e12


@dataclass(frozen=True)
class DecodeBound:
    batch: int
    tokens_per_s: float
    tpot_s: float
    slo_limited: bool
    slo_feasible: bool


def step_time_s(weights: float, kv_per_token: float, context: float, batch: int, gpus: int, pp: int, bandwidth: float) -> float:
    return pp * (weights + batch * context * kv_per_token) / (gpus * bandwidth)


def decode_bound(
    model: ModelFacts,
    gpu: GpuFacts,
    quantization: str,
    tensor_parallel: int,
    pipeline_parallel: int,
    memory_batch_limit: int,
    max_num_seqs: int,
    context_tokens: float,
    tpot_slo_s: float,
    kv_cache_dtype: str = "auto",
) -> DecodeBound:
    gpus = tensor_parallel * pipeline_parallel
    bandwidth = gpu.memory_bandwidth_gbs * 1e9
    weights = memory.active_weight_bytes(model, quantization)
    kv = memory.kv_bytes_per_token_per_replica(model, tensor_parallel, kv_cache_dtype)
    batch = max(1, min(memory_batch_limit, max_num_seqs))
    # Largest batch whose step time meets the TPOT SLO.
    slo_batch = math.floor((tpot_slo_s * gpus * bandwidth / pipeline_parallel - weights) / (context_tokens * kv))
    feasible = slo_batch >= 1
    limited = feasible and slo_batch < batch
    if limited:
        batch = slo_batch
    if not feasible:
        batch = 1
    step = step_time_s(weights, kv, context_tokens, batch, gpus, pipeline_parallel, bandwidth)
    return DecodeBound(batch=batch, tokens_per_s=batch / step, tpot_s=step, slo_limited=limited, slo_feasible=feasible)


def prefill_bound(model: ModelFacts, gpu: GpuFacts, quantization: str, gpus: int) -> float:
    return gpus * peak_flops_per_gpu(gpu, quantization) / (2 * model.active_params)
