"""Real Debian 12 test hosts for the Ansible roles: a debootstrap rootfs, copied per host,
booted with systemd-nspawn inside its own network namespace, reachable over SSH on a veth.

Hosts have no route out; apt reaches the Debian mirror through `apt_proxy.py`, which listens
on the host end of every veth and forwards only to the mirror. `policy-rc.d` keeps package
postinst scripts from starting daemons (the roles start what they need), and each host knows
its own name in /etc/hosts so fact gathering never waits on DNS.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

CACHE = Path(os.environ.get("TIERSCALE_ROOTFS_CACHE", "/var/cache/tierscale"))
SUITE = "bookworm"
# What a freshly installed server has, plus what tests need on it (the stub vLLM needs
# prometheus-client). Everything the roles install comes through apt during the converge.
INCLUDE = ["systemd", "systemd-sysv", "dbus", "openssh-server", "python3", "python3-apt", "sudo", "iproute2",
           "ca-certificates", "python3-prometheus-client"]
APT_PROXY = Path(__file__).with_name("apt_proxy.py")
STUB = Path(__file__).with_name("openai_stub.py")
# `vllm serve` stand-in: the OpenAI stub, or a multi-node rendezvous on the rendered addresses.
VLLM_STUB = Path(__file__).with_name("vllm_stub.py")
PROXY_PORT = 3142


def debian_mirror(sources: Path = Path("/etc/apt/sources.list.d/debian.sources")) -> str:
    """The machine's Debian mirror (the `URIs:` of the first stanza)."""
    for line in sources.read_text().splitlines():
        if line.startswith("URIs:"):
            return line.split()[1].rstrip("/")
    raise RuntimeError(f"no URIs: line in {sources}")


def base_rootfs() -> Path:
    """Build the Debian rootfs once per machine (about a minute), then reuse it."""
    root = CACHE / f"rootfs-{SUITE}-v1"
    stamp = root / ".tierscale-complete"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists():
            return root
        shutil.rmtree(root, ignore_errors=True)
        subprocess.run(["debootstrap", "--variant=minbase", f"--include={','.join(INCLUDE)}", SUITE, str(root),
                        debian_mirror()], check=True, capture_output=True)
        # Daemons never start from package scripts inside the image; systemd units do.
        policy = root / "usr/sbin/policy-rc.d"
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        (root / "etc/ssh/sshd_config.d/tierscale-test.conf").write_text(
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n")
        stamp.write_text("ok\n")
    return root


@dataclass
class TestHost:
    name: str
    index: int
    workdir: Path
    tag: str = field(default_factory=lambda: str(os.getpid() % 10000))
    proc: subprocess.Popen | None = None

    @property
    def netns(self) -> str:
        return f"ts{self.tag}-{self.name}"

    @property
    def veth_host(self) -> str:
        return f"t{self.tag}h{self.index}"

    @property
    def veth_guest(self) -> str:
        return f"t{self.tag}g{self.index}"

    @property
    def gateway_ip(self) -> str:
        return f"10.213.{self.index}.1"

    @property
    def address(self) -> str:
        return f"10.213.{self.index}.2"

    @property
    def root(self) -> Path:
        return self.workdir / self.name

    def prepare(self, base: Path, public_key: str) -> None:
        subprocess.run(["cp", "-a", "--reflink=auto", str(base), str(self.root)], check=True)
        (self.root / "etc/hostname").write_text(f"{self.name}\n")
        (self.root / "etc/hosts").write_text(f"127.0.0.1 localhost\n{self.address} {self.name}\n")
        ssh = self.root / "root/.ssh"
        ssh.mkdir(mode=0o700, exist_ok=True)
        (ssh / "authorized_keys").write_text(public_key)
        (self.root / "etc/apt/apt.conf.d/01tierscale-proxy").write_text(
            f'Acquire::http::Proxy "http://{self.gateway_ip}:{PROXY_PORT}";\n')
        # Each copy gets its own SSH host keys and machine id.
        for key in (self.root / "etc/ssh").glob("ssh_host_*"):
            key.unlink()
        subprocess.run(["ssh-keygen", "-A", "-f", str(self.root)], check=True, capture_output=True)
        (self.root / "etc/machine-id").write_text("")
        subprocess.run(["ip", "netns", "add", self.netns], check=True)
        subprocess.run(["ip", "link", "add", self.veth_host, "type", "veth", "peer", "name", self.veth_guest], check=True)
        subprocess.run(["ip", "link", "set", self.veth_guest, "netns", self.netns], check=True)
        subprocess.run(["ip", "addr", "add", f"{self.gateway_ip}/30", "dev", self.veth_host], check=True)
        subprocess.run(["ip", "link", "set", self.veth_host, "up"], check=True)
        for cmd in (["addr", "add", f"{self.address}/30", "dev", self.veth_guest], ["link", "set", self.veth_guest, "up"],
                    ["link", "set", "lo", "up"]):
            subprocess.run(["ip", "-n", self.netns, *cmd], check=True)

    def boot(self, log: Path) -> None:
        self.proc = subprocess.Popen(
            # CAP_NET_ADMIN: nspawn drops it for --network-namespace-path; the roles manage this host's
            # firewall (nftables), which only reaches the host's own network namespace.
            ["systemd-nspawn", "--boot", "--register=no", "--keep-unit", f"--network-namespace-path=/run/netns/{self.netns}",
             "--capability=CAP_NET_ADMIN",
             "-D", str(self.root), f"--machine={self.name}", "--console=passive"],
            stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True,
        )

    def wait_ssh(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name}: systemd-nspawn exited with {self.proc.returncode}")
            try:
                with socket.create_connection((self.address, 22), timeout=1) as s:
                    if s.recv(4).startswith(b"SSH"):
                        return
            except OSError:
                time.sleep(0.3)
        raise TimeoutError(f"{self.name}: no SSH on {self.address}:22 after {timeout}s")

    def destroy(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # nspawn asks the container's systemd to power off
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        subprocess.run(["ip", "link", "del", self.veth_host], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


def link_hosts(a: TestHost, b: TestHost) -> None:
    """A direct cable between two hosts, as the network their multi-node groups talk over: a
    veth pair `t<tag>x<index>` with one end in each host's namespace, and a /32 route to the
    other host's address over it (source: the host's own address). Nothing in the machine's
    own namespace forwards between the hosts. Deleting a host's namespace removes the cable."""
    subprocess.run(["ip", "link", "add", link_interface(a), "type", "veth", "peer", "name", link_interface(b)], check=True)
    for host, peer in ((a, b), (b, a)):
        end = link_interface(host)
        subprocess.run(["ip", "link", "set", end, "netns", host.netns], check=True)
        subprocess.run(["ip", "-n", host.netns, "link", "set", end, "up"], check=True)
        subprocess.run(["ip", "-n", host.netns, "route", "add", f"{peer.address}/32", "dev", end, "src", host.address],
                       check=True)


def link_interface(host: TestHost) -> str:
    """The interface `link_hosts` gave `host` (inside its namespace)."""
    return f"t{host.tag}x{host.index}"


class AptProxy:
    def __init__(self, hosts: list[TestHost], log: Path):
        mirror_host = urlsplit(debian_mirror()).hostname
        args = [sys.executable, str(APT_PROXY), "--allow", mirror_host]
        for h in hosts:
            args += ["--listen", f"{h.gateway_ip}:{PROXY_PORT}"]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=open(log, "w"), text=True)
        assert self.proc.stdout.readline().strip() == "apt-proxy ready"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def kill_ssh_control_masters(control_dir: Path) -> None:
    """ControlPersist masters outlive ansible-playbook; end them so nothing lingers."""
    for sock in control_dir.glob("*"):
        subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "dummy"], capture_output=True)
