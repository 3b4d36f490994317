"""Predict every published measurement in measurements.yaml with the planner's own model.

Each row is predicted with its engine's constants (`engine: vllm | tensorrt-llm`) on its GPU's
generation:
  throughput, offline/saturated: replicas x B / step(B), B = the sequences in flight:
                                 batch_occupancy x min(KV-cache batch, max_num_seqs)
  throughput, concurrency C:     replicas x C / step(C)  (closed loop: C clients)
  throughput, server:            B capped by the row's TPOT limit, each replica run at the
                                 highest utilisation whose TTFT p99 meets the row's TTFT limit
  tpot_ms, saturated:            step(B) (every step carries the arriving prompts' prefill)
  tpot_ms, concurrency C:        decode step of C sequences + the other C-1 prompts' prefill
  ttft_ms, concurrency 1:        the planner's TTFT with no queue: prefill + one step
  kv_tokens:                     KV budget of one replica / KV bytes per token (memory.py)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Mapping, Optional

from components.facts import gpu_catalog, model_catalog
from components.planner import memory, perf


@dataclass(frozen=True)
class Row:
    id: str
    kind: str
    engine: str
    holdout: bool
    published: float
    predicted: float
    unit: str
    source: str

    @property
    def error(self) -> float:
        return self.predicted / self.published - 1


Constants = Mapping[str, perf.EngineConstants]


def _constants(row: dict, constants: Optional[Constants]) -> perf.EngineConstants:
    engine = row.get("engine", perf.DEFAULT_ENGINE)
    if constants is not None and engine in constants:
        return constants[engine]
    return perf.engine_constants(engine)


def predict(row: dict, constants: Optional[Constants] = None) -> float:
    model = model_catalog()[row["model"]]
    gpu = gpu_catalog()[row["gpu"]]
    quant = row["quantization"]
    kv_dtype = row.get("kv_cache_dtype", "auto")
    tp, pp = row["tensor_parallel"], row.get("pipeline_parallel", 1)
    util = row.get("gpu_memory_utilization", 0.9)
    budget = memory.kv_budget_bytes(model, gpu, quant, tp * pp, util)
    kv_per_token = memory.kv_bytes_per_token_per_replica(model, tp, kv_dtype)
    if row["kind"] == "kv_tokens":
        return budget / kv_per_token
    prompt, output = row["prompt_tokens"], row["output_tokens"]
    rep = perf.replica(model, gpu, quant, tp, pp, kv_dtype, _constants(row, constants))
    replicas = row["gpus"] // (tp * pp)
    limit = min(memory.sequences_that_fit(budget, kv_per_token, prompt + output), row["max_num_seqs"])
    scenario = row["scenario"]
    if scenario == "concurrency":
        c = min(row["concurrency"], limit)
        if row["kind"] == "ttft_ms":
            return perf.ttft_p99_s(rep, 0.0, c, prompt, output) * 1000
        if row["kind"] == "tpot_ms":
            return rep.decode_tpot_s(c, prompt, output) * 1000
        return replicas * c / rep.step_s(c, prompt, output)
    if scenario in ("offline", "saturated"):
        batch = perf.saturated_batch(rep, limit)
        if row["kind"] == "tpot_ms":
            return rep.step_s(batch, prompt, output) * 1000
        return replicas * batch / rep.step_s(batch, prompt, output)
    batch = perf.largest_batch(rep, perf.saturated_batch(rep, limit), prompt, output, row["tpot_ms"] / 1000)
    if batch == 0:
        return 0.0
    rho = perf.highest_utilization(rep, batch, prompt, output, row["ttft_ms"] / 1000, cap=0.99)
    return replicas * rho * rep.capacity_qps(batch, prompt, output) * output


def rows() -> list[dict]:
    return perf.measurements()["measurements"]


def table(constants: Optional[Constants] = None) -> list[Row]:
    return [Row(r["id"], r["kind"], r.get("engine", perf.DEFAULT_ENGINE), bool(r.get("holdout")), r["published"],
                predict(r, constants), r["unit"], r["source"])
            for r in rows()]


def vllm_error_summary(table_rows: Optional[list[Row]] = None) -> dict[str, float]:
    """Largest and median |error| of the vLLM throughput/latency rows (fitted, held out, all)."""
    found = [r for r in (table_rows or table()) if r.engine == "vllm" and r.kind != "kv_tokens"]

    def stats(rs: list[Row]) -> tuple[float, float]:
        errs = sorted(abs(r.error) for r in rs)
        if not errs:
            return 0.0, 0.0
        mid = len(errs) // 2
        median = errs[mid] if len(errs) % 2 else (errs[mid - 1] + errs[mid]) / 2
        return errs[-1], median

    worst, median = stats(found)
    held_worst, held_median = stats([r for r in found if r.holdout])
    return {"worst": worst, "median": median, "holdout_worst": held_worst, "holdout_median": held_median,
            "rows": len(found)}


@cache
def slo_margin() -> float:
    """The planner's measured error on vLLM: the largest |error| over the vLLM rows (fitted and
    held out). `plan` sizes for SLO / (1 + this), so a configuration it recommends still meets
    the SLO when vLLM runs that much slower than predicted."""
    return round(vllm_error_summary()["worst"], 3)
