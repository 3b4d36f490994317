"""Search: every servable configuration of a model for a load, the cheapest that meets the SLOs.

Enumerated per candidate:
  GPU type        the requested one, or every catalog GPU (`any`)
  quantization    what vLLM can serve the model in on that GPU (components/planner/support.py):
                  the dtype of each published checkpoint plus online `fp8` from a 16-bit
                  checkpoint (weight-only FP8 Marlin on Ampere); never awq/gptq/int8/mxfp4
                  unless a checkpoint in that format exists
  TP              powers of two that divide the attention heads and fit KV heads, <= GPUs/node
  PP              1, or (TP = a whole node) the fewest stages that fit and one more
  max_num_seqs    the requested value, or 16 ... 1024 in powers of two
For each: fit, the largest decode batch meeting TPOT (perf.largest_batch), the highest
utilisation whose TTFT p99 (prefill + one step + M/D/1 queueing) meets the SLO, capped at the
headroom target (perf.highest_utilization), per-replica capacity, replicas for the QPS plus
spares only for a stated availability that needs them, GPUs, nodes and cost.
The cheapest candidate meeting both SLOs wins (ties: fewer GPUs, then smaller TP x PP, larger
batch); when none meets them, the one closest to its SLOs is returned with `misses` set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Optional

from components.facts import GpuFacts, ModelFacts, gpu_catalog
from components.planner import cost, memory, parallelism, perf, support, tiering

MAX_NUM_SEQS_LADDER = (16, 32, 64, 128, 256, 512, 1024)
ONLINE_QUANTIZATION_FROM = ("bf16", "fp16")


def checkpoint_quantizations(model: ModelFacts) -> list[str]:
    """Weight formats of the model's published checkpoints."""
    found = {model.checkpoint_dtype(r) for r in model.hf_repos} or {model.native_dtype}
    return sorted(found, key=list(memory.BYTES_PER_PARAM).index)


def servable_quantizations(model: ModelFacts, gpu: Optional[GpuFacts]) -> list[str]:
    """What vLLM can serve from the model's checkpoints (on `gpu`), by support.TABLE: the
    checkpoint formats plus fp8 made online from a 16-bit checkpoint (W8A8 on FP8 tensor cores
    from compute capability 8.9, weight-only FP8 Marlin on Ampere). `gpu` None: on some GPU."""
    checkpoints = checkpoint_quantizations(model)
    gpus = [gpu] if gpu is not None else list(gpu_catalog().values())
    found = [q for q in support.TABLE if q in memory.BYTES_PER_PARAM
             and any(support.problem(checkpoints, q, g) is None for g in gpus)]
    if any(q in checkpoints for q in support.SIXTEEN_BIT):
        found = [q for q in found if q not in support.SIXTEEN_BIT or q in checkpoints]  # no dtype-cast twins
    return sorted(found, key=list(memory.BYTES_PER_PARAM).index)


def quantization_problem(model: ModelFacts, quantization: str, gpu: Optional[GpuFacts], gpu_key: str = "") -> Optional[str]:
    """Why `quantization` cannot be served for this model (on this GPU), or None (support.TABLE)."""
    checkpoints = checkpoint_quantizations(model)
    found = support.problem(checkpoints, quantization, gpu, gpu_key)
    if found is None:
        return None
    allowed = servable_quantizations(model, gpu)
    return f"{found}; allowed: {', '.join(allowed) if allowed else 'none'}"


def availability_spares(availability_pct: Optional[float]) -> int:
    """Spare replicas a stated availability needs: N+1 above 99%, N+2 above 99.9%."""
    if availability_pct is None:
        return 0
    if availability_pct > tiering.AVAILABILITY_MEDIUM_MAX:
        return 2
    if availability_pct > tiering.AVAILABILITY_SMALL_MAX:
        return 1
    return 0


@dataclass(frozen=True)
class Load:
    """What the search needs from a PlanRequest (kept separate so the loop avoids pydantic)."""

    model: ModelFacts
    max_model_len: int
    qps: float
    prompt_tokens: int
    output_tokens: int
    ttft_slo_s: float
    tpot_slo_s: float
    availability_pct: Optional[float]
    gpu_memory_utilization: float
    gpus_per_node: Optional[int]
    kv_cache_dtype: str
    min_sequences: int
    target_utilization: float
    price_per_instance_hour: Optional[float]
    replicas: Optional[int] = None  # evaluate this many replicas instead of sizing them
    slo_margin: float = 0.0  # size for SLO / (1 + margin): the model's measured error as headroom


@dataclass
class Candidate:
    gpu_key: str
    gpu: GpuFacts
    quantization: str
    tensor_parallel: int
    pipeline_parallel: int
    max_num_seqs: int
    placement: parallelism.Placement
    fits: bool
    batch: int = 0
    step_s: float = math.inf
    prefill_tokens_per_s: float = 0.0
    ttft_s: float = math.inf
    utilization: float = 0.0
    capacity_qps: float = 0.0
    replicas: int = 0
    spares: int = 0
    fleet: Optional[cost.Fleet] = None
    misses: list[str] = field(default_factory=list)
    violation: float = math.inf  # largest estimate / SLO ratio (<= 1: meets both)

    @property
    def gpus_per_replica(self) -> int:
        return self.tensor_parallel * self.pipeline_parallel

    @property
    def gpus(self) -> int:
        return self.replicas * self.gpus_per_replica

    @property
    def meets_slo(self) -> bool:
        return self.fits and not self.misses

    @property
    def cost_per_hour(self) -> Optional[float]:
        return None if self.fleet is None else self.fleet.usd_per_hour

    @property
    def decode_tokens_per_s(self) -> float:
        return self.batch / self.step_s if self.batch and self.step_s < math.inf else 0.0

    def label(self) -> str:
        return (f"{self.gpu_key} {self.quantization} TP{self.tensor_parallel}"
                + (f"xPP{self.pipeline_parallel}" if self.pipeline_parallel > 1 else "")
                + f" maxNumSeqs {self.max_num_seqs}")

    def rank_key(self) -> tuple:
        price = self.cost_per_hour if self.cost_per_hour is not None else math.inf
        if self.meets_slo:
            return (0, price, self.gpus, self.gpus_per_replica, self.tensor_parallel, -self.batch)
        return (1, self.violation, price, self.gpus)


def evaluate(load: Load, gpu_key: str, quantization: str, tp: int, pp: int, max_num_seqs: int,
             placement: Optional[parallelism.Placement] = None) -> Candidate:
    gpu = gpu_catalog()[gpu_key]
    model = load.model
    if placement is None:
        placement = parallelism.evaluate(model, gpu, quantization, tp, pp, load.max_model_len,
                                         load.gpu_memory_utilization, load.kv_cache_dtype)
    c = Candidate(gpu_key, gpu, quantization, tp, pp, max_num_seqs, placement,
                  fits=placement.max_concurrent_sequences >= load.min_sequences)
    if not c.fits:
        c.misses.append("does not fit")
        return c
    prompt, output = load.prompt_tokens, load.output_tokens
    rep = perf.replica(model, gpu, quantization, tp, pp, load.kv_cache_dtype)
    kv_rep = memory.kv_bytes_per_token_per_replica(model, tp, load.kv_cache_dtype)
    limit = min(memory.sequences_that_fit(placement.kv_budget_bytes, kv_rep, prompt + output), max_num_seqs)
    limit = perf.saturated_batch(rep, max(limit, 1))  # vLLM keeps ~occupancy x the slots busy
    tpot_target, ttft_target = load.tpot_slo_s / (1 + load.slo_margin), load.ttft_slo_s / (1 + load.slo_margin)
    c.batch = perf.largest_batch(rep, limit, prompt, output, tpot_target)
    if c.batch == 0 and load.slo_margin:
        c.batch = perf.largest_batch(rep, limit, prompt, output, load.tpot_slo_s)
    if c.batch == 0:
        c.batch = 1
        c.misses.append(f"TPOT {rep.step_s(1, prompt, output) * 1000:.0f} ms at batch 1 > {load.tpot_slo_s * 1000:g} ms")
    c.step_s = rep.step_s(c.batch, prompt, output)
    c.prefill_tokens_per_s = prompt / rep.prefill_replica_s(prompt)
    c.capacity_qps = rep.capacity_qps(c.batch, prompt, output)
    cap = load.target_utilization
    c.spares = availability_spares(load.availability_pct)
    if load.replicas is not None:
        serving = max(1, load.replicas - c.spares)
        c.replicas = load.replicas
        c.utilization = load.qps / (serving * c.capacity_qps) if load.qps > 0 else 0.0
        if load.replicas < 1 + c.spares:
            c.misses.append(f"availability {load.availability_pct:g}% needs {c.spares} spare replica(s) "
                            f"beyond the load; {load.replicas} replica(s) leave none")
        if c.utilization > cap:
            c.misses.append(f"{load.replicas} replicas run at {c.utilization:.0%} of capacity "
                            f"(headroom target {cap:.0%}) for {load.qps:g} QPS")
    else:
        rho = perf.highest_utilization(rep, c.batch, prompt, output, ttft_target, cap)
        if rho <= 0 and load.slo_margin:
            rho = perf.highest_utilization(rep, c.batch, prompt, output, load.ttft_slo_s, cap)
        c.utilization = rho if rho > 0 else cap
        load_replicas = math.ceil(load.qps / (c.capacity_qps * c.utilization) - 1e-9) if load.qps > 0 else 0
        c.replicas = max(load_replicas, 1) + c.spares
        if load.qps > 0:
            c.utilization = load.qps / ((c.replicas - c.spares) * c.capacity_qps)
    c.ttft_s = perf.ttft_p99_s(rep, c.utilization, c.batch, prompt, output)
    if c.ttft_s > load.ttft_slo_s:
        shown = "unbounded (overloaded)" if c.ttft_s == math.inf else f"{c.ttft_s * 1000:.0f} ms"
        c.misses.append(f"TTFT p99 {shown} > {load.ttft_slo_s * 1000:g} ms")
    c.violation = max(c.step_s / load.tpot_slo_s, c.ttft_s / load.ttft_slo_s)
    per_node = load.gpus_per_node or gpu.max_gpus_per_node
    c.fleet = cost.cheapest_fleet(gpu, c.replicas, tp, pp, per_node, load.price_per_instance_hour)
    return c


def parallel_options(model: ModelFacts, gpu: GpuFacts, quantization: str, load: Load) -> Iterable[tuple[int, int]]:
    per_node = load.gpus_per_node or gpu.max_gpus_per_node
    sizes = parallelism.valid_tensor_parallel_sizes(model, per_node)
    for tp in sizes:
        yield tp, 1
    if not sizes:
        return
    tp = sizes[-1]
    one = parallelism.evaluate(model, gpu, quantization, tp, 1, load.max_model_len, load.gpu_memory_utilization, load.kv_cache_dtype)
    if one.max_concurrent_sequences >= load.min_sequences:
        return
    for pp in range(2, min(parallelism.MAX_PIPELINE_STAGES, model.layers) + 1):
        placed = parallelism.evaluate(model, gpu, quantization, tp, pp, load.max_model_len, load.gpu_memory_utilization, load.kv_cache_dtype)
        if placed.max_concurrent_sequences >= load.min_sequences:
            yield tp, pp
            if pp + 1 <= min(parallelism.MAX_PIPELINE_STAGES, model.layers):
                yield tp, pp + 1
            return


def candidates(load: Load, gpu_keys: Iterable[str], quantizations: Optional[Iterable[str]],
               max_num_seqs: Optional[int], parallel: Optional[tuple[int, int]] = None) -> list[Candidate]:
    """Every candidate, best first (Candidate.rank_key)."""
    found: list[Candidate] = []
    ladder = (max_num_seqs,) if max_num_seqs else MAX_NUM_SEQS_LADDER
    for gpu_key in gpu_keys:
        gpu = gpu_catalog()[gpu_key]
        quants = list(quantizations) if quantizations is not None else servable_quantizations(load.model, gpu)
        for quant in quants:
            if quantizations is None and quantization_problem(load.model, quant, gpu, gpu_key):
                continue
            options = [parallel] if parallel else parallel_options(load.model, gpu, quant, load)
            for tp, pp in options:
                placement = parallelism.evaluate(load.model, gpu, quant, tp, pp, load.max_model_len,
                                                 load.gpu_memory_utilization, load.kv_cache_dtype)
                seen_limits = set()
                kv_rep = memory.kv_bytes_per_token_per_replica(load.model, tp, load.kv_cache_dtype)
                memory_batch = memory.sequences_that_fit(placement.kv_budget_bytes, kv_rep, load.prompt_tokens + load.output_tokens)
                for seqs in ladder:
                    limit = min(seqs, max(memory_batch, 1))
                    if limit in seen_limits and not max_num_seqs:
                        continue  # a larger maxNumSeqs the KV cache cannot hold changes nothing
                    seen_limits.add(limit)
                    found.append(evaluate(load, gpu_key, quant, tp, pp, seqs, placement))
                    if not found[-1].fits:
                        break
    found.sort(key=Candidate.rank_key)
    return found


def why_lost(c: Candidate, best: Candidate) -> str:
    if not c.fits:
        return "does not fit"
    if c.misses:
        return "misses " + "; ".join(c.misses)
    if not best.meets_slo:
        return "closer to its SLOs than the others" if c is best else "further from its SLOs"
    if c.cost_per_hour is not None and best.cost_per_hour is not None and c.cost_per_hour > best.cost_per_hour + 1e-6:
        extra = c.cost_per_hour - best.cost_per_hour
        return f"costs ${extra:,.2f}/h more (+{extra / best.cost_per_hour:.0%})"
    if c.gpus > best.gpus:
        return f"same cost, {c.gpus - best.gpus} more GPUs"
    if c.gpus_per_replica > best.gpus_per_replica:
        return "same cost and GPUs, larger replicas"
    return "ties; ranked by larger batch"


def distinct_configs(ranked: list[Candidate]) -> list[Candidate]:
    """The best candidate of each (GPU, quantization, TP, PP), in rank order."""
    seen, out = set(), []
    for c in ranked:
        key = (c.gpu_key, c.quantization, c.tensor_parallel, c.pipeline_parallel)
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out
