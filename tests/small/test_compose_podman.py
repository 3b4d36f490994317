"""The rendered small-dev Compose project, run for real with podman + podman-compose.

An override file swaps only `image:` for local stand-ins (stub vLLM, Debian's nginx and
Prometheus and exporters; see tests/support/standin_images.py): the rendered compose.yaml,
nginx.conf, prometheus.yml, alert rules and DCGM counters run unchanged. GPU reservations go
through podman-compose's CDI mapping to a test CDI spec, so each container's GPUs are visible.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from components.render import render_stack
from components.serving import model_router
from components.small.project import GATEWAY_AUTH
from tests.support.standin_images import build_standins, cdi_spec, podman, podman_env

API_KEY = "podman-test-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
CDI_FILE = Path("/var/run/cdi/tierscale-test-gpus.yaml")
PODMAN_COMPOSE = str(Path(sys.executable).parent / "podman-compose")
# The project's name, host ports (8000, 9090, 3000) and CDI file are machine-wide: a second
# pytest on this machine (another checkout, `make test` beside a single-file run) would share
# the containers (each run counts the other's requests) and tear them down under the other
# run. Runs on one machine take turns (xdist groups only order workers within one pytest).
LOCK_FILE = Path("/run/lock/tierscale-compose-podman.lock")
LOCK_WAIT_S = 900


@contextlib.contextmanager
def _machine_lock():
    LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK_FILE, "w") as lock:
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"another run held {LOCK_FILE} for {LOCK_WAIT_S}s")
                time.sleep(2)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _standin_for(service: str, standins: dict[str, str]) -> str:
    if service.startswith("vllm-"):
        return standins["vllm"]
    return standins[{"gateway": "nginx", "gateway-prober": "nginx"}.get(service, service.replace("-", "_"))]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    with _machine_lock():
        yield from _project(tmp_path_factory)


def _project(tmp_path_factory):
    work = tmp_path_factory.mktemp("podman")
    env = podman_env(work)
    standins = build_standins(env)
    CDI_FILE.parent.mkdir(parents=True, exist_ok=True)
    CDI_FILE.write_text(cdi_spec(8))
    result = render_stack("small-dev", work / "render")
    proj = work / "project"
    shutil.copytree(result.out_dir / "compose", proj)
    # What the Pulumi component writes on the host (mode 0600), with test values.
    (proj / "secrets.env").write_text(f"VLLM_API_KEY={API_KEY}\n")
    (proj / "grafana.env").write_text("GF_SECURITY_ADMIN_PASSWORD=test\n")
    (proj / GATEWAY_AUTH).write_text(model_router.auth_include([API_KEY]))
    for f in ("secrets.env", "grafana.env", GATEWAY_AUTH):
        (proj / f).chmod(0o600)
    compose = yaml.safe_load((proj / "compose.yaml").read_text())
    override = {"services": {name: {"image": _standin_for(name, standins)} for name in compose["services"]}}
    (proj / "override.yaml").write_text(yaml.safe_dump(override))
    cmd = [PODMAN_COMPOSE, "-f", "compose.yaml", "-f", "override.yaml"]
    try:
        up = subprocess.run([*cmd, "up", "-d"], cwd=proj, env=env, capture_output=True, text=True, timeout=600)
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        yield {"dir": proj, "env": env, "compose": compose, "name": compose["name"]}
    finally:
        subprocess.run([*cmd, "down", "-v"], cwd=proj, env=env, capture_output=True, text=True, timeout=300)
        CDI_FILE.unlink(missing_ok=True)


def _container(project, service: str) -> str:
    return f"{project['name']}_{service}_1"


def _exec(project, service: str, script: str) -> str:
    return podman("exec", _container(project, service), "python3", "-c", script, env=project["env"]).stdout


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except (httpx.HTTPError, json.JSONDecodeError, KeyError) as e:
            last = e
        time.sleep(1)
    raise AssertionError(f"{what} not reached in {timeout}s (last: {last})")


def test_every_service_is_running_and_healthchecks_pass(project):
    states = {service: podman("inspect", "--format", "{{.State.Status}}", _container(project, service),
                              env=project["env"]).stdout.strip()
              for service in project["compose"]["services"]}
    assert set(states.values()) == {"running"}, states
    # podman runs healthchecks from systemd timers; without systemd, run each one directly.
    for service, spec in project["compose"]["services"].items():
        if "healthcheck" in spec:
            hc = podman("healthcheck", "run", _container(project, service), env=project["env"], check=False)
            assert hc.returncode == 0, f"{service}: {hc.stdout}{hc.stderr}"


def test_replicas_get_their_own_gpus(project):
    seen = {}
    for service, spec in project["compose"]["services"].items():
        if not service.startswith("vllm-"):
            continue
        environ = _exec(project, service, "print(open('/proc/1/environ').read().replace('\\0', '\\n'))")
        gpus = sorted(line.split("=")[0].rsplit("_", 1)[1] for line in environ.splitlines() if line.startswith("TIERSCALE_TEST_GPU_"))
        assert gpus == spec["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"]
        seen[service] = gpus
    all_ids = [g for ids in seen.values() for g in ids]
    assert len(all_ids) == len(set(all_ids)) == 4


def test_requests_through_the_gateway_reach_every_replica(project):
    base = "http://127.0.0.1:8000"
    _wait(lambda: httpx.get(f"{base}/v1/models", headers=AUTH, timeout=2).status_code == 200, 60, "gateway answering")
    assert httpx.get(f"{base}/v1/models", timeout=5).status_code == 401  # API key enforced
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    with httpx.Client(timeout=30) as client:
        for _ in range(20):
            assert client.post(f"{base}/v1/chat/completions", json=body, headers=AUTH).status_code == 200
            qwen = {**body, "model": "Qwen/Qwen2.5-14B-Instruct-AWQ"}
            assert client.post(f"{base}/v1/chat/completions", json=qwen, headers=AUTH).status_code == 200
    stats_script = "import urllib.request as u; print(u.urlopen('http://127.0.0.1:8000/stub/stats').read().decode())"
    served = {s: json.loads(_exec(project, s, stats_script))["requests"]
              for s in project["compose"]["services"] if s.startswith("vllm-")}
    print(f"\nrequests per replica: {served}")
    assert all(n > 0 for n in served.values()), served
    assert served["vllm-llama-8b-0"] + served["vllm-llama-8b-1"] == 20
    assert served["vllm-qwen-14b-0"] + served["vllm-qwen-14b-1"] == 20


def test_prometheus_scrapes_every_target_and_loads_every_rule(project):
    prom = "http://127.0.0.1:9090"
    scrape = project["compose"]["services"]

    def all_up():
        targets = httpx.get(f"{prom}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
        return targets if targets and all(t["health"] == "up" for t in targets) else None

    targets = _wait(all_up, 90, "every target up")
    jobs = sorted({t["labels"]["job"] for t in targets})
    print(f"\ntargets up: {[(t['labels']['job'], t['labels']['instance']) for t in targets]}")
    assert jobs == ["dcgm", "nginx", "node", "vllm"]
    assert len([t for t in targets if t["labels"]["job"] == "vllm"]) == len([s for s in scrape if s.startswith("vllm-")])
    rules = httpx.get(f"{prom}/api/v1/rules", timeout=5).json()["data"]["groups"]
    names = {r["name"] for g in rules for r in g["rules"]}
    from components.observability.alerts import alert_rules
    from components.spec.model import SloSpec
    assert names == {r.alert for r in alert_rules(SloSpec())}
    assert all(r["health"] == "ok" for g in rules for r in g["rules"])
    # The DCGM stand-in serves exactly the rendered collector list, and Prometheus has it.
    series = httpx.get(f"{prom}/api/v1/series", params={"match[]": '{job="dcgm"}'}, timeout=5).json()["data"]
    assert {"DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_XID_ERRORS"} <= {s["__name__"] for s in series}
