"""Fit the planner's vLLM constants on part of the published rows; report the held-out error.

Usage: venv/bin/python -m benchmarks.fit_planner [--write] [--docs]

Rows of components/facts/measurements.yaml with `engine: vllm` and no `holdout: true` are the
fit set; rows with `holdout: true` are never seen by the fit, and their error is the held-out
error. The fit is a coordinate descent over bounded grids (a few passes, each constant in turn):

  bandwidth_efficiency (every generation, then ampere's override)  0.50 - 0.95
  decode_compute_efficiency                                         0.30 - 0.95
  prefill_compute_efficiency                                        0.20 - 0.95
  step_overhead_ms                                                  0 - 5
  allreduce_latency_us                                              5 - 60
  overlap                                                           0 - 1
  batch_occupancy                                                   0.60 - 1.00

minimising the largest relative error over the fit rows, ties broken by the sum of squared
errors. The tensorrt-llm constants (MLPerf rows) are left as they are.

--write stores the fitted constants in measurements.yaml; --docs rewrites the calibration table
in docs/planner.md (between its `calibration-table` markers) from this run.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from components.planner import calibration, perf

DOCS = Path(__file__).resolve().parent.parent / "docs" / "planner.md"
BEGIN, END = "<!-- calibration-table:begin (benchmarks/fit_planner.py --docs) -->", "<!-- calibration-table:end -->"


def _grid(lo: float, hi: float, step: float) -> list[float]:
    n = int(round((hi - lo) / step))
    return [round(lo + i * step, 4) for i in range(n + 1)]


# (Efficiency field, generation or None, grid, measurements.yaml key, scale to the file's unit)
PARAMETERS = [
    ("bandwidth", None, _grid(0.5, 0.95, 0.01), "bandwidth_efficiency", 1),
    ("bandwidth", "ampere", _grid(0.5, 0.95, 0.01), "bandwidth_efficiency", 1),
    ("compute", None, _grid(0.2, 0.95, 0.05), "decode_compute_efficiency", 1),
    ("prefill", None, _grid(0.3, 0.95, 0.05), "prefill_compute_efficiency", 1),
    ("step_overhead_s", None, [x / 1000 for x in _grid(0, 5, 0.25)], "step_overhead_ms", 1000),
    ("allreduce_latency_s", None, [x / 1e6 for x in _grid(5, 100, 5)], "allreduce_latency_us", 1e6),
    ("overlap", None, _grid(0, 1, 0.1), "overlap", 1),
    ("batch_occupancy", None, _grid(0.6, 1.0, 0.05), "batch_occupancy", 1),
]


def _fit_rows() -> list[dict]:
    return [r for r in calibration.rows() if r.get("engine") == "vllm" and not r.get("holdout") and r["kind"] != "kv_tokens"]


def _score(constants: perf.EngineConstants, rows: list[dict]) -> tuple[float, float]:
    errors = [calibration.predict(r, {"vllm": constants}) / r["published"] - 1 for r in rows]
    return round(max(abs(e) for e in errors), 4), sum(e * e for e in errors)


def _get(constants: perf.EngineConstants, field: str, generation) -> float:
    eff = constants.for_generation(generation) if generation else constants.base
    return getattr(eff, field)


# Where the descent starts (fixed, so a rerun reproduces the stored constants): roofline-style
# values, vLLM's stated link efficiency, no per-generation override yet.
SEED = perf.Efficiency(bandwidth=0.8, compute=0.5, prefill=0.5, step_overhead_s=0.001, allreduce_latency_s=20e-6,
                       interconnect=0.8, overlap=0.5, batch_occupancy=0.8)


def fit(passes: int = 6) -> tuple[perf.EngineConstants, tuple[float, float]]:
    rows = _fit_rows()
    best = perf.EngineConstants("vllm", SEED).with_values("ampere", bandwidth=SEED.bandwidth)
    best_key = _score(best, rows)
    for _ in range(passes):
        improved = False
        for field, generation, grid, _key, _scale in PARAMETERS:
            for value in grid:
                trial = best.with_values(generation, **{field: value})
                key = _score(trial, rows)
                if key < best_key:
                    best, best_key, improved = trial, key, True
        if not improved:
            break
    return best, best_key


def write_constants(constants: perf.EngineConstants) -> None:
    text = perf.MEASUREMENTS.read_text()
    start = text.index("  vllm:\n")
    end = text.index("  tensorrt-llm:\n")
    block = text[start:end]
    for field, generation, _grid_, key, scale in PARAMETERS:
        value = _get(constants, field, generation) * scale
        shown = f"{value:g}" if key in ("allreduce_latency_us",) else f"{round(value, 4):g}"
        if generation is None:
            block = re.sub(rf"(?m)^(    {key}: )[0-9.e-]+", rf"\g<1>{shown}", block)
        else:
            block = re.sub(rf"(?m)^(      {generation}: {{{key}: )[0-9.e-]+(}})", rf"\g<1>{shown}\g<2>", block)
    perf.MEASUREMENTS.write_text(text[:start] + block + text[end:])


def markdown(rows: list[calibration.Row]) -> str:
    def fmt(x: float) -> str:
        return f"{x:,.0f}" if x >= 100 else f"{x:,.2f}"

    lines = ["| row (source in components/facts/measurements.yaml) | engine | set | published | predicted | error |",
             "|---|---|---|---:|---:|---:|"]
    for r in rows:
        role = "held out" if r.holdout else ("fit" if r.engine == "vllm" and r.kind != "kv_tokens" else "check")
        lines.append(f"| {r.id} ({r.unit}) | {r.engine} | {role} | {fmt(r.published)} | {fmt(r.predicted)} | {r.error:+.1%} |")
    s = calibration.vllm_error_summary(rows)
    lines.append("")
    lines.append(f"vLLM rows: {s['rows']}; largest |error| {s['worst']:.1%}, median {s['median']:.1%}; "
                 f"held out only: largest {s['holdout_worst']:.1%}, median {s['holdout_median']:.1%}.")
    return "\n".join(lines)


def write_docs(rows: list[calibration.Row], constants: perf.EngineConstants) -> None:
    text = DOCS.read_text() if DOCS.exists() else f"{BEGIN}\n{END}\n"
    eff = constants.base
    gens = ", ".join(f"{g}: " + ", ".join(f"{k} {v:g}" for k, v in c) for g, c in constants.per_generation)
    consts = (f"Fitted vLLM constants: bandwidth {eff.bandwidth:g} ({gens}), decode compute {eff.compute:g}, "
              f"prefill {eff.prefill:g}, step overhead {eff.step_overhead_s * 1000:g} ms, all-reduce "
              f"{eff.allreduce_latency_s * 1e6:g} us, overlap {eff.overlap:g}, batch occupancy {eff.batch_occupancy:g}.")
    body = f"{BEGIN}\n{markdown(rows)}\n\n{consts}\n{END}"
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + body + text[text.index(END) + len(END):]
    else:
        text += "\n" + body + "\n"
    DOCS.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="store the fitted constants in measurements.yaml")
    parser.add_argument("--docs", action="store_true", help="rewrite the calibration table in docs/planner.md")
    args = parser.parse_args()
    constants, (worst, _sse) = fit()
    rows = calibration.table({"vllm": constants})
    print(markdown(rows))
    print(f"fit rows: largest |error| {worst:.1%}")
    if args.write:
        write_constants(constants)
        print(f"wrote {perf.MEASUREMENTS}")
    if args.docs:
        write_docs(rows, constants)
        print(f"wrote {DOCS}")


if __name__ == "__main__":
    main()
