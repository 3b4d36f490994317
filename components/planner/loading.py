"""How long a replica takes from container start to a healthy /health: the startup budget.

A vLLM replica is healthy only after it has read its weights, profiled memory and captured
CUDA graphs. We budget:
  startup_budget_s = ENGINE_INIT_S + weight_bytes_per_gpu / LOAD_BYTES_PER_S, times SAFETY
(the weights of one GPU's shard load in parallel with the other ranks'). The planner derives it
with the rest of a model's figures; every tier sizes its startup probe, healthcheck start
period and autoscaler windows from this one number (components.serving.probes).
"""

from __future__ import annotations

import math

ENGINE_INIT_S = 90  # memory profiling, CUDA graph capture, torch.compile warm cache
LOAD_BYTES_PER_S = 200e6  # cold read from a local or network model cache, per GPU
SAFETY = 2


def startup_budget_s(weight_bytes_per_gpu: float) -> int:
    return int(math.ceil((ENGINE_INIT_S + weight_bytes_per_gpu / LOAD_BYTES_PER_S) * SAFETY / 10) * 10)
