"""Probe and shutdown timings shared by every tier.

The startup budget itself (how long a model takes to load) is a planner figure
(components.planner.loading) carried on each ResolvedModel; this module turns it into probe
settings and holds the graceful-stop timings.
"""

from __future__ import annotations

import math

PROBE_PERIOD_S = 10

# Graceful stop: the pre-stop hook lets the load balancer drop the endpoint, then vLLM
# drains in-flight requests for up to its shutdown timeout before it exits.
PRESTOP_SLEEP_S = 15
VLLM_SHUTDOWN_TIMEOUT_S = 120
TERMINATION_GRACE_S = PRESTOP_SLEEP_S + VLLM_SHUTDOWN_TIMEOUT_S + 15


def startup_failure_threshold(budget_s: int) -> int:
    return math.ceil(budget_s / PROBE_PERIOD_S)
