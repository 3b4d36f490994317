"""How long the planner takes: a full search for one model over every GPU type, and a stack.

Usage: venv/bin/python -m benchmarks.planner_speed [--repeat N]
Targets (issue #15): <= 1 s per full search; <= 2 s to plan the 3-region large stack
(`large-prod`: every model of every region resolved, placed and compared with the optimum, as
`tierscale validate` does). Not a timed unit test: the figures depend on the machine; this
prints them.
"""

from __future__ import annotations

import argparse
import time

from components.facts import model_catalog
from components.planner import PlanRequest, plan
from components.spec.stack_file import load_stack


def full_search(key: str) -> float:
    facts = model_catalog()[key]
    start = time.perf_counter()
    plan(PlanRequest(model_key=key, model=facts, gpu_key="any", max_model_len=min(8192, facts.max_context), qps=800))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    full_search("llama-3.1-8b")  # warm the caches (catalog, measurements)
    worst = 0.0
    for key in model_catalog():
        best = min(full_search(key) for _ in range(args.repeat))
        worst = max(worst, best)
        print(f"{key:18s} full search over every GPU type, quantization, TP/PP, maxNumSeqs: {best * 1000:7.1f} ms")
    print(f"slowest model: {worst * 1000:.1f} ms (target <= 1000 ms)")
    stack_s = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        stack = load_stack("large-prod")
        stack_s.append(time.perf_counter() - start)
    regions = len(stack.spec.target.regions)
    print(f"large-prod ({regions} regions, {len(stack.models)} models) planned, placed and checked: "
          f"{min(stack_s) * 1000:.0f} ms (target <= 2000 ms)")


if __name__ == "__main__":
    main()
