"""components/local (`tierscale up --local`) without starting vLLM: the replica arguments are the
rendered ones with only the CPU changes, Prometheus keeps the vllm job on the local targets, the
KV-cache cap is checked, and stopping leaves no process of a group behind (also one that
ignores SIGTERM)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from components.local import runner
from components.serving.vllm_args import vllm_serve_args
from components.spec.stack_file import load_stack
from tests.conftest import run_cli


def test_replica_args_are_the_rendered_ones_with_only_the_cpu_changes():
    stack = load_stack("medium-prod")
    model = next(m for m in stack.models if m.tensor_parallel > 1)
    args, dropped = runner.replica_args(model, 4321, "/models/tiny")
    rendered = vllm_serve_args(model, 4321)
    assert args[0] == "/models/tiny"
    assert args[args.index("--host") + 1] == "127.0.0.1"
    assert dropped == ["--tensor-parallel-size", str(model.tensor_parallel)]
    expected = list(rendered)
    expected[0] = "/models/tiny"
    expected[expected.index("--host") + 1] = "127.0.0.1"
    for flag in ("--tensor-parallel-size", "--pipeline-parallel-size"):
        at = expected.index(flag)
        del expected[at:at + 2]
    expected += ["--kv-cache-memory-bytes", str(runner.DEFAULT_KV_CACHE_BYTES), "--enforce-eager"]
    assert args == expected  # everything else exactly as rendered, in order


def test_local_demo_stack_plans_two_cpu_replicas_behind_the_rendered_gateway_and_prometheus(tmp_path):
    local = runner.LocalStack("local-demo", workdir=tmp_path / "w", api_key="k" * 32, say=lambda _: None)
    stack = local.stack
    servers = {"qwen-0-5b": ["127.0.0.1:1", "127.0.0.1:2"]}
    config = runner.prometheus_config(stack, "local-demo", servers)
    assert [job["job_name"] for job in config["scrape_configs"]] == ["vllm"]
    assert config["scrape_configs"][0]["static_configs"][0]["targets"] == servers["qwen-0-5b"]
    gw = runner.Gateway(stack, "local-demo", servers, tmp_path / "gw", ["k" * 32], runner.free_port(), prober=True)
    gw.check()  # nginx -t on the rendered config with the local paths
    assert oct((tmp_path / "gw" / "api-keys.conf").stat().st_mode & 0o777) == "0o600"
    assert "k" * 32 not in (tmp_path / "gw" / "api-keys.conf").read_text()  # digests only


def test_kv_cache_cap_below_one_max_length_request_is_refused(tmp_path):
    local = runner.LocalStack("local-demo", workdir=tmp_path / "w", kv_cache_bytes=1024 * 1024, model_source="hf",
                              api_key="k", say=lambda _: None)
    with pytest.raises(runner.LocalError, match="KV cache"):
        local._plan()


def test_stop_groups_leaves_nothing_behind_even_a_child_that_ignores_sigterm(tmp_path):
    # A leader that exits on SIGTERM and a child in its group that ignores it (as a stuck engine would).
    proc = runner.Process("p", [sys.executable, "-c",
                                "import subprocess,signal,sys,time\n"
                                "subprocess.Popen([sys.executable,'-c','import signal,time;"
                                "signal.signal(signal.SIGTERM,signal.SIG_IGN);time.sleep(300)'])\n"
                                "time.sleep(300)"], tmp_path / "p.log").start()
    time.sleep(1.0)
    assert runner.group_alive(proc.pid)
    killed = runner.stop_groups([proc.pid], 2, [proc.proc])
    assert killed == [proc.pid]  # the child outlived SIGTERM: SIGKILL to the group
    assert not runner.group_alive(proc.pid)
    assert subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True).returncode == 1


def test_up_and_down_need_local():
    assert run_cli("up").returncode == 2
    assert run_cli("down").returncode == 2
