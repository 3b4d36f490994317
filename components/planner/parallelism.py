"""Choosing tensor- and pipeline-parallel sizes, and explaining what would fit when nothing does.

Rules (vLLM's): TP is a power of two that divides the attention heads, and the KV heads
divide TP or TP divides them; one TP group stays inside a node (NVLink/PCIe), so
TP <= GPUs per node. Pipeline parallelism is used only when one node is not enough, one
stage per node, each stage a full TP group.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from components.facts import GpuFacts, ModelFacts
from components.planner import memory

MAX_PIPELINE_STAGES = 16


@dataclass(frozen=True)
class Placement:
    tensor_parallel: int
    pipeline_parallel: int
    kv_budget_bytes: float
    max_concurrent_sequences: int

    @property
    def gpus(self) -> int:
        return self.tensor_parallel * self.pipeline_parallel


def valid_tensor_parallel_sizes(model: ModelFacts, gpus_per_node: int) -> list[int]:
    sizes, tp = [], 1
    while tp <= gpus_per_node:
        heads_ok = model.attention_heads % tp == 0
        kv_ok = model.kv_heads % tp == 0 or tp % model.kv_heads == 0
        if heads_ok and kv_ok:
            sizes.append(tp)
        tp *= 2
    return sizes


def evaluate(
    model: ModelFacts,
    gpu: GpuFacts,
    quantization: str,
    tensor_parallel: int,
    pipeline_parallel: int,
    max_model_len: int,
    gpu_memory_utilization: float,
    kv_cache_dtype: str = "auto",
) -> Placement:
    """How many max-length sequences a given TP x PP placement holds (0: does not fit)."""
    gpus = tensor_parallel * pipeline_parallel
    budget = memory.kv_budget_bytes(model, gpu, quantization, gpus, gpu_memory_utilization)
    per_token = memory.kv_bytes_per_token_per_replica(model, tensor_parallel, kv_cache_dtype)
    return Placement(
        tensor_parallel,
        pipeline_parallel,
        budget,
        memory.sequences_that_fit(budget, per_token, max_model_len),
    )


def smallest_placement(
    model: ModelFacts,
    gpu: GpuFacts,
    quantization: str,
    gpus_per_node: int,
    max_model_len: int,
    gpu_memory_utilization: float,
    min_sequences: int = 1,
    kv_cache_dtype: str = "auto",
) -> Optional[Placement]:
    """Smallest TP on one node, else the fewest PP stages of the largest TP, that fits."""
    sizes = valid_tensor_parallel_sizes(model, gpus_per_node)
    for tp in sizes:
        placement = evaluate(model, gpu, quantization, tp, 1, max_model_len, gpu_memory_utilization, kv_cache_dtype)
        if placement.max_concurrent_sequences >= min_sequences:
            return placement
    if not sizes:
        return None
    tp = sizes[-1]
    for pp in range(2, min(MAX_PIPELINE_STAGES, model.layers) + 1):
        placement = evaluate(model, gpu, quantization, tp, pp, max_model_len, gpu_memory_utilization, kv_cache_dtype)
        if placement.max_concurrent_sequences >= min_sequences:
            return placement
    return None


def fit_advice(
    model: ModelFacts,
    gpu_key: str,
    gpu: GpuFacts,
    quantization: str,
    tensor_parallel: int,
    pipeline_parallel: int,
    gpus_per_node: int,
    max_model_len: int,
    gpu_memory_utilization: float,
    kv_cache_dtype: str = "auto",
) -> str:
    """A sentence saying what would fit instead, for validation errors."""
    options = []
    needed = smallest_placement(
        model, gpu, quantization, gpus_per_node, max_model_len, gpu_memory_utilization, 1, kv_cache_dtype
    )
    if needed is not None and needed.pipeline_parallel == 1 and needed.tensor_parallel > tensor_parallel:
        options.append(f"tensorParallel >= {needed.tensor_parallel} on {gpu_key}")
    elif needed is not None and needed.pipeline_parallel > pipeline_parallel:
        options.append(
            f"tensorParallel {needed.tensor_parallel} x pipelineParallel {needed.pipeline_parallel} on {gpu_key}"
        )
    for smaller in ("fp8", "awq"):
        if memory.BYTES_PER_PARAM[smaller] >= memory.BYTES_PER_PARAM[quantization]:
            continue
        if smaller == "fp8" and gpu.fp8_tflops is None:
            continue
        fits = evaluate(
            model, gpu, smaller, tensor_parallel, pipeline_parallel, max_model_len, gpu_memory_utilization, kv_cache_dtype
        )
        if fits.max_concurrent_sequences >= 1:
            options.append(f"quantization {smaller}")
            break
    shorter = evaluate(
        model, gpu, quantization, tensor_parallel, pipeline_parallel, 4096, gpu_memory_utilization, kv_cache_dtype
    )
    if max_model_len > 4096 and shorter.max_concurrent_sequences >= 1:
        options.append("maxModelLen <= 4096")
    return "needs " + ", or ".join(options) if options else "does not fit on this GPU type at any supported size"
