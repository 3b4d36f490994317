"""site.yml on real Debian 12 hosts: the preflight refuses missing GPUs before any change, the
roles converge on their no-GPU path, a second run changes nothing, verify.yml passes and fails
when it should, and testinfra checks what the roles left on the hosts.

Tests run in order against one pair of hosts (they build on each other's state).
"""

from __future__ import annotations

import pytest

from tests.baremetal.conftest import API_KEY

pytestmark = pytest.mark.filterwarnings("ignore")


def _ssh(lab, host, cmd):
    return lab.testinfra(host).run(cmd)


def test_preflight_refuses_hosts_without_the_expected_gpus(lab):
    run = lab.playbook("site.yml")
    assert run.rc != 0
    assert "has 0 NVIDIA GPU(s) on its PCI bus but the inventory expects 1" in run.output
    assert "set preflight_require_gpu=false" in run.output
    recap = run.recap()
    assert recap and all(r["changed"] == 0 and r["failed"] == 1 for r in recap.values()), recap
    for host in lab.hosts:
        # Nothing was changed: no package, no config, no service.
        assert _ssh(lab, host, "dpkg -s rdma-core").rc != 0
        assert _ssh(lab, host, "test -e /etc/nccl.conf").rc != 0
        assert _ssh(lab, host, "test -e /etc/systemd/system/vllm-llama-8b.service").rc != 0


def test_preflight_refuses_an_unsupported_os(lab):
    # Pretend only Ubuntu is supported: the Debian host must be stopped before any change.
    lab.set_host_vars("node-a", {"preflight_supported_os": [{"distribution": "Ubuntu", "version": "24.04"}],
                                 "gpu_validation_expected_gpus": 0, "preflight_require_gpu": False})
    try:
        run = lab.playbook("site.yml", "--limit", "node-a")
        assert run.rc != 0
        assert "node-a runs Debian 12" in run.output and "supported: Ubuntu 24.04" in run.output
        assert run.recap()["node-a"]["changed"] == 0
        assert _ssh(lab, lab.hosts[0], "dpkg -s rdma-core").rc != 0
    finally:
        lab.set_host_vars("node-a", {})


def test_site_converges_on_the_no_gpu_path(lab):
    for host in lab.hosts:
        lab.set_host_vars(host.name, {"gpu_validation_expected_gpus": 0, "preflight_require_gpu": False})
    run = lab.playbook("site.yml")
    assert run.rc == 0, run.output[-4000:]
    recap = run.recap()
    assert set(recap) == {"node-a", "node-b"}
    print(f"\nfirst converge: {recap}")
    assert all(r["failed"] == 0 and r["unreachable"] == 0 and r["changed"] > 0 for r in recap.values()), recap
    assert "no NVIDIA GPU found; nothing to install" in run.output


def test_second_run_changes_nothing(lab):
    run = lab.playbook("site.yml")
    assert run.rc == 0, run.output[-3000:]
    recap = run.recap()
    print(f"\nsecond converge: {recap}")
    assert all(r["changed"] == 0 and r["failed"] == 0 for r in recap.values()), recap


def test_check_mode_reports_no_changes(lab):
    run = lab.playbook("site.yml", "--check")
    assert run.rc == 0, run.output[-3000:]
    assert all(r["changed"] == 0 for r in run.recap().values())


def test_verify_passes(lab):
    run = lab.playbook("verify.yml")
    assert run.rc == 0, run.output[-3000:]
    assert "0 GPU(s) as expected" in run.output
    assert "no XID errors in the kernel log" in run.output


def test_verify_fails_on_a_gpu_count_mismatch(lab):
    lab.set_host_vars("node-a", {"gpu_validation_expected_gpus": 2, "preflight_require_gpu": False})
    try:
        run = lab.playbook("verify.yml", "--limit", "node-a")
        assert run.rc != 0
        assert "0 NVIDIA GPU(s) found, inventory expects 2" in run.output
    finally:
        lab.set_host_vars("node-a", {"gpu_validation_expected_gpus": 0, "preflight_require_gpu": False})


@pytest.mark.parametrize("index", [0, 1])
def test_hosts_have_what_the_roles_promise(lab, index):
    host = lab.testinfra(lab.hosts[index])
    for pkg in ("rdma-core", "ibverbs-utils", "infiniband-diags", "prometheus-node-exporter"):
        assert host.package(pkg).is_installed, pkg
    nccl = host.file("/etc/nccl.conf")
    assert nccl.exists and nccl.mode == 0o644 and "NCCL_DEBUG=WARN" in nccl.content_string

    env = host.file("/etc/tierscale/vllm-llama-8b.env")
    assert env.user == "root" and env.mode == 0o600
    assert f"VLLM_API_KEY={API_KEY}" in host.check_output("cat /etc/tierscale/vllm-llama-8b.env")

    unit = host.file("/etc/systemd/system/vllm-llama-8b.service").content_string
    assert "ExecStart=/opt/tierscale/vllm/venv/bin/vllm serve meta-llama/Llama-3.1-8B-Instruct" in unit
    assert "--tensor-parallel-size 1" in unit and "--shutdown-timeout 120" in unit
    assert "TimeoutStopSec=150" in unit and "User=vllm" in unit and "CUDA_VISIBLE_DEVICES" not in unit
    assert "VLLM_API_KEY" not in unit, "the key belongs in the 0600 EnvironmentFile only"
    verify = host.run("systemd-analyze verify /etc/systemd/system/vllm-llama-8b.service")
    assert verify.rc == 0 and verify.stderr.strip() == "", verify.stderr
    service = host.service("vllm-llama-8b")
    assert service.is_running and service.is_enabled
    assert host.socket("tcp://0.0.0.0:8000").is_listening
    assert host.service("prometheus-node-exporter").is_running
    models = host.check_output(f"python3 -c \"import urllib.request as u; r=u.Request('http://127.0.0.1:8000/v1/models', "
                               f"headers={{'Authorization': 'Bearer {API_KEY}'}}); print(u.urlopen(r).read().decode())\"")
    assert "stub-model" in models or "Llama" in models
    # Without the key the API refuses.
    assert "401" in host.run("python3 -c \"import urllib.request as u; u.urlopen('http://127.0.0.1:8000/v1/models')\"").stderr
