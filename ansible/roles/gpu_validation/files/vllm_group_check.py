#!/usr/bin/env python3
"""Check this host's part of each multi-node vLLM group; print {unit name: [problems]} as JSON.

Argument: the host's multi-node units (JSON list, as `tierscale inventory` writes vllm_units).
  leader  vllm-<name>.service active, listening on the master port, and an established
          connection on it from every worker of the group
  worker  vllm-<name>.service active, and one of its processes holds an established connection
          to the leader's master port
Reads systemctl and `ss` only; changes nothing.
"""

import json
import socket
import subprocess
import sys
from pathlib import Path


def run(*cmd: str) -> str:
    return subprocess.run(cmd, capture_output=True, text=True).stdout


def ipv4(name: str) -> str:
    try:
        return socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
    except OSError:
        return name


def endpoint(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    if host.startswith("::ffff:"):
        host = host[len("::ffff:"):]
    return host, int(port) if port.isdigit() else -1


def established() -> list[tuple[tuple[str, int], tuple[str, int], str]]:
    """(local, peer, process column) of every established TCP connection."""
    out = []
    for line in run("ss", "-Htnp", "state", "established").splitlines():
        words = line.split()
        if len(words) >= 4:
            out.append((endpoint(words[2]), endpoint(words[3]), " ".join(words[4:])))
    return out


def listening_ports() -> set[int]:
    return {endpoint(line.split()[3])[1] for line in run("ss", "-Htln").splitlines() if len(line.split()) >= 4}


def unit_pids(service: str) -> set[str]:
    group = run("systemctl", "show", "-p", "ControlGroup", "--value", service).strip()
    root = Path("/sys/fs/cgroup") / group.lstrip("/")
    pids: set[str] = set()
    if group and root.is_dir():
        for procs in root.rglob("cgroup.procs"):
            pids.update(procs.read_text().split())
    return pids


def check(unit: dict, conns, listening) -> list[str]:
    service = f"vllm-{unit['name']}.service"
    problems = []
    state = run("systemctl", "is-active", service).strip() or "unknown"
    if state != "active":
        problems.append(f"{service} ({unit['role']}, node rank {unit['node_rank']}) is {state}")
    port = int(unit["master_port"])
    if unit["role"] == "leader":
        if port not in listening:
            problems.append(f"{service} does not listen on master port {port}")
        peers = {peer[0] for local, peer, _ in conns if local[1] == port}
        for member in unit["members"]:
            if member["node_rank"] == 0:
                continue
            if ipv4(member["address"]) not in peers:
                problems.append(f"worker {member['host']} ({member['address']}, node rank {member['node_rank']}) "
                                f"is not connected to master port {port}")
    else:
        leader = (ipv4(unit["master_addr"]), port)
        mine = [proc for local, peer, proc in conns if peer == leader]
        pids = unit_pids(service)
        owned = [p for p in mine if any(f"pid={pid}," in p for pid in pids)]
        if not mine:
            problems.append(f"{service} has no connection to leader {unit['leader']} {unit['master_addr']}:{port}")
        elif pids and all("pid=" in p for p in mine) and not owned:
            problems.append(f"the connections to leader {unit['master_addr']}:{port} are not {service}'s")
    return problems


def main() -> None:
    units = json.loads(sys.argv[1])
    conns, listening = established(), listening_ports()
    print(json.dumps({u["name"]: check(u, conns, listening) for u in units}))


if __name__ == "__main__":
    main()
