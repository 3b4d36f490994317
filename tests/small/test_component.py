"""`tierscale:small:SmallTier` under Pulumi's mocks: the resource graph, what each command
copies, triggers that change only with content, secrets kept secret."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import yaml

from components.render import render_stack

PLANTED = {"tierscale:apiKey": "sk-PLANTED-small-1", "tierscale:hfToken": "hf_PLANTEDsmall2"}


@pytest.fixture(scope="module")
def small_dev(tmp_path_factory):
    return render_stack("small-dev", tmp_path_factory.mktemp("r") / "small-dev",
                        extra_config=PLANTED, extra_secret_keys=set(PLANTED))


def _commands(result):
    return {r.name: r for r in result.resources if r.type == "command:local:Command"}


def test_graph_counts_and_parenting(small_dev):
    counts = Counter(r.type for r in small_dev.resources)
    # 11 rendered files + secrets.env + grafana.env + the gateway's key file + compose up + the
    # gateway reload on a new key; one generated Grafana password.
    assert counts == {"tierscale:small:SmallTier": 1, "command:local:Command": 16,
                      "random:index/randomPassword:RandomPassword": 1}
    root = next(r for r in small_dev.resources if r.type == "tierscale:small:SmallTier")
    assert all(r.parent == root.urn for r in small_dev.resources if r is not root)


def test_every_rendered_file_is_copied_by_a_command(small_dev):
    commands = _commands(small_dev)
    rendered = {p.relative_to(small_dev.out_dir / "compose").as_posix(): p.read_text()
                for p in (small_dev.out_dir / "compose").rglob("*") if p.is_file()}
    assert set(rendered) == {
        "compose.yaml", "nginx/nginx.conf", "nginx/model_router.js", "nginx/health_prober.sh", "nginx/probe-targets",
        "prometheus/prometheus.yml",
        "prometheus/rules/tierscale-alerts.yml",
        "dcgm/counters.csv", "grafana/provisioning/datasources/prometheus.yml",
        "grafana/provisioning/dashboards/tierscale.yml", "grafana/dashboards/tierscale-serving.json",
    }
    copied = {}
    for cmd in commands.values():
        create = cmd.inputs["create"]
        if "cat >" in create or "install" in create or "tee" in create:
            copied[create] = cmd.inputs.get("stdin")
    for rel, content in rendered.items():
        path = f"/opt/tierscale/small-dev/{rel}"
        match = [stdin for create, stdin in copied.items() if path in create]
        assert match == [content], f"{rel} is not written with its rendered content"


def test_compose_up_waits_for_every_file_and_tears_down(small_dev):
    commands = _commands(small_dev)
    up = commands["small-dev-compose-up"]
    assert "docker compose -p tierscale-small-dev" in up.inputs["create"]
    assert "up -d --wait --remove-orphans" in up.inputs["create"] and up.inputs["delete"].endswith("down")
    writers = [r for n, r in commands.items() if n not in ("small-dev-compose-up", "small-dev-gateway-auth-reload")]
    assert set(up.dependencies) >= {w.urn for w in writers}


def test_secret_files_are_0600_and_masked(small_dev):
    commands = _commands(small_dev)
    for name in ("small-dev-secrets-env", "small-dev-grafana-env", "small-dev-gateway-auth"):
        assert commands[name].inputs["stdin"] == "[secret]"
        assert "0600" in commands[name].inputs["create"]
    text = json.dumps([r.to_json() for r in small_dev.resources]) + json.dumps(small_dev.outputs)
    for secret in PLANTED.values():
        assert secret not in text
    for path in small_dev.out_dir.rglob("*"):
        if path.is_file():
            assert not any(s in path.read_text() for s in PLANTED.values()), path
    assert small_dev.outputs["grafanaAdminPassword"] == "[secret]"


def _triggers(tmp_path, name, **config):
    result = render_stack("small-dev", tmp_path / name, extra_config=config)
    return {n: json.dumps(c.inputs.get("triggers")) for n, c in _commands(result).items()}


def test_triggers_change_only_with_content(tmp_path):
    base = _triggers(tmp_path, "a")
    assert base == _triggers(tmp_path, "b"), "identical config must not re-run any command"
    # A different read timeout changes nginx.conf (and LiteLLM-free compose stays the same).
    changed = _triggers(tmp_path, "c", **{"tierscale:gateway": json.dumps({"kind": "nginx", "port": 8000, "readTimeoutS": 900})})
    differs = {n for n in base if base[n] != changed[n]}
    assert differs == {"small-dev-file-nginx-nginx-conf", "small-dev-compose-up"}


def test_ssh_target_uses_remote_commands_with_secret_key(tmp_path):
    target = {"kind": "docker-host", "host": "gpu-box.internal", "deployDir": "/srv/tierscale", "ssh": {"user": "deploy"}}
    result = render_stack("small-dev", tmp_path, extra_config={
        "tierscale:target": json.dumps(target), "tierscale:sshPrivateKey": "-----BEGIN PLANTED KEY-----"},
        extra_secret_keys={"tierscale:sshPrivateKey"})
    remote = [r for r in result.resources if r.type == "command:remote:Command"]
    assert len(remote) == 16 and not [r for r in result.resources if r.type == "command:local:Command"]
    for r in remote:
        # The connection carries the private key, so Pulumi keeps the whole object secret.
        assert r.inputs["connection"] == "[secret]"
        assert "/srv/tierscale" in r.inputs["create"]
    assert "PLANTED KEY" not in (tmp_path / "resources.json").read_text()
    assert result.outputs["endpoint"] == "http://gpu-box.internal:8000/v1"


def test_replicas_get_disjoint_gpus_and_sized_healthchecks(small_dev):
    compose = yaml.safe_load((small_dev.out_dir / "compose/compose.yaml").read_text())
    vllm = {k: v for k, v in compose["services"].items() if k.startswith("vllm-")}
    assert len(vllm) == 4  # 2 models x 2 replicas
    devices = [d for s in vllm.values() for d in s["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"]]
    assert sorted(devices) == ["0", "1", "2", "3"], "replicas must not share GPUs"
    budgets = {m.name: m.startup_budget_s for m in small_dev.stack.models}
    for name, svc in vllm.items():
        model = "llama-8b" if "llama" in name else "qwen-14b"
        assert svc["healthcheck"]["start_period"] == f"{budgets[model]}s"
        assert svc["image"].startswith("vllm/vllm-openai:v") and ":latest" not in svc["image"]
        assert svc["env_file"] == ["secrets.env"] and svc["ipc"] == "host"
        assert svc["logging"]["options"]["max-file"] == "5"
        assert "--api-key" not in svc["command"], "the key reaches vLLM as VLLM_API_KEY, never argv"
    assert small_dev.outputs["endpoint"] == "http://localhost:8000/v1"
