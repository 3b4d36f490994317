"""Predict every published measurement in measurements.yaml with the planner's own model.

  throughput, offline: replicas x B / step(B), B = min(KV-cache batch, max_num_seqs)
  throughput, server:  the same with B capped by the row's TPOT limit and each replica run at
                       the highest utilisation whose TTFT p99 meets the row's TTFT limit
  kv_tokens:           KV budget of one replica / KV bytes per token (memory.py)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from components.facts import gpu_catalog, model_catalog
from components.planner import memory, perf


@dataclass(frozen=True)
class Row:
    id: str
    kind: str
    published: float
    predicted: float
    unit: str
    source: str

    @property
    def error(self) -> float:
        return self.predicted / self.published - 1


def predict(row: dict, eff: Optional[perf.Efficiency] = None) -> float:
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
    rep = perf.replica(model, gpu, quant, tp, pp, kv_dtype, eff)
    replicas = row["gpus"] // (tp * pp)
    limit = min(memory.sequences_that_fit(budget, kv_per_token, prompt + output), row["max_num_seqs"])
    if row["scenario"] == "offline":
        return replicas * limit / rep.step_s(limit, prompt, output)
    batch = perf.largest_batch(rep, limit, prompt, output, row["tpot_ms"] / 1000)
    if batch == 0:
        return 0.0
    rho = perf.highest_utilization(rep, batch, prompt, output, row["ttft_ms"] / 1000, cap=0.99)
    return replicas * rho * rep.capacity_qps(batch, prompt, output) * output


def table(eff: Optional[perf.Efficiency] = None) -> list[Row]:
    return [Row(r["id"], r["kind"], r["published"], predict(r, eff), r["unit"], r["source"])
            for r in perf.measurements()["measurements"]]
