#!/usr/bin/env python3
"""Stand-in for NVIDIA dcgm-exporter on machines without GPUs: reads the same collector CSV
(`-f FILE`) and serves each field as a zero-valued series for GPU 0 on :9400/metrics, so a
test proves the rendered counters file is mounted, parsed and scraped."""

from __future__ import annotations

import argparse
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def load_fields(path: str) -> list[tuple[str, str, str]]:
    fields = []
    for line in open(path):
        line = line.strip()
        if line and not line.startswith("#"):
            name, kind, help_text = (part.strip() for part in line.split(",", 2))
            fields.append((name, kind, help_text))
    return fields


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-f", "--collectors", required=True)
    parser.add_argument("--port", type=int, default=9400)
    args = parser.parse_args()
    lines = []
    for name, kind, help_text in load_fields(args.collectors):
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f'{name}{{gpu="0",modelName="stand-in"}} 0']
    body = ("\n".join(lines) + "\n").encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/metrics" else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # PID 1 in a container
    ThreadingHTTPServer(("0.0.0.0", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
