"""Memory arithmetic: weight bytes by quantization, KV-cache bytes per token, per-GPU budget.

Formulas (documented in the README's planner section):
  weight_bytes = embedding_params x 2 + (params - embedding_params) x bytes_per_param(q)
      Weight-only and FP8/INT8 schemes leave the input embedding and LM head in 16 bit.
  kv_bytes_per_token (one copy of the model's cache)
      standard attention: 2 x layers x kv_heads x head_dim x kv_dtype_bytes
      MLA (DeepSeek):     layers x (kv_lora_rank + qk_rope_head_dim) x kv_dtype_bytes
  Under tensor parallelism vLLM shards KV heads across ranks but replicates a head on every
  rank once TP exceeds the KV-head count, and replicates the MLA latent on every rank; the
  per-replica figure accounts for that.
"""

from __future__ import annotations

import math

from components.facts import GpuFacts, ModelFacts

GIB = 2**30

# Bytes per quantized parameter. 4-bit schemes carry a 16-bit scale (+ zero point for AWQ /
# GPTQ) per group of 128, and MXFP4 an 8-bit scale per block of 32: 4.25 bits either way.
BYTES_PER_PARAM: dict[str, float] = {
    "fp16": 2.0,
    "bf16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "awq": 4.25 / 8,
    "gptq": 4.25 / 8,
    "mxfp4": 4.25 / 8,
}
EMBEDDING_BYTES_PER_PARAM = 2.0
KV_DTYPE_BYTES = {"auto": 2, "fp8": 1}

# What vLLM needs on each GPU besides weights and KV cache: CUDA context, CUDA graphs and
# NCCL buffers (a fixed allowance) plus the activation peak of its profiling pass, which grows
# with hidden size x max_num_batched_tokens (8192 by default in vLLM's V1 engine).
CUDA_CONTEXT_ALLOWANCE_BYTES = 1 * GIB
ACTIVATION_BYTES_PER_HIDDEN_TOKEN = 16
MAX_NUM_BATCHED_TOKENS = 8192


def weight_bytes(model: ModelFacts, quantization: str, params: float | None = None) -> float:
    """Bytes of weights for `params` parameters (default: all) under `quantization`."""
    params = model.params_total if params is None else params
    embedding = min(model.embedding_params, params)
    return embedding * EMBEDDING_BYTES_PER_PARAM + (params - embedding) * BYTES_PER_PARAM[quantization]


def active_weight_bytes(model: ModelFacts, quantization: str) -> float:
    """Bytes read per decode step for one token: the active parameters (MoE: routed experts)."""
    return weight_bytes(model, quantization, model.active_params)


def kv_bytes_per_token(model: ModelFacts, kv_cache_dtype: str = "auto") -> int:
    """KV-cache bytes one token occupies for one copy of the model."""
    dtype = KV_DTYPE_BYTES[kv_cache_dtype]
    if model.kv_cache == "mla":
        return model.layers * (model.kv_lora_rank + model.qk_rope_head_dim) * dtype
    return 2 * model.layers * model.kv_heads * model.head_dim * dtype


def kv_bytes_per_token_per_replica(model: ModelFacts, tensor_parallel: int, kv_cache_dtype: str = "auto") -> int:
    """KV bytes per token summed over all GPUs of one replica (replication included)."""
    dtype = KV_DTYPE_BYTES[kv_cache_dtype]
    if model.kv_cache == "mla":
        return tensor_parallel * kv_bytes_per_token(model, kv_cache_dtype)
    heads_stored = max(model.kv_heads, tensor_parallel)
    return 2 * model.layers * heads_stored * model.head_dim * dtype


def reserve_bytes_per_gpu(model: ModelFacts) -> float:
    """Allowance for activations, CUDA graphs and the CUDA context on each GPU."""
    return CUDA_CONTEXT_ALLOWANCE_BYTES + ACTIVATION_BYTES_PER_HIDDEN_TOKEN * model.hidden_size * MAX_NUM_BATCHED_TOKENS


def kv_budget_bytes(
    model: ModelFacts, gpu: GpuFacts, quantization: str, gpus: int, gpu_memory_utilization: float
) -> float:
    """KV-cache bytes left on `gpus` GPUs after weights and the allowance (negative: no fit)."""
    usable = gpus * (gpu.memory_bytes * gpu_memory_utilization - reserve_bytes_per_gpu(model))
    return usable - weight_bytes(model, quantization)


def sequences_that_fit(kv_budget: float, kv_per_token: float, tokens_per_sequence: int) -> int:
    if kv_budget <= 0:
        return 0
    return math.floor(kv_budget / (kv_per_token * tokens_per_sequence))
