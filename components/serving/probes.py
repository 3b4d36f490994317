"""Probe and shutdown timings, sized to how long a model takes to load.

A vLLM replica is healthy only after it has read its weights, profiled memory and captured
CUDA graphs. We budget:
  startup_budget_s = ENGINE_INIT_S + weight_bytes_per_gpu / LOAD_BYTES_PER_S, times SAFETY
(the weights of one GPU's shard load in parallel with the other ranks'). Every tier derives its
startup probe / healthcheck start period from this one figure.
"""

from __future__ import annotations

import math

ENGINE_INIT_S = 90  # memory profiling, CUDA graph capture, torch.compile warm cache
LOAD_BYTES_PER_S = 200e6  # cold read from a local or network model cache, per GPU
SAFETY = 2
PROBE_PERIOD_S = 10

# Graceful stop: the pre-stop hook lets the load balancer drop the endpoint, then vLLM
# drains in-flight requests for up to its shutdown timeout before it exits.
PRESTOP_SLEEP_S = 15
VLLM_SHUTDOWN_TIMEOUT_S = 120
TERMINATION_GRACE_S = PRESTOP_SLEEP_S + VLLM_SHUTDOWN_TIMEOUT_S + 15


def startup_budget_s(weight_bytes_per_gpu: float) -> int:
    return int(math.ceil((ENGINE_INIT_S + weight_bytes_per_gpu / LOAD_BYTES_PER_S) * SAFETY / 10) * 10)


def startup_failure_threshold(budget_s: int) -> int:
    return math.ceil(budget_s / PROBE_PERIOD_S)
