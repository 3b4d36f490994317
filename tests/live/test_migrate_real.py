"""`tierscale migrate run` whose gates read real vLLM metrics through the real Prometheus.

The harness of tests/migration/test_run_live.py with real engines instead of stubs: the source
pool is real vLLM server 0, the destination pool real vLLM server 1 (the session's pair,
tests/live/real_stack.py), the gateway the rendered nginx config with weighted pools (reloaded
by the run), Prometheus scrapes both servers every second (labels deployment="src"/"dst") with
the gates as recording rules. The CLI command runs in-process with one substitution: the driver
that "brings the destination up" hands over server 1 (already running) instead of starting
stub processes; everything the gates, the split and the journal do is the product's.

One healthy case: every step's gates hold on vLLM's own histograms and HTTP counter, the run
completes, the source then receives nothing, no client request fails.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from components import cli
from components.local import runner
from components.migration import drivers, gates as gate_defs
from components.spec.stack_file import load_stack
from tests.live.real_stack import SUCCESS, TINY, counter_total, metrics_text, pair  # noqa: F401

SRC, DST = "live-src", "live-dst"
# The gates' rate() window spans the whole run (about 30 s here), so the source's p99 is its p99
# under the full load, and the destination's at 100% is judged against the same load, not against
# the source's 50% step: CPU engines sharing two cores are not load-independent.
WINDOW = "60s"  # Prometheus shows it as 1m in the loaded rule: the run must still read the record
EVAL_S = 1.0


def _stack(host: str) -> dict:
    # Absolute objectives far above what the tiny model needs: on a 2-core machine shared with
    # other work a CPU engine's p99 reached 2.4 s. The relative gate (ttft_p99_change <= 1.10
    # against the source, measured in the same Prometheus) is judged once both sides have
    # gates.MIN_COMPARISON_SAMPLES requests in the window; the warm-up's 50 alone do not.
    return {"config": {
        "tierscale:tier": "small",
        "tierscale:target": {"kind": "docker-host", "host": host, "deployDir": f"/opt/tierscale/{host}"},
        "tierscale:gpu": {"type": "l40s", "perNode": 4},
        "tierscale:models": [{"id": "meta-llama/Llama-3.1-8B-Instruct", "name": "llama-8b", "servedModelName": TINY,
                              "maxModelLen": 512, "replicas": 1}],
        "tierscale:gateway": {"kind": "nginx", "port": 8000},
        "tierscale:slo": {"ttftP99Ms": 10000, "tpotP99Ms": 2000, "availability": 99.0, "expectedQps": 1,
                          "meanPromptTokens": 128, "meanOutputTokens": 64},
    }}


class PairDriver:
    """A migrate-run driver whose destination is already running: real vLLM server 1."""

    def __init__(self, state_dir: Path, dst_server):
        self.state_dir, self.server = state_dir, dst_server
        state_dir.mkdir(parents=True, exist_ok=True)

    def check(self) -> None:
        pass

    def up(self, stack: str) -> dict:
        targets = [{"targets": [f"127.0.0.1:{self.server.port}"], "labels": {"deployment": "dst", "model": "llama-8b"}}]
        (self.state_dir / "targets.json").write_text(json.dumps(targets))
        return self.outputs(stack)

    def outputs(self, stack: str) -> dict:
        return {"endpoints": {"llama-8b": [f"http://127.0.0.1:{self.server.port}"]}}

    def apply(self, stack: str, manifests: list[dict]) -> None:
        (self.state_dir / "applied.json").write_text(json.dumps(manifests))

    def read(self, stack: str):
        path = self.state_dir / "applied.json"
        return json.loads(path.read_text()) if path.exists() else []


class Load:
    """Closed-loop completions through the gateway, a new connection each (nginx reloads), the
    shape of the run's warm-up requests (8 tokens) with more in flight than its 8."""

    def __init__(self, url: str, key: str, concurrency: int = 12):
        self.url, self.key, self.concurrency = url, key, concurrency
        self.results: list[dict] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=self.url, timeout=60, limits=limits,
                                     headers={"Authorization": f"Bearer {self.key}"}) as client:
            async def worker():
                while not self.stop.is_set():
                    error = None
                    try:
                        reply = await client.post("/v1/chat/completions", json={
                            "model": TINY, "max_tokens": 8, "temperature": 0,
                            "messages": [{"role": "user", "content": "tierscale load"}]})
                        if reply.status_code != 200:
                            error = f"HTTP {reply.status_code}: {reply.text[:200]}"
                    except httpx.HTTPError as e:
                        error = repr(e)
                    self.results.append({"error": error, "t": time.time()})
            await asyncio.gather(*(worker() for _ in range(self.concurrency)))

    def start(self) -> "Load":
        self.thread.start()
        return self

    def finish(self) -> list[dict]:
        self.stop.set()
        self.thread.join(60)
        return self.results


def test_healthy_real_destination_takes_all_traffic_through_gates_on_real_metrics(pair, tmp_path, monkeypatch):
    src_server, dst_server = pair
    key = src_server.api_key
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    for name, host in ((SRC, "gpu-a"), (DST, "gpu-b")):
        (stacks / f"Pulumi.{name}.yaml").write_text(yaml.safe_dump(_stack(host), sort_keys=False))
    src = load_stack(SRC, stacks)
    gw = tmp_path / "gateway"
    gw.mkdir()
    # The source's gateway, rendered and started as `tierscale up --local` runs it.
    gateway = runner.Gateway(src, SRC, {"llama-8b": [f"127.0.0.1:{src_server.port}"]}, gw, [key],
                             runner.free_port(), prober=False, worker_processes="2")
    gateway.start()
    render = {"listen": f"127.0.0.1:{gateway.port}", "status_listen": f"127.0.0.1:{gateway.status_port}",
              "runtime_dir": str(gw), "log_dir": str(gw / "logs"), "temp_dir": str(gw / "tmp"),
              "js_path": str(gw / "model_router.js"), "auth_file": str(gw / "api-keys.conf")}
    traffic = tmp_path / "traffic.yaml"
    traffic.write_text(yaml.safe_dump({
        "kind": "nginx", "conf": str(gateway.conf), "status_url": f"http://127.0.0.1:{gateway.status_port}/gateway/traffic",
        "render": render, "source_servers": {"llama-8b": [f"127.0.0.1:{src_server.port}"]}}, sort_keys=False))
    driver_dir = tmp_path / "driver"
    dst = load_stack(DST, stacks)
    # The relative gate's 10% limit is a production threshold for two GPU deployments of one
    # model. Here source and destination are two CPU engines on the same two cores as the rest of
    # the suite, and their TTFT p99 differed by 1.3x to 2.1x with no fault (measured, the machine
    # busy): the test proves the mechanism (real metrics, recording rules read back, every step
    # gated on the destination's absolute SLOs and the ratio), not the 10% limit, so it allows
    # 4x; tests/migration/test_run_live.py proves a 5x TTFT degradation rolls back.
    monkeypatch.setattr(gate_defs, "MAX_LATENCY_INCREASE", 4.0)
    rules = gate_defs.recording_rules(gate_defs.gates('{deployment="dst"}', '{deployment="src"}',
                                                      dst.spec.slo.ttft_p99_ms, dst.spec.slo.tpot_p99_ms, WINDOW))
    # Both engines' first requests after start are slow (seconds on a busy CPU); they must not be
    # what the gates judge. Counts from before Prometheus's first scrape are outside every rate().
    for server in pair:
        warm = Load(f"http://127.0.0.1:{server.port}", key, concurrency=8).start()
        time.sleep(4)
        assert not [r for r in warm.finish() if r["error"]]
    prom = runner.PrometheusServer({
        "global": {"scrape_interval": "1s", "scrape_timeout": "900ms", "evaluation_interval": "1s"},
        "rule_files": [str(tmp_path / "prometheus" / "rules" / "gates.yml")],
        "scrape_configs": [
            {"job_name": "src", "static_configs": [{"targets": [f"127.0.0.1:{src_server.port}"],
                                                     "labels": {"deployment": "src", "model": "llama-8b"}}]},
            {"job_name": "dst", "file_sd_configs": [{"files": [str(driver_dir / "targets.json")], "refresh_interval": "1s"}]},
        ]}, tmp_path / "prometheus", runner.free_port(), {"gates.yml": yaml.safe_dump(rules, sort_keys=False)}).start()
    monkeypatch.setattr(drivers, "LocalStubDriver", lambda *a, **k: PairDriver(driver_dir, dst_server))
    journal = tmp_path / "journal.jsonl"
    load = Load(gateway.url, key).start()
    # No traffic reaches the destination before the run: at the pre-check its only samples are
    # the run's own warm-up (50 requests, 8 at once), judged on the destination's SLOs; the p99
    # ratio against the source waits for enough requests on both sides (components/migration/prom.py).
    try:
        time.sleep(8)  # the source's history under the load, before the run reads its baseline
        before = [counter_total(metrics_text(s), SUCCESS) for s in pair]
        started = time.monotonic()
        result = CliRunner().invoke(cli.app, [
            "migrate", "run", "--from", SRC, "--to", DST, "--stacks-dir", str(stacks), "--journal", str(journal),
            "--traffic", str(traffic), "--driver", "local-stubs", "--driver-dir", str(driver_dir),
            "--prometheus", prom.url, "--eval-interval", str(EVAL_S), "--gate-window", WINDOW,
            "--hold-scale", "0.003", "--data-timeout", "60", "--api-key", key], catch_exceptions=False)
        took = time.monotonic() - started
        time.sleep(1)
        after_run = [counter_total(metrics_text(s), SUCCESS) for s in pair]
        time.sleep(2)
        settled = [counter_total(metrics_text(s), SUCCESS) for s in pair]
    finally:
        results = load.finish()
        runner.stop_groups([p.pid for p in gateway.processes] + [prom.pid], 15,
                           [p.proc for p in gateway.processes] + [prom.proc])
    print(f"\n{result.output}\nrun took {took:.1f} s; {len(results)} client requests; "
          f"completions on src/dst during the run: {after_run[0] - before[0]:.0f}/{after_run[1] - before[1]:.0f}")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    assert records[-1]["event"] == "done" and records[-1]["result"] == "completed"
    assert [r["percent"] for r in records if r["event"] == "weight"] == [5, 20, 50, 100]
    finals = [r for r in records if r["event"] == "gates" and r["final"]]
    assert len(finals) == 4 and all(g["holds"] for r in finals for g in r["results"])
    values = {g["gate"]: g["value"] for g in finals[-1]["results"]}
    print(f"last gates (vLLM's histograms via Prometheus): {values}")
    assert all(v is not None for v in values.values()), values
    assert "record" in {g["read"] for r in finals for g in r["results"]}  # with a 60s window (Prometheus: 1m)
    precheck = next(r for r in records if r["event"] == "precheck")
    print(f"pre-check: {[(g['gate'], g['value'], g.get('samples'), bool(g.get('skipped'))) for g in precheck['results']]}")
    judged = [g for r in finals for g in r["results"] if g["gate"] == "ttft_p99_change" and not g.get("skipped")]
    print(f"ttft_p99_change judged at {len(judged)} of 4 final evaluations: {[g['samples'] for g in judged]}")
    assert after_run[1] - before[1] > 0 and after_run[0] - before[0] > 0
    assert settled[0] == after_run[0], "the source still receives traffic after the run completed"
    failed = [r for r in results if r["error"]]
    assert failed == [], failed[:5]

