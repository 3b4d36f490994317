#!/usr/bin/env python3
"""Print, as JSON, what a multi-node vLLM unit needs to know about this host's network:

  host_ip   this host's address (--self, resolved to IPv4): VLLM_HOST_IP
  local     whether host_ip is configured on this host
  ips       every --peer resolved to IPv4 (firewall sets hold addresses, not names)
  ifname    per --peer, the interface the kernel routes to it on (`ip route get`):
            NCCL_SOCKET_IFNAME / GLOO_SOCKET_IFNAME

Standard library and iproute2 only; changes nothing.
"""

import argparse
import json
import socket
import subprocess


def ipv4(name: str) -> str:
    return socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]


def route_dev(ip: str) -> str:
    words = subprocess.run(["ip", "-o", "-4", "route", "get", ip], check=True, capture_output=True, text=True).stdout.split()
    return words[words.index("dev") + 1] if "dev" in words else ""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--self", dest="me", required=True)
    parser.add_argument("--peer", action="append", default=[])
    args = parser.parse_args()
    host_ip = ipv4(args.me)
    addrs = subprocess.run(["ip", "-o", "-4", "addr", "show"], check=True, capture_output=True, text=True).stdout
    local = any(word.split("/")[0] == host_ip for line in addrs.splitlines() for word in line.split())
    ips = {peer: ipv4(peer) for peer in args.peer}
    print(json.dumps({"host_ip": host_ip, "local": local, "ips": ips,
                      "ifname": {peer: route_dev(ip) for peer, ip in ips.items()}}))


if __name__ == "__main__":
    main()
