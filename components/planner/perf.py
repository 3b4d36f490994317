"""Calibrated performance model of one vLLM replica (TP x PP GPUs).

Decode (one step: every running sequence emits one token; B sequences, b = B / PP per
pipeline micro-batch, mean context c tokens):

  bytes(b)  = weight_bytes(dense params + experts touched by b tokens) + b x c x kv_bytes/token
              MoE: a layer with E routed experts, k per token, touches
                   E x (1 - (1 - k/E)^b) distinct experts for b tokens (expected value)
  flops(b)  = b x (2 x active_params + 4 x layers x heads x head_dim x c)
  comm(b)   = 2 x layers x (alpha + 2 (TP-1)/TP x b x hidden x 2 bytes / (link x eff_link))
              (two all-reduces per layer; nothing when TP = 1)
  t_mem     = bytes / (TP x bandwidth x eff_bw),  t_cmp = flops / (TP x peak x eff_compute)
  TPOT(B)   = max(t_mem, t_cmp) + (1 - overlap) x min(t_mem, t_cmp) + comm + step_overhead
              (pipeline stages run one after another for a micro-batch; the sum over stages is
              the whole model over TP GPUs, and PP micro-batches are in flight at once)

Prefill (chunked into the decode steps):
  t_token   = (2 x active_params + 2 x layers x heads x head_dim x prompt) / (peak x eff_prefill)
              GPU-seconds per prompt token; a replica spends prompt x t_token / (TP x PP) of its
              time per request, and one prompt alone takes prompt x t_token / TP (+ its comm).

Steady state at batch B with chunked prefill: during one step B / output_tokens requests
finish and as many prompts are prefilled; their compute joins the step's compute term:
  step(B)      = TPOT(B) with t_cmp += (B / output) x prompt x t_token / (TP x PP)
  capacity     = B / (output x step(B))          requests/s per replica
The constants are data (components/facts/measurements.yaml), per engine (vllm, which tierscale
deploys, and tensorrt-llm, which MLPerf measures) with per-GPU-generation overrides, fitted to
published measurements by benchmarks/fit_planner.py. When saturated, vLLM keeps
batch_occupancy x max_num_seqs sequences in flight (saturated_batch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from typing import Optional, Union
from pathlib import Path

import yaml

from components.facts import GpuFacts, ModelFacts
from components.planner import memory, support

MEASUREMENTS = Path(__file__).resolve().parent.parent / "facts" / "measurements.yaml"
ACTIVATION_BYTES = 2  # bf16 activations on the all-reduce


@dataclass(frozen=True)
class Efficiency:
    bandwidth: float          # achieved / peak HBM bandwidth in decode
    compute: float            # achieved / peak tensor FLOPS in decode GEMMs
    prefill: float            # achieved / peak tensor FLOPS in prefill
    step_overhead_s: float    # scheduler, sampling, kernel launches per decode step
    allreduce_latency_s: float
    interconnect: float       # achieved / nominal one-way link bandwidth
    overlap: float = 1.0      # share of the shorter of memory / compute time hidden under the longer
    batch_occupancy: float = 1.0  # share of max_num_seqs in flight when the engine is saturated

    def replace(self, **changes) -> "Efficiency":
        values = dict(self.__dict__)
        values.update(changes)
        return Efficiency(**values)


# measurements.yaml key -> (Efficiency field, scale from the file's unit)
FIELDS = {
    "bandwidth_efficiency": ("bandwidth", 1.0),
    "decode_compute_efficiency": ("compute", 1.0),
    "prefill_compute_efficiency": ("prefill", 1.0),
    "step_overhead_ms": ("step_overhead_s", 1e-3),
    "allreduce_latency_us": ("allreduce_latency_s", 1e-6),
    "interconnect_efficiency": ("interconnect", 1.0),
    "overlap": ("overlap", 1.0),
    "batch_occupancy": ("batch_occupancy", 1.0),
}
ENGINES = ("vllm", "tensorrt-llm")
DEFAULT_ENGINE = "vllm"  # what tierscale deploys


def _efficiency(values: dict) -> Efficiency:
    return Efficiency(**{FIELDS[k][0]: v * FIELDS[k][1] for k, v in values.items() if k in FIELDS})


@dataclass(frozen=True)
class EngineConstants:
    """One engine's constants, with per-GPU-generation overrides where the data says so."""

    engine: str
    base: Efficiency
    per_generation: tuple[tuple[str, tuple[tuple[str, float], ...]], ...] = ()

    def for_generation(self, generation: str) -> Efficiency:
        for gen, changes in self.per_generation:
            if gen == generation:
                return self.base.replace(**dict(changes))
        return self.base

    def for_gpu(self, gpu: GpuFacts) -> Efficiency:
        return self.for_generation(gpu.generation)

    def with_values(self, generation: Optional[str] = None, **changes) -> "EngineConstants":
        """A copy with `changes` (Efficiency fields) applied to the base or to one generation."""
        if generation is None:
            return EngineConstants(self.engine, self.base.replace(**changes), self.per_generation)
        gens = dict((g, dict(c)) for g, c in self.per_generation)
        gens.setdefault(generation, {}).update(changes)
        return EngineConstants(self.engine, self.base,
                               tuple((g, tuple(sorted(c.items()))) for g, c in sorted(gens.items())))


@cache
def measurements() -> dict:
    return yaml.safe_load(MEASUREMENTS.read_text())


@cache
def engine_constants(engine: str = DEFAULT_ENGINE) -> EngineConstants:
    raw = measurements()["engines"][engine]
    base = _efficiency(raw)
    gens = tuple(
        (gen, tuple(sorted((FIELDS[k][0], v * FIELDS[k][1]) for k, v in values.items())))
        for gen, values in sorted((raw.get("per_generation") or {}).items())
    )
    return EngineConstants(engine, base, gens)


def efficiency(engine: str = DEFAULT_ENGINE, gpu: Optional[GpuFacts] = None) -> Efficiency:
    constants = engine_constants(engine)
    return constants.for_gpu(gpu) if gpu is not None else constants.base


def peak_flops_per_gpu(gpu: GpuFacts, quantization: str) -> float:
    """The tensor cores the GEMMs run on (components/planner/support.py): FP8 for W8A8 fp8 on
    8.9+, INT8 for W8A8 int8, else BF16 (16-bit and weight-only formats)."""
    dtype = support.compute_dtype(quantization, gpu) if quantization in support.TABLE else "bf16"
    if dtype == "fp8" and gpu.fp8_tflops is not None:
        return gpu.fp8_tflops * 1e12
    if dtype == "int8":
        return gpu.int8_tops * 1e12
    return gpu.bf16_tflops * 1e12


def expected_experts_touched(experts: int, per_token: int, tokens: float) -> float:
    """Expected distinct experts one MoE layer reads for `tokens` tokens routed uniformly."""
    if tokens <= 0:
        return 0.0
    return experts * (1 - (1 - per_token / experts) ** tokens)


def params_touched(model: ModelFacts, tokens: float) -> float:
    """Parameters one decode step reads for `tokens` tokens (dense: all of them)."""
    if not model.experts:
        return model.params_total
    e, k = model.experts, model.experts_per_token
    per_expert = (model.params_total - model.active_params) / (e - k) if e > k else 0.0
    dense = model.active_params - k * per_expert
    return min(model.params_total, dense + expected_experts_touched(e, k, tokens) * per_expert)


@dataclass(frozen=True)
class Replica:
    """Precomputed figures of one (model, GPU, quantization, TP, PP) replica."""

    model: ModelFacts
    gpu: GpuFacts
    quantization: str
    tensor_parallel: int
    pipeline_parallel: int
    kv_bytes_per_token: float  # per replica, replication included
    eff: Efficiency

    @property
    def gpus(self) -> int:
        return self.tensor_parallel * self.pipeline_parallel

    def _comm_s(self, tokens: float) -> float:
        tp = self.tensor_parallel
        if tp == 1:
            return 0.0
        link = self.gpu.interconnect.bandwidth_gbs * 1e9 / 2 * self.eff.interconnect
        per = self.eff.allreduce_latency_s + 2 * (tp - 1) / tp * tokens * self.model.hidden_size * ACTIVATION_BYTES / link
        return 2 * self.model.layers * per

    def _step(self, batch: float, context: float, prefill_tokens: float, prompt: float) -> float:
        """One step of `batch` decoding sequences (replica-wide) with `prefill_tokens` prompt
        tokens of chunked prefill mixed in. The prefill adds compute, which overlaps the decode
        step's memory time (a memory-bound step hides it), and activations on the all-reduce."""
        m, tp, pp = self.model, self.tensor_parallel, self.pipeline_parallel
        b = max(1.0, batch / pp)
        weights = memory.weight_bytes(m, self.quantization, params_touched(m, b + prefill_tokens / pp))
        moved = weights + b * context * self.kv_bytes_per_token
        t_mem = moved / (tp * self.gpu.memory_bandwidth_gbs * 1e9 * self.eff.bandwidth)
        flops = b * (2 * m.active_params + 4 * m.layers * m.attention_heads * m.head_dim * context)
        t_compute = flops / (tp * self.peak_flops * self.eff.compute)
        if prefill_tokens > 0:
            t_compute += prefill_tokens * self.prefill_gpu_s_per_token(prompt) / (tp * pp)
        exposed = (1 - self.eff.overlap) * min(t_mem, t_compute)
        return max(t_mem, t_compute) + exposed + self._comm_s(b + prefill_tokens / pp) + self.eff.step_overhead_s

    def tpot_s(self, batch: float, context: float) -> float:
        """Decode step time (= time per output token) with `batch` sequences in the replica."""
        return self._step(batch, context, 0.0, 0.0)

    def decode_tpot_s(self, batch: float, prompt: float, output: float) -> float:
        """What a client measures as TPOT with `batch` sequences in flight: the decode step with
        the chunked prefills of the other sequences' prompts mixed into it."""
        others = max(0.0, batch - 1)
        return self._step(batch, prompt + output / 2, others / output * prompt, prompt)

    @property
    def peak_flops(self) -> float:
        found = self.__dict__.get("_peak")
        if found is None:
            found = peak_flops_per_gpu(self.gpu, self.quantization)
            object.__setattr__(self, "_peak", found)
        return found

    def prefill_gpu_s_per_token(self, prompt: float) -> float:
        m = self.model
        flops = 2 * m.active_params + 2 * m.layers * m.attention_heads * m.head_dim * prompt
        return flops / (self.peak_flops * self.eff.prefill)

    def prefill_latency_s(self, prompt: float) -> float:
        """One prompt alone: the stages run in turn, each over TP GPUs."""
        return prompt * self.prefill_gpu_s_per_token(prompt) / self.tensor_parallel + self._comm_s(prompt)

    def prefill_replica_s(self, prompt: float) -> float:
        """Replica time one request's prefill takes when prefills are pipelined."""
        return prompt * self.prefill_gpu_s_per_token(prompt) / self.gpus + self._comm_s(prompt) / self.pipeline_parallel

    def step_s(self, batch: float, prompt: float, output: float) -> float:
        """Steady-state step: during one step batch / output requests finish and as many prompts
        are prefilled, chunked into the step."""
        return self._step(batch, prompt + output / 2, batch / output * prompt, prompt)

    def capacity_qps(self, batch: float, prompt: float, output: float) -> float:
        return batch / (output * self.step_s(batch, prompt, output))


def replica(model: ModelFacts, gpu: GpuFacts, quantization: str, tp: int, pp: int,
            kv_cache_dtype: str = "auto", eff: Union[Efficiency, EngineConstants, None] = None) -> Replica:
    """`eff`: None for vLLM's calibrated constants on this GPU generation, an EngineConstants
    (per generation) or an Efficiency (as is)."""
    if eff is None:
        eff = efficiency(DEFAULT_ENGINE, gpu)
    elif isinstance(eff, EngineConstants):
        eff = eff.for_gpu(gpu)
    return Replica(model, gpu, quantization, tp, pp,
                   memory.kv_bytes_per_token_per_replica(model, tp, kv_cache_dtype), eff)


def saturated_batch(rep: Replica, limit: int) -> int:
    """Sequences actually in flight when `limit` may run: vLLM keeps about batch_occupancy of
    max_num_seqs busy (a finished sequence's slot waits for the next prompt's prefill)."""
    return max(1, int(limit * rep.eff.batch_occupancy))


def largest_batch(rep: Replica, limit: int, prompt: float, output: float, tpot_slo_s: float) -> int:
    """Largest batch <= limit whose steady-state step meets the TPOT SLO (0: none does)."""
    if limit < 1 or rep.step_s(1, prompt, output) > tpot_slo_s:
        return 0
    if rep.step_s(limit, prompt, output) <= tpot_slo_s:
        return limit
    lo, hi = 1, limit  # step(lo) meets, step(hi) does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if rep.step_s(mid, prompt, output) <= tpot_slo_s:
            lo = mid
        else:
            hi = mid
    return lo


# --- queueing: TTFT at a utilisation -------------------------------------------------------
# Prompts queue for the replica's prefill capacity. We model that queue as M/D/1 (Poisson
# arrivals, deterministic prefill service s = prompt x t_token / GPUs) loaded at the replica's
# utilisation rho, and use the heavy-traffic (Kingman) approximation that the waiting time is
# exponential with P(wait > 0) = rho and mean rho x s / (2 (1 - rho)):
#   wait_p99 = rho s / (2 (1 - rho)) x ln(rho / 0.01)     (0 when rho <= 0.01)
#   TTFT_p99 = prefill_latency + one decode step + wait_p99
P99_TAIL = 0.01


def wait_p99_s(rho: float, service_s: float) -> float:
    if rho <= P99_TAIL:
        return 0.0
    if rho >= 1:
        return math.inf
    return rho * service_s / (2 * (1 - rho)) * math.log(rho / P99_TAIL)


def ttft_p99_s(rep: Replica, rho: float, batch: int, prompt: float, output: float) -> float:
    return (rep.prefill_latency_s(prompt) + rep.step_s(batch, prompt, output)
            + wait_p99_s(rho, rep.prefill_replica_s(prompt)))


def highest_utilization(rep: Replica, batch: int, prompt: float, output: float, ttft_slo_s: float,
                        cap: float) -> float:
    """Largest utilisation <= cap whose TTFT p99 meets the SLO (0: not even an idle replica).
    Only the queueing wait depends on the utilisation, so the rest is computed once."""
    base = rep.prefill_latency_s(prompt) + rep.step_s(batch, prompt, output)
    service = rep.prefill_replica_s(prompt)
    if base > ttft_slo_s:
        return 0.0
    if base + wait_p99_s(cap, service) <= ttft_slo_s:
        return cap
    lo, hi = 0.0, cap
    for _ in range(30):
        mid = (lo + hi) / 2
        if base + wait_p99_s(mid, service) <= ttft_slo_s:
            lo = mid
        else:
            hi = mid
    return lo
