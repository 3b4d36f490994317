#!/usr/bin/env python3
"""A forwarding HTTP proxy for apt inside test hosts, limited to the Debian mirrors.

Test hosts live in network namespaces with no route out; this proxy listens on the host end
of their veth and forwards plain-HTTP GET/HEAD requests to an allow-listed set of hosts only
(anything else gets 403), so apt works and nothing else leaves the sandbox.
"""

from __future__ import annotations

import argparse
import http.client
import shutil
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
              "proxy-authorization", "proxy-authenticate"}


def make_handler(allowed: tuple[str, ...]):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            sys.stderr.write("apt-proxy: " + fmt % args + "\n")

        def _forward(self, send_body: bool) -> None:
            url = urlsplit(self.path)
            if url.scheme != "http" or url.hostname not in allowed:
                body = f"tierscale test proxy: {url.hostname!r} is not an allowed mirror\n".encode()
                self.send_response(403)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            path = url.path + (f"?{url.query}" if url.query else "")
            try:
                conn.request(self.command, path, headers=headers)
                resp = conn.getresponse()
                self.send_response(resp.status, resp.reason)
                length = resp.getheader("Content-Length")
                for k, v in resp.getheaders():
                    if k.lower() not in HOP_BY_HOP:
                        self.send_header(k, v)
                if length is None and send_body:
                    # Unknown length: close after the body so the client sees its end.
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                if send_body:
                    shutil.copyfileobj(resp, self.wfile, 64 * 1024)
            except OSError as e:
                self.send_error(502, f"upstream error: {e}")
            finally:
                conn.close()

        def do_GET(self):
            self._forward(True)

        def do_HEAD(self):
            self._forward(False)

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", action="append", required=True, help="host:port (repeatable)")
    parser.add_argument("--allow", action="append", required=True,
                        help="host to forward to (the machine's Debian mirror, from its apt sources); repeatable")
    args = parser.parse_args()
    import threading

    servers = []
    for listen in args.listen:
        host, port = listen.rsplit(":", 1)
        server = ThreadingHTTPServer((host, int(port)), make_handler(tuple(args.allow)))
        server.daemon_threads = True
        servers.append(server)
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print("apt-proxy ready", flush=True)
    servers[0].serve_forever()


if __name__ == "__main__":
    main()
