"""`tierscale migrate run` proven live on 127.0.0.1 with real parts: the real nginx gateway
config (templates/gateway) with weighted pools, real Prometheus scraping stub vLLM replicas
(vLLM's histogram names) labelled deployment="src"/"dst", the real CLI as a subprocess
driving the stub driver, and a load generator running throughout.

(a) healthy destination: every step's observed share within 3 points of its weight, 100% on
    the destination at the end, no failed request;
(b) the destination's TTFT raised above the SLO at step 2: the gate fails, the destination's
    weight is 0 again within one evaluation interval, the run exits 1 naming the gate;
(c) the run SIGKILLed mid-step: `run --resume` continues from the journal and completes;
(d) the fallback strategy: the source's traffic goes to the fallback endpoint before the
    destination comes up, then shifts from the fallback to the destination.

The holds are the plan's 30 minutes x --hold-scale; the gates' window is 10 s, Prometheus
scrapes every second and the gates are evaluated every second.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml

from components import paths
from components.migration import gates as gate_defs
from components.serving.model_router import auth_include, router_js
from components.small.project import nginx_conf
from components.spec.stack_file import load_stack
from tests.conftest import TIERSCALE
from tests.support.processes import Nginx, Stub, free_port, wait_http

SRC, DST = "small-dev", "medium-prod"
SLO_TTFT_MS = 1000  # both test stacks; the healthy stubs answer in 300 ms (p99 bucket 0.25-0.5 s)
HEALTHY_TTFT_MS, DEGRADED_TTFT_MS = 300, 1500
EVAL_S = 1.0
WINDOW = "10s"
LLAMA = "meta-llama/Llama-3.1-8B-Instruct"
API_KEY = "migration-live-test-key"


class SrcStub(Stub):
    """The helper's stub with a listen queue like vLLM's (nginx opens many connections)."""

    def start(self) -> "SrcStub":
        env = dict(os.environ, VLLM_API_KEY="")
        self.proc = subprocess.Popen(
            [sys.executable, str(paths.REPO_ROOT / "tests/support/openai_stub.py"), "--port", str(self.port),
             "--name", self.name, "--served-model-name", self.model, "--ttft-ms", str(self.ttft_ms),
             "--itl-ms", str(self.itl_ms), "--backlog", "128"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_http(f"http://{self.address}/health")
        return self


class PrometheusProc:
    def __init__(self, config: dict, workdir: Path):
        self.port = free_port()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        self.log = open(workdir / "prometheus.log", "wb")
        self.proc = subprocess.Popen(
            [shutil.which("prometheus") or "/usr/bin/prometheus", f"--config.file={workdir / 'prometheus.yml'}",
             f"--storage.tsdb.path={workdir / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}",
             "--storage.tsdb.retention.time=1h"],
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_http(f"{self.url}/-/ready", timeout=60)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def _test_stacks(directory: Path) -> Path:
    """The example stacks, with a TTFT objective the stub latencies sit well inside."""
    directory.mkdir()
    for name in (SRC, DST):
        doc = yaml.safe_load((paths.STACKS_DIR / f"Pulumi.{name}.yaml").read_text())
        doc["config"]["tierscale:slo"]["ttftP99Ms"] = SLO_TTFT_MS
        (directory / f"Pulumi.{name}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return directory


class Load:
    """Closed-loop chat completions through the gateway, a new connection each (as nginx
    reloads, no request rides an old worker's keep-alive), bounded in time and count."""

    def __init__(self, url: str, concurrency: int = 16, max_s: float = 170, max_requests: int = 40000):
        self.url, self.concurrency, self.max_s, self.max_requests = url, concurrency, max_s, max_requests
        self.results: list[dict] = []
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        deadline = time.monotonic() + self.max_s
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=self.url, timeout=30, limits=limits,
                                     headers={"Authorization": f"Bearer {API_KEY}"}) as client:
            async def worker():
                while not self.stop_event.is_set() and time.monotonic() < deadline and len(self.results) < self.max_requests:
                    start = time.time()
                    result = {"start": start, "error": None, "served_by": None}
                    try:
                        reply = await client.post("/v1/chat/completions", json={
                            "model": LLAMA, "max_tokens": 4, "messages": [{"role": "user", "content": "hello"}]})
                        if reply.status_code == 200:
                            result["served_by"] = reply.json()["served_by"]
                        else:
                            result["error"] = f"HTTP {reply.status_code}: {reply.text[:200]}"
                    except httpx.HTTPError as e:
                        result["error"] = repr(e)
                    result["end"] = time.time()
                    self.results.append(result)
            await asyncio.gather(*(worker() for _ in range(self.concurrency)))

    def start(self) -> "Load":
        self.thread.start()
        return self

    def stop(self) -> list[dict]:
        self.stop_event.set()
        self.thread.join(timeout=60)
        return self.results


class Rig:
    """Everything one case runs: stubs, nginx, Prometheus, the stub driver's directory, load."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.stacks = _test_stacks(tmp / "stacks")
        src = load_stack(SRC, self.stacks)
        served = {m.name: m.served_model_name for m in src.models}
        self.src_stubs = [SrcStub(f"src-llama-{i}", free_port(), ttft_ms=HEALTHY_TTFT_MS, itl_ms=2, model=served["llama-8b"]).start()
                          for i in range(2)]
        self.qwen = SrcStub("src-qwen-0", free_port(), ttft_ms=HEALTHY_TTFT_MS, itl_ms=2, model=served["qwen-14b"]).start()
        self.source_servers = {"llama-8b": [s.address for s in self.src_stubs], "qwen-14b": [self.qwen.address]}
        # The fallback endpoint (a small model or an external API) for --strategy fallback.
        self.fallback = SrcStub("fallback-0", free_port(), ttft_ms=HEALTHY_TTFT_MS, itl_ms=2, model=served["llama-8b"]).start()
        port, self.status_port = free_port(), free_port()
        gw = tmp / "gateway"
        gw.mkdir()
        (gw / "model_router.js").write_text(router_js())
        # The gateway authenticates every request (docs/security.md): its key file, as the small
        # tier writes it, and the load sends that key.
        (gw / "api-keys.conf").write_text(auth_include([API_KEY]))
        self.render = {"listen": f"127.0.0.1:{port}", "status_listen": f"127.0.0.1:{self.status_port}",
                       "runtime_dir": str(gw), "log_dir": str(gw / "logs"), "temp_dir": str(gw / "tmp"),
                       "js_path": str(gw / "model_router.js"), "auth_file": str(gw / "api-keys.conf"),
                       "health_file": None}
        # nginx starts on the small tier's own config, exactly as `tierscale render` writes it.
        self.nginx = Nginx(nginx_conf(src, SRC, self.source_servers, **self.render), gw).start()
        wait_http(f"http://127.0.0.1:{self.status_port}/gateway/health")
        self.url = f"http://127.0.0.1:{port}"
        self.driver_dir = tmp / "driver"
        self.driver_dir.mkdir()
        (self.driver_dir / "driver.json").write_text(json.dumps(
            {"replicas": 2, "ttft_ms": HEALTHY_TTFT_MS, "itl_ms": 2, "labels": {"deployment": "dst"}}))
        (self.driver_dir / "targets.json").write_text("[]")
        dst = load_stack(DST, self.stacks)
        rules = gate_defs.recording_rules(gate_defs.gates('{deployment="dst"}', '{deployment="src"}',
                                                          dst.spec.slo.ttft_p99_ms, dst.spec.slo.tpot_p99_ms, WINDOW))
        (tmp / "gates.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
        self.prometheus = PrometheusProc({
            "global": {"scrape_interval": "1s", "scrape_timeout": "900ms", "evaluation_interval": "1s"},
            "rule_files": [str(tmp / "gates.yml")],
            "scrape_configs": [
                {"job_name": "src", "static_configs": [{"targets": [s.address for s in self.src_stubs],
                                                         "labels": {"deployment": "src", "model": "llama-8b"}}]},
                {"job_name": "dst", "file_sd_configs": [{"files": [str(self.driver_dir / "targets.json")],
                                                          "refresh_interval": "1s"}]},
            ]}, tmp / "prometheus")
        self.traffic = tmp / "traffic.yaml"
        self.traffic.write_text(yaml.safe_dump({
            "kind": "nginx", "conf": str(gw / "nginx.conf"),
            "status_url": f"http://127.0.0.1:{self.status_port}/gateway/traffic",
            "render": self.render, "source_servers": self.source_servers,
            "fallback_servers": {"llama-8b": [self.fallback.address]}}, sort_keys=False))
        self.journal = tmp / "journal.jsonl"
        self.procs: list[subprocess.Popen] = []
        self.spreads: list[float] = []
        self.load: Load | None = None

    def run_cli(self, *extra: str, hold_scale: float) -> subprocess.Popen:
        log = open(self.tmp / f"run-{len(self.procs)}.log", "w")
        proc = subprocess.Popen(
            [TIERSCALE, "migrate", "run", "--from", SRC, "--to", DST, "--stacks-dir", str(self.stacks),
             "--accept", "removed-model",  # qwen-14b stays on the source (the plan warns)
             "--journal", str(self.journal), "--traffic", str(self.traffic), "--driver", "local-stubs",
             "--driver-dir", str(self.driver_dir), "--prometheus", self.prometheus.url,
             "--eval-interval", str(EVAL_S), "--gate-window", WINDOW, "--hold-scale", str(hold_scale),
             "--data-timeout", "60", *extra],
            stdout=log, stderr=subprocess.STDOUT, cwd=paths.REPO_ROOT, env=dict(os.environ, COLUMNS="200"))
        proc.log_path = log.name  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def output(self, proc) -> str:
        return Path(proc.log_path).read_text()

    def dst_stubs(self) -> list[dict]:
        state = json.loads((self.driver_dir / f"{DST}.json").read_text())
        return [r for r in state["replicas"] if r["model"] == "llama-8b"]

    def counts(self) -> dict[str, int]:
        """Requests each llama replica has received (its own counter), read in parallel so
        the snapshot is one instant (its spread is kept in `self.spreads`)."""
        urls = {s.name: f"http://{s.address}" for s in [*self.src_stubs, self.fallback]}
        if (self.driver_dir / f"{DST}.json").exists():
            urls.update({r["name"]: r["url"] for r in self.dst_stubs()})
        start = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(len(urls)) as pool:
            values = pool.map(lambda u: httpx.get(f"{u}/stub/stats", timeout=5).json()["requests"], urls.values())
            out = dict(zip(urls, values))
        self.spreads.append(time.monotonic() - start)
        return out

    def records(self) -> list[dict]:
        if not self.journal.exists():
            return []
        out = []
        for line in self.journal.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                break
        return out

    def close(self) -> None:
        if self.load:
            self.load.stop()
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        state_file = self.driver_dir / f"{DST}.json"
        if state_file.exists():
            for r in json.loads(state_file.read_text())["replicas"]:
                try:
                    os.kill(r["pid"], signal.SIGKILL)
                except OSError:
                    pass
        self.nginx.stop()
        self.prometheus.stop()
        for s in [*self.src_stubs, self.qwen, self.fallback]:
            s.kill()


class Watcher:
    """Follows the journal; snapshots the replicas' counters at each step boundary and runs
    a case's action when an event shows up."""

    def __init__(self, rig: Rig, on_event=None):
        self.rig, self.on_event = rig, on_event
        self.snapshots: list[tuple[dict, dict]] = []  # (record, counts right after it)
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        seen = 0
        while not self.stop_event.is_set():
            records = self.rig.records()
            for record in records[seen:]:
                if record["event"] in ("weight", "step_done", "rollback", "done", "baseline", "fallback", "up", "precheck"):
                    self.snapshots.append((record, self.rig.counts()))
                if self.on_event:
                    self.on_event(record)
            seen = len(records)
            time.sleep(0.03)

    def start(self) -> "Watcher":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=10)

    def step_shares(self) -> list[tuple[int, float, int]]:
        """(weight, observed destination share in %, requests) for every completed hold."""
        out = []
        dst_names = {r["name"] for r in self.rig.dst_stubs()}
        opened = None
        for record, counts in self.snapshots:
            if record["event"] == "weight":
                opened = (record, counts)
            elif record["event"] == "step_done" and opened:
                before = opened[1]
                delta = {k: v - before.get(k, 0) for k, v in counts.items()}
                total = sum(delta.values())
                dst = sum(v for k, v in delta.items() if k in dst_names)
                out.append((opened[0]["percent"], 100 * dst / total if total else float("nan"), total))
                opened = None
        return out


@pytest.fixture
def rig(tmp_path):
    r = Rig(tmp_path)
    yield r
    r.close()


def _wait(proc, timeout: float) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


def test_healthy_destination_takes_all_traffic_in_gated_steps(rig):
    rig.load = Load(rig.url).start()
    watcher = Watcher(rig).start()
    started = time.monotonic()
    proc = rig.run_cli(hold_scale=0.003)  # 30 min holds -> 5.4 s
    code = _wait(proc, 150)
    watcher.stop()
    time.sleep(1)
    after = rig.counts()
    time.sleep(1.5)
    settled = rig.counts()
    results = rig.load.stop()
    output = rig.output(proc)
    print(f"\n{output}")
    assert code == 0, output
    shares = watcher.step_shares()
    print(f"run took {time.monotonic() - started:.1f}s; {len(results)} requests; counter snapshots took "
          f"at most {max(rig.spreads) * 1000:.0f} ms")
    for weight, share, total in shares:
        print(f"weight {weight:3d}%: observed {share:5.1f}% of {total} requests on the destination")
    assert [w for w, _, _ in shares] == [5, 20, 50, 100]
    for weight, share, total in shares:
        assert total >= 100, f"too little traffic at {weight}% to measure a share"
        assert abs(share - weight) <= 3, f"weight {weight}%: observed {share:.1f}%"
    failed = [r for r in results if r["error"]]
    assert failed == [], failed[:5]
    # After the run the source gets nothing: every request lands on the destination's pool.
    src_names = {s.name for s in rig.src_stubs}
    assert all(settled[n] == after[n] for n in src_names), (after, settled)
    records = rig.records()
    assert records[-1]["event"] == "done" and records[-1]["result"] == "completed"
    warmups = [r for r in records if r["event"] == "warmup"]
    assert warmups and all(r["requests"] == 50 and r["failed"] == 0 for r in warmups)
    finals = [r for r in records if r["event"] == "gates" and r["final"]]
    assert len(finals) == 4 and all(g["holds"] for r in finals for g in r["results"])
    reads = {g["read"] for r in finals for g in r["results"]}
    print(f"gates read as: {sorted(reads)}")
    assert "record" in reads  # Prometheus had the recording rules loaded


def test_degraded_destination_rolls_back_within_one_interval(rig):
    degraded_at: list[float] = []

    def degrade(record):
        if record["event"] == "weight" and record["step"] == 1 and not degraded_at:
            for r in rig.dst_stubs():
                httpx.post(f"{r['url']}/stub/control", json={"ttft_ms": DEGRADED_TTFT_MS}, timeout=5)
            degraded_at.append(time.time())

    rig.load = Load(rig.url).start()
    watcher = Watcher(rig, degrade).start()
    proc = rig.run_cli(hold_scale=0.005)  # 9 s holds: room to see the regression mid-hold
    code = _wait(proc, 150)
    watcher.stop()
    rollback_seen = rig.counts()
    time.sleep(3)
    later = rig.counts()
    results = rig.load.stop()
    output = rig.output(proc)
    print(f"\n{output}")
    assert code == 1, output
    records = rig.records()
    rollback = next(r for r in records if r["event"] == "rollback")
    assert rollback["step"] == 1 and rollback["percent"] == 20
    assert rollback["gate"] in ("ttft_p99_seconds", "ttft_p99_change")
    assert rollback["value"] > rollback["threshold"]
    assert f"gate {rollback['gate']} = " in output and "ROLLED BACK" in output
    assert records[-1] == {**records[-1], "event": "done", "result": "rolled_back"}
    # Within one evaluation interval of the failed evaluation the weight is 0 (read back from
    # the reloaded nginx: the journal's rollback_verified record), and nginx sends the
    # destination nothing after that.
    verified = next(r for r in records if r["event"] == "rollback_verified")
    assert verified["read_back"] == 0 and verified["latency_s"] < EVAL_S
    dst_addrs = {r["url"].removeprefix("http://") for r in rig.dst_stubs()}
    last_dst_start = 0.0
    for line in rig.nginx.access_log():
        upstream = line.split("upstream=", 1)[1].split(" ", 1)[0]
        if any(a in upstream for a in dst_addrs):
            msec = float(line.rsplit("msec=", 1)[1])
            rt = float(line.split(" rt=", 1)[1].split(" ", 1)[0])
            last_dst_start = max(last_dst_start, msec - rt)
    detect = rollback["evaluated_at"]
    print(f"TTFT raised at {degraded_at[0]:.2f}; gate {rollback['gate']} failed at {detect:.2f} "
          f"({detect - degraded_at[0]:.2f} s later, value {rollback['value']:.3f} > {rollback['threshold']}); "
          f"weight 0 in force {verified['zero_at'] - detect:.3f} s after the failed evaluation; "
          f"last request sent to the destination {last_dst_start - detect:+.3f} s from it")
    assert last_dst_start - detect <= EVAL_S
    dst_names = {r["name"] for r in rig.dst_stubs()}
    assert all(later[n] == rollback_seen[n] for n in dst_names), (rollback_seen, later)
    failed = [r for r in results if r["error"]]
    assert failed == [], failed[:5]


def test_killed_run_resumes_from_the_journal(rig):
    killed: list[dict] = []
    rig.load = Load(rig.url).start()
    proc = rig.run_cli(hold_scale=0.003)

    def kill_mid_step(record):
        if record["event"] == "gates" and record["step"] == 1 and not killed:
            proc.send_signal(signal.SIGKILL)  # no handler runs: the journal is all there is
            killed.append(record)

    watcher = Watcher(rig, kill_mid_step).start()
    code = _wait(proc, 150)
    assert code == -signal.SIGKILL and killed, rig.output(proc)
    before = rig.records()
    assert before[-1]["event"] == "gates" and before[-1]["step"] == 1
    time.sleep(1)
    resumed = rig.run_cli("--resume", hold_scale=0.003)
    code = _wait(resumed, 150)
    watcher.stop()
    results = rig.load.stop()
    output = rig.output(resumed)
    print(f"\n{output}")
    assert code == 0, output
    assert "resuming from" in output and "steps done [0]" in output
    after = rig.records()[len(before):]
    assert [r["event"] for r in after if r["event"] in ("up", "warmup", "baseline", "precheck")] == ["up"]  # not redone
    assert [(r["step"], r["percent"]) for r in after if r["event"] == "weight"] == [(1, 20), (2, 50), (3, 100)]
    assert after[-1]["event"] == "done" and after[-1]["result"] == "completed"
    failed = [r for r in results if r["error"]]
    assert failed == [], failed[:5]
    shares = watcher.step_shares()
    print("shares: " + ", ".join(f"{w}% -> {s:.1f}% ({n})" for w, s, n in shares))
    for weight, share, total in shares:
        assert abs(share - weight) <= 3


def test_fallback_strategy_serves_from_the_fallback_while_the_destination_comes_up(rig):
    rig.load = Load(rig.url).start()
    watcher = Watcher(rig).start()
    proc = rig.run_cli("--strategy", "fallback", hold_scale=0.002)  # 3.6 s holds
    code = _wait(proc, 150)
    watcher.stop()
    results = rig.load.stop()
    output = rig.output(proc)
    print(f"\n{output}")
    assert code == 0, output
    events = [r["event"] for r in rig.records()]
    assert events.index("baseline") < events.index("fallback") < events.index("up") < events.index("precheck") < events.index("weight")
    snaps = {record["event"]: counts for record, counts in watcher.snapshots if record["event"] in ("up", "precheck")}
    src_names = [s.name for s in rig.src_stubs]
    # From the fallback switch on, the source replicas get nothing: the fallback carries it all
    # while the destination comes up and warms.
    assert all(snaps["precheck"][n] == snaps["up"][n] for n in src_names), snaps
    assert snaps["precheck"]["fallback-0"] - snaps["up"]["fallback-0"] > 20, snaps
    shares = watcher.step_shares()
    print("destination shares (the rest on the fallback): " + ", ".join(f"{w}% -> {sh:.1f}% ({n})" for w, sh, n in shares))
    assert [w for w, _, _ in shares] == [5, 20, 50, 100]
    for weight, share, total in shares:
        assert abs(share - weight) <= 3 + 100 / total, (weight, share, total)  # short holds: one request's worth more
    final = watcher.snapshots[-1][1]
    first = next(c for r, c in watcher.snapshots if r["event"] == "weight")
    assert all(final[n] == first[n] for n in src_names)  # the source stayed out throughout
    failed = [r for r in results if r["error"]]
    assert failed == [], failed[:5]
