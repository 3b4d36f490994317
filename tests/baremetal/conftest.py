"""Two real Debian 12 hosts (debootstrap rootfs, systemd-nspawn, network namespaces, and a
direct link between them for multi-node groups) and an inventory for them made by
`tierscale inventory` from a stack file, like an operator would.

The stack places one llama-8b replica on each host (GPU 2) and one qwen-7b replica across both
(tensorParallel 2 x pipelineParallel 2: leader on node-a, worker on node-b, GPUs 0,1 of each)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli
from tests.support.testhosts import STUB, VLLM_STUB, AptProxy, TestHost, base_rootfs, kill_ssh_control_masters, link_hosts

ANSIBLE_DIR = REPO / "ansible"
API_KEY = "test-api-key-for-the-stub"
VAULT_PASSWORD = "tierscale-test-vault"
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)

STACK = """\
config:
  tierscale:tier: baremetal
  tierscale:target:
    kind: baremetal
    sshUser: root
    hosts:
      - name: node-a
        address: {a}
        gpus: 3
        roles: [inference]
        models: [llama-8b, qwen-7b]
      - name: node-b
        address: {b}
        gpus: 3
        roles: [inference, k8s_worker]
        models: [llama-8b, qwen-7b]
  tierscale:gpu:
    type: l40s
    perNode: 2
  tierscale:models:
    - id: meta-llama/Llama-3.1-8B-Instruct
      name: llama-8b
      maxModelLen: 8192
      replicas: 2
    - id: Qwen/Qwen2.5-7B-Instruct
      name: qwen-7b
      maxModelLen: 8192
      tensorParallel: 2
      pipelineParallel: 2
      replicas: 1
"""


@dataclass
class Run:
    rc: int
    output: str

    def recap(self) -> dict[str, dict[str, int]]:
        return {m.group(1): {"ok": int(m.group(2)), "changed": int(m.group(3)), "unreachable": int(m.group(4)),
                             "failed": int(m.group(5))} for m in RECAP.finditer(self.output)}


@dataclass
class Lab:
    hosts: list[TestHost]
    inventory_dir: Path
    key: Path
    control_dir: Path
    vault_password_file: Path

    @property
    def inventory(self) -> Path:
        return self.inventory_dir / "inventory.yml"

    def playbook(self, name: str, *extra: str) -> Run:
        env = dict(os.environ, ANSIBLE_CONFIG=str(ANSIBLE_DIR / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0",
                   ANSIBLE_NOCOLOR="1", ANSIBLE_VAULT_PASSWORD_FILE=str(self.vault_password_file),
                   PATH=f"{Path(os.sys.executable).parent}:{os.environ['PATH']}")
        proc = subprocess.run(["ansible-playbook", "-i", str(self.inventory), name, *extra], cwd=ANSIBLE_DIR, env=env,
                              capture_output=True, text=True, timeout=900)
        return Run(proc.returncode, proc.stdout + proc.stderr)

    def set_host_vars(self, name: str, values: dict) -> None:
        import yaml

        path = self.inventory_dir / "host_vars" / f"{name}.yml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(yaml.safe_dump(values))

    def testinfra(self, host: TestHost):
        import testinfra

        # testinfra's ssh backend (the ssh binary); its ControlPersist masters live in
        # control_dir, which the fixture's teardown empties.
        return testinfra.get_host(
            f"ssh://root@{host.address}", ssh_identity_file=str(self.key),
            ssh_config=str(self.control_dir.parent / "ssh_config"), controlpath=f"{self.control_dir}/ti-{host.name}")


def _install_stub_vllm(host: TestHost) -> None:
    """The stand-in for vLLM at the unit's ExecStart (vllm_install_method: none)."""
    stub_dir = host.root / "opt/tierscale/stub"
    stub_dir.mkdir(parents=True)
    shutil.copy(STUB, stub_dir / "openai_stub.py")
    shutil.copy(VLLM_STUB, stub_dir / "vllm_stub.py")
    exe = host.root / "opt/tierscale/vllm/venv/bin/vllm"
    exe.parent.mkdir(parents=True)
    # `vllm serve MODEL --host H --port P ...` -> the stub, which ignores flags it does not know;
    # with --nnodes it rendezvous with the rest of its group (tests/support/vllm_stub.py).
    exe.write_text("#!/bin/sh\nexec /usr/bin/python3 /opt/tierscale/stub/vllm_stub.py \"$@\"\n")
    exe.chmod(0o755)


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.fail("the bare-metal tests create network namespaces and need root")
    work = tmp_path_factory.mktemp("lab")
    key = work / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    base = base_rootfs()
    hosts = [TestHost("node-a", 0, work), TestHost("node-b", 1, work)]
    proxy = None
    control = work / "cp"
    control.mkdir()
    try:
        for h in hosts:
            h.prepare(base, (work / "id_ed25519.pub").read_text())
            _install_stub_vllm(h)
        link_hosts(hosts[0], hosts[1])
        proxy = AptProxy(hosts, work / "apt-proxy.log")
        for h in hosts:
            h.boot(work / f"{h.name}.console.log")
        for h in hosts:
            h.wait_ssh()

        stacks = work / "stacks"
        stacks.mkdir()
        (stacks / "Pulumi.baremetal-testhosts.yaml").write_text(STACK.format(a=hosts[0].address, b=hosts[1].address))
        inv = work / "inventory"
        result = run_cli("inventory", "--stack", "baremetal-testhosts", "--stacks-dir", str(stacks), "--out", str(inv))
        assert result.returncode == 0, result.stderr
        ssh_args = (f"-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ControlMaster=auto "
                    f"-o ControlPersist=60s -o ControlPath={control}/%C")
        (inv / "group_vars/all/test-connection.yml").write_text(
            f"ansible_ssh_private_key_file: {key}\nansible_ssh_common_args: \"{ssh_args}\"\n"
            # vLLM is pre-installed on the test hosts as the stub (see _install_stub_vllm).
            "vllm_install_method: none\n")
        (work / "ssh_config").write_text(
            f"Host *\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  IdentityFile {key}\n")
        password_file = work / "vault-password"
        password_file.write_text(VAULT_PASSWORD + "\n")
        vault = inv / "group_vars/all/vault.yml"
        vault.write_text(f"vllm_api_key: {API_KEY}\n")
        subprocess.run([str(Path(os.sys.executable).parent / "ansible-vault"), "encrypt", str(vault),
                        "--vault-password-file", str(password_file)], check=True, capture_output=True)
        yield Lab(hosts, inv, key, control, password_file)
    finally:
        kill_ssh_control_masters(control)
        for h in hosts:
            h.destroy()
        if proxy:
            proxy.stop()
