"""`tierscale bench` through the rendered gateway against two real vLLM CPU servers: its TTFT
and TPOT agree with the engines' own histograms, scraped from /metrics before and after.

What is compared, and the tolerance:
  - count: every measured request is one TTFT observation in vLLM (warm-up off, no retries):
    the histograms' count grows by exactly the number bench completed;
  - TTFT: vLLM times from the request's arrival in the engine client to its first token;
    bench times from sending the request to the first chunk with content, so it adds the
    client, the gateway, HTTP parsing, the chat template and tokenization, and the SSE path
    back. bench's mean can never be below vLLM's (1 ms slack for clock and rounding), and may
    exceed it by at most TTFT_OVERHEAD_MS on a loaded 2-core machine where bench, nginx and
    both engines share the cores. The p50 is checked the same way against the histogram's
    p50 bucket (vLLM's bucket bounds: p50 >= the lower bound of the bucket that holds it);
  - TPOT: both are per-request (last token - first token) / (tokens - 1) (vLLM's
    vllm:request_time_per_output_token_seconds); bench's ends at [DONE], so the means agree
    within TPOT_REL of vLLM's plus TPOT_ABS_MS.
"""

from __future__ import annotations

import json
import os
import subprocess

from components.observability.metrics import metric
from tests.conftest import TIERSCALE
from tests.live.real_stack import TINY, gateway, histogram, metrics_text, pair  # noqa: F401

TTFT = metric("vllm:time_to_first_token_seconds")
TPOT = metric("vllm:request_time_per_output_token_seconds")
REQUESTS = 40
TTFT_OVERHEAD_MS = 150.0
TPOT_REL, TPOT_ABS_MS = 0.35, 2.0


def _snapshot(pair) -> dict:
    out = {}
    for name in (TTFT, TPOT):
        hists = [histogram(metrics_text(s), name) for s in pair]
        les = sorted(hists[0]["buckets"])
        out[name] = {"count": sum(h["count"] for h in hists), "sum": sum(h["sum"] for h in hists),
                     "buckets": {le: sum(h["buckets"][le] for h in hists) for le in les}}
    return out


def _delta(before: dict, after: dict, name: str) -> dict:
    b, a = before[name], after[name]
    return {"count": a["count"] - b["count"], "sum": a["sum"] - b["sum"],
            "buckets": {le: a["buckets"][le] - b["buckets"][le] for le in a["buckets"]}}


def _bucket_of(hist: dict, q: float) -> tuple[float, float]:
    """(lower, upper) bound of the histogram bucket holding quantile q."""
    rank = q * hist["count"]
    lower = 0.0
    for le in sorted(hist["buckets"]):
        if hist["buckets"][le] >= rank:
            return lower, le
        lower = le
    return lower, float("inf")


def test_bench_ttft_and_tpot_agree_with_vllms_own_histograms(pair, gateway, tmp_path):
    before = _snapshot(pair)
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [TIERSCALE, "bench", "--endpoint", gateway.url, "--model", TINY, "--requests", str(REQUESTS),
         "--concurrency", "4", "--prompt-tokens", "32", "--output-tokens", "32", "--warmup", "0", "--out", str(out)],
        capture_output=True, text=True, timeout=300, env=dict(os.environ, TIERSCALE_API_KEY=pair[0].api_key))
    after = _snapshot(pair)
    print(done.stdout[-3000:], done.stderr[-2000:])
    result = json.loads(out.read_text())
    summary = result["runs"][0] if "runs" in result else result
    assert summary["errors"] == 0 and summary["completed"] == REQUESTS, summary
    ttft, tpot = _delta(before, after, TTFT), _delta(before, after, TPOT)
    assert ttft["count"] == REQUESTS, ttft
    server_ttft_ms = 1000 * ttft["sum"] / ttft["count"]
    client_ttft_ms = summary["ttft_ms"]["mean"]
    lo, hi = _bucket_of(ttft, 0.5)
    server_tpot_ms = 1000 * tpot["sum"] / tpot["count"]
    client_tpot_ms = summary["tpot_ms"]["mean"]
    print(f"TTFT mean: bench {client_ttft_ms:.1f} ms, vLLM {server_ttft_ms:.1f} ms (+{client_ttft_ms - server_ttft_ms:.1f}); "
          f"p50: bench {summary['ttft_ms']['p50']:.1f} ms, vLLM bucket ({lo * 1000:g}, {hi * 1000:g}] ms")
    print(f"TPOT mean: bench {client_tpot_ms:.2f} ms, vLLM {server_tpot_ms:.2f} ms over {tpot['count']:.0f} requests")
    assert server_ttft_ms - 1 <= client_ttft_ms <= server_ttft_ms + TTFT_OVERHEAD_MS
    assert lo * 1000 - 1 <= summary["ttft_ms"]["p50"] <= hi * 1000 + TTFT_OVERHEAD_MS
    assert abs(client_tpot_ms - server_tpot_ms) <= TPOT_REL * server_tpot_ms + TPOT_ABS_MS
