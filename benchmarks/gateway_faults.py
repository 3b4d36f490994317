#!/usr/bin/env python3
"""Gateway fault benchmark: what a bad replica costs the clients of the rendered nginx gateway.

    venv/bin/python benchmarks/gateway_faults.py                       # one run, ~1-2 minutes
    venv/bin/python benchmarks/gateway_faults.py --docs docs/gateway.md  # and write the figures there

One run on loopback, each scenario on a fresh gateway (the rendered nginx.conf, model_router.js,
key file and health_prober.sh; tests/gateway/support.py) in front of four stub replicas
(tests/support/openai_stub.py), the same load in each (--concurrency clients sending chat
completions back to back, half of them streamed), so the ratios compare like with like:

- baseline: four healthy replicas;
- 503: one replica answers every completion with 503 at once (overloaded / shutting down);
- sigkill: one replica is SIGKILLed mid-run under --streams concurrent streams;
- hung: one replica is SIGSTOPped mid-run (accepts connections, answers nothing); clients give
  up after --client-timeout-s, as real ones do; with the prober (the shipped config) and, for
  comparison, without it (nginx's passive health and least_conn alone).

Reported per scenario: success %, requests failed before their first byte, streams broken
mid-stream, p50/p99 latency and p99 relative to the baseline; for `hung`, seconds from the hang
to the prober marking it down and to the last request nginx sent it (its access log).
Machine-dependent: docs/gateway.md names the machine the published figures came from.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import signal
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.gateway import load  # noqa: E402
from tests.gateway.support import Gateway, start_replicas, wait_until  # noqa: E402

BEGIN, END = "<!-- gateway_faults:begin -->", "<!-- gateway_faults:end -->"


def scenario(name: str, args, *, fault=None, at: float = 2.0, prober: bool = True, concurrency=None,
             stream_share: float = 0.5, client_timeout: float = 60) -> dict:
    replicas = start_replicas(4, ttft_ms=args.ttft_ms, itl_ms=args.itl_ms)
    with tempfile.TemporaryDirectory(prefix=f"gateway-faults-{fault or 'baseline'}-") as tmp:
        gateway = Gateway(Path(tmp), {"llama-8b": [r.address for r in replicas]}, prober=prober).start()
        victim = replicas[0]
        marks: dict = {}
        events = []
        try:
            time.sleep(0.5)
            if fault == "503":
                victim.control(fail_status=503)
            elif fault == "sigkill":
                def kill():
                    # Under a heavy load the first streams start late: kill once the victim is
                    # really serving, so the scenario is what it says.
                    deadline = time.monotonic() + args.duration_s - at - 2
                    while time.monotonic() < deadline:
                        marks["in_flight"] = victim.stats()["in_flight"]
                        if marks["in_flight"] >= min(20, args.streams // 8):
                            break
                        time.sleep(0.1)
                    marks["fault"] = time.time()
                    victim.kill()
                events.append((at, kill))
            elif fault == "hung":
                def hang():
                    marks["fault"] = time.time()
                    victim.signal(signal.SIGSTOP)

                def watch():
                    try:
                        wait_until(lambda: f"vllm_llama_8b {victim.address}" in gateway.down(),
                                   timeout=args.duration_s - at - 1)
                        marks["marked"] = time.time()
                    except TimeoutError:
                        pass

                def resume():
                    marks["resume"] = time.time()
                    victim.signal(signal.SIGCONT)

                events += [(at, hang), (at + 0.01, watch), (args.duration_s - 1, resume)]
            results = asyncio.run(load.run(gateway.url, concurrency=concurrency or args.concurrency,
                                           duration_s=args.duration_s, max_tokens=args.max_tokens,
                                           stream_share=stream_share, events=events, timeout=client_timeout))
            entries = load.access_log(gateway.nginx.access_log())
        finally:
            gateway.stop()
            for r in replicas:
                r.kill()
    lat = [r.latency for r in results if r.ok]
    out = {
        "scenario": name, "requests": len(results), "success_pct": 100 * sum(r.ok for r in results) / len(results),
        "failed_before_first_byte": sum(r.failed_before_first_byte for r in results),
        "broken_mid_stream": sum(bool(r.error) and r.started for r in results),
        "replayed": sum(sum(s == "200" for s in e["statuses"]) > 1 for e in entries)
        + sum(len(r.served_by) > 1 for r in results),
        "p50_ms": 1000 * load.percentile(lat, 50), "p99_ms": 1000 * load.percentile(lat, 99),
        "concurrency": concurrency or args.concurrency,
    }
    if fault == "sigkill":
        out["victim_in_flight"] = marks.get("in_flight")
    if fault == "hung":
        sent = [e["start"] for e in entries if any(victim.address in u for u in e["upstreams"])
                and e["request"].startswith("POST") and e["start"] < marks["resume"]]
        out["marked_down_s"] = marks["marked"] - marks["fault"] if "marked" in marks else None
        out["last_sent_to_it_s"] = max(max(sent, default=marks["fault"]) - marks["fault"], 0.0)
        out["observed_s"] = marks["resume"] - marks["fault"]
    return out


def table(rows: list[dict], base: dict) -> str:
    lines = ["| scenario | requests | success | failed before 1st byte | broken mid-stream | replayed | p50 ms "
             "| p99 ms | p99 vs baseline | marked down by the prober | detail |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        hung = ("", "")
        if "last_sent_to_it_s" in r:
            marked = "never" if r["marked_down_s"] is None else f"{r['marked_down_s']:.1f} s"
            last = f"last request sent to it {r['last_sent_to_it_s']:.1f} s after the hang"
            if r["last_sent_to_it_s"] >= r["observed_s"] - 1.5:
                last += f" (still fed at the end, {r['observed_s']:.0f} s)"
            hung = (marked, last)
        # Only runs at the baseline's load compare; the sigkill run has its own (--streams).
        ratio = f"{r['p99_ms'] / base['p99_ms']:.2f}x" if r.get("concurrency") == base.get("concurrency") else "other load"
        if r.get("victim_in_flight") is not None:
            hung = ("", f"(killed with {r['victim_in_flight']} in flight on it)")
        lines.append(f"| {r['scenario']} | {r['requests']} | {r['success_pct']:.2f}% | {r['failed_before_first_byte']} "
                     f"| {r['broken_mid_stream']} | {r['replayed']} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} "
                     f"| {ratio} | {hung[0]} | {hung[1]} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--streams", type=int, default=500, help="concurrent streams in the sigkill scenario")
    parser.add_argument("--duration-s", type=float, default=15)
    parser.add_argument("--max-tokens", type=int, default=20)
    parser.add_argument("--ttft-ms", type=float, default=50)
    parser.add_argument("--itl-ms", type=float, default=20)
    parser.add_argument("--client-timeout-s", type=float, default=5)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--docs", type=Path, help=f"replace the block between {BEGIN} and {END} in this file")
    parser.add_argument("--render-json", type=Path, help="print (and with --docs write) a saved --json run")
    args = parser.parse_args()

    if args.render_json:
        saved = json.loads(args.render_json.read_text())
        for row, name in zip(saved["rows"], ["baseline", "503", "sigkill", "hung", "hung"]):
            row.setdefault("concurrency", saved["settings"]["streams" if name == "sigkill" else "concurrency"])
        publish(saved["rows"], saved["settings_text"], args)
        return
    rows = [scenario("baseline", args)]
    rows.append(scenario("503 replica", args, fault="503"))
    rows.append(scenario(f"sigkill ({args.streams} streams)", args, fault="sigkill", concurrency=args.streams,
                         stream_share=1.0))
    rows.append(scenario(f"hung, prober (client timeout {args.client_timeout_s:.0f} s)", args, fault="hung",
                         client_timeout=args.client_timeout_s))
    rows.append(scenario(f"hung, no prober (client timeout {args.client_timeout_s:.0f} s)", args, fault="hung",
                         prober=False, client_timeout=args.client_timeout_s))
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}"
    settings = (f"4 stub replicas, {args.concurrency} clients ({args.streams} streams for sigkill), half streamed, "
                f"{args.max_tokens} tokens, TTFT {args.ttft_ms:.0f} ms, {args.itl_ms:.0f} ms/token, "
                f"{args.duration_s:.0f} s per scenario, fault at 2 s; {machine}; "
                f"`venv/bin/python benchmarks/gateway_faults.py` ({time.strftime('%Y-%m-%d')})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"settings": vars(args) | {"json": None, "docs": None}, "machine": machine,
                                         "settings_text": settings, "rows": rows}, indent=2, default=str))
    publish(rows, settings, args)


def publish(rows: list[dict], settings: str, args) -> None:
    text = table(rows, rows[0])
    print(text)
    print(settings)
    if args.docs:
        doc = args.docs.read_text()
        block = f"{BEGIN}\n{text}\n\n{settings}\n{END}"
        if BEGIN not in doc:
            raise SystemExit(f"{args.docs}: no {BEGIN} ... {END} block")
        args.docs.write_text(re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, doc, flags=re.S))


if __name__ == "__main__":
    main()
