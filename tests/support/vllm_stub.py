#!/usr/bin/env python3
"""Stand-in for `vllm serve` on the bare-metal test hosts, at the vLLM unit's ExecStart.

Single node (no --nnodes, or 1): the OpenAI stub (openai_stub.py, next to this file).

Multi-node (vLLM 0.32.0's native launcher flags: --nnodes N --node-rank i --master-addr A
--master-port P, --headless on workers), a rendezvous shaped like vLLM's on the addresses and
ports the unit renders:
  leader (rank 0)  listens on 0.0.0.0:P (the torch.distributed store). A worker connects from
                   VLLM_HOST_IP and says hello with the port it listens on (NCCL/Gloo: ephemeral);
                   the leader answers with its message-queue port (a kernel-chosen port on
                   VLLM_HOST_IP, as vLLM 0.32.0's cross-node MessageQueue binds
                   tcp://VLLM_HOST_IP:0: vllm/distributed/device_communicators/
                   shm_broadcast.py:551-565; v0.18.0 scanned from VLLM_PORT), the worker
                   connects there, and the leader
                   connects back to the worker's port. Once N-1 workers joined, the leader
                   serves the OpenAI API (/health) like vLLM after engine start-up. If a worker
                   leaves, the leader exits 1 (vLLM's engine dies with its group).
  worker (rank i)  does its side of the above and stays connected; exits 1 when the leader
                   goes away (systemd restarts it; its ExecStartPre waits for the leader).
Stopping, as vLLM 0.32.0 does: the leader drains its in-flight requests on SIGTERM for up to
--shutdown-timeout, then exits (drain_on_sigterm); a worker exits at once on SIGTERM
(vllm/entrypoints/cli/serve.py:205-233 @v0.32.0, run_headless). A leader that loses a worker while
draining exits 1 and its requests are cut.
Connections that close without a hello (port probes: ExecStartPre, wait_for) are ignored.
Every check of the rendered environment fails loudly: VLLM_HOST_IP must be an address of this
host and GLOO_SOCKET_IFNAME / NCCL_SOCKET_IFNAME an interface of it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def log(msg: str) -> None:
    print(f"vllm-stub: {msg}", flush=True)


def fail(msg: str, code: int = 2) -> None:
    log(f"error: {msg}")
    os._exit(code)


def check_environment() -> str:
    host_ip = os.environ.get("VLLM_HOST_IP", "")
    if not host_ip:
        fail("VLLM_HOST_IP is not set")
    try:
        with socket.socket() as s:
            s.bind((host_ip, 0))
    except OSError as e:
        fail(f"VLLM_HOST_IP={host_ip} is not an address of this host: {e}")
    for var in ("GLOO_SOCKET_IFNAME", "NCCL_SOCKET_IFNAME"):
        name = os.environ.get(var, "").lstrip("=^")
        try:
            if not name:
                raise OSError("empty")
            socket.if_nametoindex(name)  # in this network namespace (/sys/class/net may show another)
        except OSError:
            fail(f"{var}={os.environ.get(var, '')!r} is not an interface of this host")
    if not os.environ.get("VLLM_PORT", "").isdigit():
        fail("VLLM_PORT is not set to a port")
    return host_ip


def read_line(conn: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(1024)
        if not chunk:
            return b""
        data += chunk
    return data


def hold(conn: socket.socket, why: str) -> None:
    """Block until the peer goes away, then exit 1."""
    try:
        while conn.recv(1024):
            pass
    except OSError:
        pass
    fail(why, 1)


def leader(args, host_ip: str, rest: list[str]) -> None:
    store = socket.socket()
    store.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    store.bind(("0.0.0.0", args.master_port))
    store.listen(16)
    queue = socket.socket()  # vLLM 0.32.0: tcp://VLLM_HOST_IP:0 (shm_broadcast.py:551-565)
    queue.bind((host_ip, 0))
    queue.listen(16)
    log(f"leader of {args.nnodes} nodes on {host_ip}: master port {args.master_port}, "
        f"message queue {queue.getsockname()[1]}")
    joined: dict[int, list[socket.socket]] = {}
    ready = threading.Event()

    def accept_queue() -> None:
        while True:
            conn, peer = queue.accept()
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            log(f"message queue connection from {peer[0]}")

    threading.Thread(target=accept_queue, daemon=True).start()

    def serve(conn: socket.socket, peer) -> None:
        line = read_line(conn)
        if not line:
            conn.close()  # a port probe
            return
        hello = json.loads(line)
        rank = int(hello["rank"])
        conn.sendall(json.dumps({"mq_port": queue.getsockname()[1]}).encode() + b"\n")
        back = socket.create_connection((hello["host_ip"], int(hello["data_port"])), timeout=10)
        back.settimeout(None)
        back.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        joined[rank] = [conn, back]
        log(f"worker rank {rank} joined from {peer[0]} (VLLM_HOST_IP {hello['host_ip']}, "
            f"connected back to {hello['data_port']})")
        if len(joined) == args.nnodes - 1:
            ready.set()
        hold(conn, f"worker rank {rank} ({peer[0]}) left the group")

    def accept_store() -> None:
        while True:
            conn, peer = store.accept()
            threading.Thread(target=serve, args=(conn, peer), daemon=True).start()

    threading.Thread(target=accept_store, daemon=True).start()
    ready.wait()
    log("group is whole; serving the API")
    import openai_stub

    drain_on_sigterm(openai_stub, args.shutdown_timeout)
    openai_stub.main(rest)


def drain_on_sigterm(openai_stub, timeout_s: int) -> None:
    """The leader's SIGTERM, like vLLM 0.32.0's API server: the engine drains the requests in
    flight for up to --shutdown-timeout, then the process exits (vllm/entrypoints/launchers/
    launcher.py:249-289, vllm/v1/engine/core.py:1626-1670 @v0.32.0). If a worker leaves meanwhile, the group is lost
    and the leader exits 1 at once (hold() above), cutting those requests."""
    in_flight = [0]
    account = openai_stub.Replica._account

    def counted(self, delta: int) -> None:
        in_flight[0] += delta
        account(self, delta)

    openai_stub.Replica._account = counted

    def drain() -> None:
        deadline = time.monotonic() + timeout_s
        log(f"SIGTERM: draining {in_flight[0]} in-flight request(s) (timeout={timeout_s}s)")
        while in_flight[0] > 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        log(f"shutdown complete ({in_flight[0]} request(s) still in flight)")
        os._exit(0)

    def on_sigterm(*_) -> None:
        threading.Thread(target=drain, daemon=True).start()

    signal.signal(signal.SIGTERM, on_sigterm)

    class KeepDrainHandler:
        """openai_stub.main registers its own SIGTERM handler (exit at once); keep ours."""

        def __getattr__(self, name):
            return getattr(signal, name)

        @staticmethod
        def signal(signum, handler):
            if signum != signal.SIGTERM:
                signal.signal(signum, handler)

    openai_stub.signal = KeepDrainHandler()


def worker(args, host_ip: str) -> None:
    data = socket.socket()
    data.bind((host_ip, 0))  # like NCCL/Gloo: an ephemeral port on the group interface
    data.listen(4)
    store = socket.socket()
    store.bind((host_ip, 0))
    store.connect((args.master_addr, args.master_port))
    hello = {"rank": args.node_rank, "host_ip": host_ip, "data_port": data.getsockname()[1]}
    store.sendall(json.dumps(hello).encode() + b"\n")
    reply = read_line(store)
    if not reply:
        fail("the leader closed the connection before the rendezvous", 1)
    mq = socket.create_connection((args.master_addr, json.loads(reply)["mq_port"]), timeout=10,
                                  source_address=(host_ip, 0))
    mq.settimeout(None)  # held for the life of the group
    data.settimeout(30)
    back, _ = data.accept()
    back.settimeout(None)
    log(f"worker rank {args.node_rank} joined leader {args.master_addr}:{args.master_port} from {host_ip}")
    threading.Thread(target=hold, args=(mq, "the leader's message queue closed"), daemon=True).start()
    threading.Thread(target=hold, args=(back, "the leader's connection back closed"), daemon=True).start()
    hold(store, f"leader {args.master_addr}:{args.master_port} went away")


def main(argv: list[str]) -> None:
    if argv and argv[0] == "serve":
        argv = argv[1:]
    parser = argparse.ArgumentParser()
    parser.add_argument("--nnodes", type=int, default=1)
    parser.add_argument("--node-rank", type=int, default=0)
    parser.add_argument("--master-addr", default="")
    parser.add_argument("--master-port", type=int, default=29501)
    parser.add_argument("--headless", action="store_true")
    parser.add_argument("--shutdown-timeout", type=int, default=0)
    args, _ = parser.parse_known_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    if args.nnodes <= 1:
        import openai_stub

        openai_stub.main(argv)
        return
    if args.headless != (args.node_rank != 0):
        fail(f"node rank {args.node_rank} with headless={args.headless}: only workers run headless")
    host_ip = check_environment()
    if args.node_rank == 0:
        leader(args, host_ip, argv)
    else:
        worker(args, host_ip)


if __name__ == "__main__":
    main(sys.argv[1:])
