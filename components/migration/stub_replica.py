#!/usr/bin/env python3
"""An OpenAI-compatible stand-in for a vLLM replica: the `local-stubs` migration driver's
replicas (a rehearsal of `tierscale migrate run` without GPUs), and the tests' stand-in
(tests/support/openai_stub.py is a link to this file; the bare-metal test hosts copy it).

It speaks what the gateway and Prometheus see from vLLM: `/health`, `/v1/models`,
`/v1/chat/completions` and `/v1/completions` (streamed as server-sent events or not),
`--api-key` bearer auth on /v1, and `/metrics` with vLLM's metric names. Each generated token
costs `--itl-ms` after a first token at `--ttft-ms`, so work is proportional to max_tokens.
`/stub/stats` reports what this replica did (requests, tokens, busy time) for assertions.

For load tests (`tierscale bench`), all optional and off by default: `--ttft-ms-max` /
`--itl-ms-max` draw each request's TTFT and its (constant) inter-token latency uniformly from
[min, max], so TTFT and TPOT percentiles are known in advance; `--error-rate` answers that
share of completions with an OpenAI-style 500 (counted as `errors` in /stub/stats);
`stream_options: {include_usage: true}` gets a final usage chunk, as vLLM sends; `--seed`
makes the draws repeatable; `--backlog` sizes the listen queue (vLLM/uvicorn: 2048).

For migrations (`tierscale migrate run`), also off by default: `POST /stub/control` with a JSON
object changes `ttft_ms`, `itl_ms`, `ttft_ms_max`, `itl_ms_max`, `error_rate` or `drift` at
run time (a degraded replica mid-test) and answers the settings now in force; `--drift F`
replaces that share of output tokens, chosen by a hash of the prompt and the position (the
same prompt always drifts the same way), so golden-set checks see a "quantized" model.

Auth follows vLLM 0.32.0 exactly (AuthenticationMiddleware in
vllm/entrypoints/serve/middleware/authenticate.py @v0.32.0): with a key, only paths starting with
/v1, /v2, /inference or /cohere need (v0.18.0: /v1 only)
`Authorization: Bearer <key>` (scheme in any case, SHA-256 compared), OPTIONS never; a miss is
`401 {"error": "Unauthorized"}`. Every other route vLLM serves (/invocations, /tokenize,
/metrics, /load, /version, /ping, admin routes...) answers without a key, as vLLM's does, so a
gateway probe through this stub is meaningful. `GET /stub/requests` lists every request this
replica received (method, raw target, whether it carried a valid key), for tests asserting
that nothing reached it. `fail_status` (control) answers every completion with that status at
once (a replica answering 503).

Standard library plus prometheus_client only, so it runs in a bare Debian rootfs
(python3, python3-prometheus-client).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import random
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Routes vLLM 0.32.0 serves besides the OpenAI completions this stub implements (every
# api_router.py under vllm/entrypoints/, /metrics, FastAPI's docs; docs/security.md lists them;
# /get_tokenizer_info is v0.18.0's name of /tokenizer_info); the stub answers them all.
VLLM_OTHER_ROUTES = frozenset({
    "/invocations", "/tokenize", "/detokenize", "/load", "/version", "/ping", "/metrics", "/health",
    "/pooling", "/classify", "/score", "/v1/score", "/rerank", "/v1/rerank", "/v2/rerank",
    "/v1/audio/transcriptions", "/v1/audio/translations", "/v1/messages", "/v1/responses",
    "/v1/load_lora_adapter", "/v1/unload_lora_adapter", "/reset_prefix_cache", "/reset_mm_cache",
    "/sleep", "/wake_up", "/is_sleeping", "/collective_rpc", "/server_info", "/start_profile",
    "/stop_profile", "/get_tokenizer_info", "/scale_elastic_ep", "/is_scaling_elastic_ep",
    "/openapi.json", "/docs", "/redoc", "/v1/chat/completions/render", "/v1/completions/render",
    "/tokenizer_info", "/kv_event_sources", "/generative_scoring", "/v2/embed", "/v1/messages/count_tokens",
    "/v1/chat/completions/batch", "/v1/systemone", "/cohere/v2/chat", "/inference/v1/generate",
    "/inference/v1/abort_requests", "/v1/responses/render", "/v1/messages/render", "/cohere/v2/chat/render",
    "/v1/chat/completions/derender", "/v1/completions/derender", "/reset_encoder_cache",
    "/release_kv_cache_memory", "/fault_tolerance/apply", "/fault_tolerance/status", "/docs/oauth2-redirect",
})
# The prefixes vLLM's AuthenticationMiddleware guards (authenticate.py:11 @v0.32.0).
GUARDED_PREFIX = ("/v1", "/v2", "/inference", "/cohere")
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Replica:
    def __init__(self, name: str, model: str, ttft_s: float, itl_s: float, api_key: str | None,
                 ttft_max_s: float | None = None, itl_max_s: float | None = None, error_rate: float = 0.0,
                 seed: int | None = None, drift: float = 0.0):
        self.name, self.model, self.ttft_s, self.itl_s, self.api_key = name, model, ttft_s, itl_s, api_key
        self.drift = drift
        self.fail_status: int | None = None
        self.request_log: list[dict] = []
        self.ttft_max_s, self.itl_max_s, self.error_rate = ttft_max_s, itl_max_s, error_rate
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.requests = 0
        self.errors = 0
        self.tokens = 0
        self.in_flight = 0
        self.busy_s = 0.0  # integral of in-flight requests over time
        self._since = time.monotonic()
        reg = self.registry = CollectorRegistry()
        labels = ["model_name"]
        # The names vLLM's V1 engine exports (vllm/v1/metrics/loggers.py).
        self.running = Gauge("vllm:num_requests_running", "Running requests", labels, registry=reg)
        self.waiting = Gauge("vllm:num_requests_waiting", "Waiting requests", labels, registry=reg)
        self.kv = Gauge("vllm:kv_cache_usage_perc", "KV-cache usage", labels, registry=reg)
        self.gen = Counter("vllm:generation_tokens", "Generated tokens", labels, registry=reg)
        self.prompt = Counter("vllm:prompt_tokens", "Prompt tokens", labels, registry=reg)
        self.prefix_q = Counter("vllm:prefix_cache_queries", "Prefix cache queries", labels, registry=reg)
        self.prefix_h = Counter("vllm:prefix_cache_hits", "Prefix cache hits", labels, registry=reg)
        self.success = Counter("vllm:request_success", "Finished requests", labels + ["finished_reason"], registry=reg)
        self.ttft = Histogram("vllm:time_to_first_token_seconds", "TTFT", labels, buckets=LATENCY_BUCKETS, registry=reg)
        self.tpot = Histogram("vllm:request_time_per_output_token_seconds", "TPOT", labels, buckets=LATENCY_BUCKETS, registry=reg)
        self.itl = Histogram("vllm:inter_token_latency_seconds", "ITL", labels, buckets=LATENCY_BUCKETS, registry=reg)
        self.e2e = Histogram("vllm:e2e_request_latency_seconds", "E2E", labels, buckets=LATENCY_BUCKETS, registry=reg)
        self.http = Counter("http_requests", "HTTP requests", ["handler", "method", "status"], registry=reg)
        for metric in (self.running, self.waiting, self.kv):
            metric.labels(model).set(0)

    def _account(self, delta: int) -> None:
        with self.lock:
            now = time.monotonic()
            self.busy_s += self.in_flight * (now - self._since)
            self._since = now
            self.in_flight += delta
            self.running.labels(self.model).set(self.in_flight)
            self.kv.labels(self.model).set(min(1.0, self.in_flight / 64))

    def stats(self) -> dict:
        self._account(0)
        with self.lock:
            return {"name": self.name, "requests": self.requests, "tokens": self.tokens,
                    "in_flight": self.in_flight, "busy_s": round(self.busy_s, 4), "errors": self.errors}

    def control(self, changes: dict) -> dict:
        """Change latency, error rate or drift at run time; returns the settings in force."""
        scale = {"ttft_ms": ("ttft_s", 1000), "itl_ms": ("itl_s", 1000), "ttft_ms_max": ("ttft_max_s", 1000),
                 "itl_ms_max": ("itl_max_s", 1000), "error_rate": ("error_rate", 1), "drift": ("drift", 1),
                 "fail_status": ("fail_status", 1)}
        unknown = set(changes) - set(scale)
        if unknown:
            raise ValueError(f"unknown settings {sorted(unknown)}; allowed: {sorted(scale)}")
        with self.lock:
            for key, value in changes.items():
                attr, div = scale[key]
                setattr(self, attr, None if value is None else
                        (int(value) if key == "fail_status" else float(value) / div))
            return {key: (None if getattr(self, attr) is None else getattr(self, attr) * div)
                    for key, (attr, div) in scale.items()}

    def token(self, prompt: str, i: int) -> str:
        """Output token i: `t<i>`, or with --drift a deterministic substitute for that share."""
        if self.drift:
            digest = hashlib.sha256(f"{prompt}\0{i}".encode()).digest()
            if int.from_bytes(digest[:8], "big") / 2**64 < self.drift:
                return f"d{i}"
        return f"t{i}"

    def draw(self) -> tuple[float, float, bool]:
        """This request's TTFT and inter-token latency (s), and whether it fails."""
        with self.lock:
            ttft = self.rng.uniform(self.ttft_s, self.ttft_max_s) if self.ttft_max_s else self.ttft_s
            itl = self.rng.uniform(self.itl_s, self.itl_max_s) if self.itl_max_s else self.itl_s
            fail = self.error_rate > 0 and self.rng.random() < self.error_rate
            return ttft, itl, fail


def make_handler(replica: Replica):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keepalive and chunked streaming, like uvicorn
        disable_nagle_algorithm = True  # TCP_NODELAY, like uvicorn: a token chunk is not held for the last one's ACK

        def log_message(self, *args):  # quiet
            pass

        def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _count(self, status: int) -> None:
            replica.http.labels(self.path.split("?")[0], self.command, f"{status // 100}xx").inc()

        def _log(self, path: str) -> None:
            if not path.startswith("/stub/"):
                with replica.lock:
                    replica.request_log.append({"method": self.command, "target": self.path,
                                                "authorized": self._key_ok(), "time": time.time(),
                                                "connection": self.headers.get("Connection"),
                                                "x_forwarded_for": self.headers.get("X-Forwarded-For")})

        def _key_ok(self) -> bool:
            """vLLM's AuthenticationMiddleware.verify_token."""
            value = self.headers.get("Authorization")
            if not replica.api_key or not value:
                return bool(not replica.api_key)
            scheme, _, param = value.partition(" ")
            if scheme.lower() != "bearer":
                return False
            return hmac.compare_digest(hashlib.sha256(param.encode("utf-8")).digest(),
                                       hashlib.sha256(replica.api_key.encode("utf-8")).digest())

        def _guarded(self, path: str) -> bool:
            """True when vLLM would answer 401 here (and the 401 is sent)."""
            if self.command != "OPTIONS" and path.startswith(GUARDED_PREFIX) and not self._key_ok():
                self._send(401, b'{"error":"Unauthorized"}')
                self._count(401)
                return True
            return False

        def _body(self) -> dict:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
            try:
                value = json.loads(raw or b"{}")
            except ValueError:
                return {}
            return value if isinstance(value, dict) else {}

        def _other(self, path: str) -> None:
            """Every other route vLLM serves: answered (200) the way vLLM would, key or not
            outside GUARDED_PREFIX, so a test sees it if anything reaches it."""
            if path in VLLM_OTHER_ROUTES:
                self._send(200, json.dumps({"route": path, "served_by": replica.name}).encode())
                self._count(200)
            else:
                self._send(404, b'{"detail":"Not Found"}')
                self._count(404)

        def do_GET(self):
            path = self.path.split("?")[0]
            self._log(path)
            if self._guarded(path):
                return
            if path == "/health":
                self._send(200, b"")
            elif path == "/metrics":
                self._send(200, generate_latest(replica.registry), "text/plain; version=0.0.4")
                return
            elif path == "/stub/stats":
                self._send(200, json.dumps(replica.stats()).encode())
                return
            elif path == "/stub/requests":
                with replica.lock:
                    self._send(200, json.dumps(replica.request_log).encode())
                return
            elif path == "/v1/models":
                self._send(200, json.dumps({"object": "list", "data": [
                    {"id": replica.model, "object": "model", "owned_by": "vllm"}]}).encode())
            else:
                self._other(path)
                return
            self._count(200)

        def do_HEAD(self):
            self._log(self.path.split("?")[0])
            self.send_response(405)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_OPTIONS(self):
            self._log(self.path.split("?")[0])
            self._send(405, b'{"detail":"Method Not Allowed"}')

        def do_PUT(self):
            path = self.path.split("?")[0]
            self._log(path)
            self._body()
            if not self._guarded(path):
                self._other(path)

        do_DELETE = do_PUT
        do_PATCH = do_PUT

        def do_POST(self):
            path = self.path.split("?")[0]
            if path == "/stub/control":
                try:
                    self._send(200, json.dumps(replica.control(self._body())).encode())
                except (ValueError, TypeError) as e:
                    self._send(400, json.dumps({"error": str(e)}).encode())
                return
            self._log(path)
            body = self._body()
            if self._guarded(path):
                return
            if path not in ("/v1/chat/completions", "/v1/completions", "/invocations", "/v1/responses",
                            "/v1/embeddings"):
                self._other(path)
                return
            if replica.fail_status:
                with replica.lock:
                    replica.requests += 1
                    replica.errors += 1
                self._send(replica.fail_status, json.dumps({
                    "object": "error", "type": "ServiceUnavailable", "code": replica.fail_status,
                    "message": "injected failure (stub fail_status)"}).encode())
                self._count(replica.fail_status)
                return
            if path == "/v1/embeddings":
                self._send(200, json.dumps({"object": "list", "model": replica.model, "served_by": replica.name,
                                            "data": [{"object": "embedding", "index": 0, "embedding": [0.0, 1.0]}]}).encode())
                self._count(200)
                return
            n_tokens = int(body.get("max_tokens") or 16)
            prompt_text = json.dumps(body.get("messages") or body.get("prompt") or "")
            prompt_tokens = len(prompt_text) // 4 + 1
            ttft_s, itl_s, fail = replica.draw()
            with replica.lock:
                replica.requests += 1
                replica.errors += fail
            if fail:
                self._send(500, json.dumps({"object": "error", "type": "InternalServerError", "code": 500,
                                            "message": "injected error (stub --error-rate)"}).encode())
                self._count(500)
                return
            usage = (body.get("stream_options") or {}).get("include_usage")
            replica._account(+1)
            start = time.monotonic()
            try:
                if body.get("stream"):
                    self._stream(n_tokens, start, ttft_s, itl_s, prompt_tokens if usage else None, prompt_text)
                else:
                    time.sleep(ttft_s + itl_s * (n_tokens - 1))
                    replica.ttft.labels(replica.model).observe(ttft_s)
                    text = " ".join(replica.token(prompt_text, i) for i in range(n_tokens))
                    self._send(200, json.dumps({
                        "id": "cmpl-stub", "object": "chat.completion", "model": replica.model,
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "length"}],
                        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": n_tokens,
                                  "total_tokens": prompt_tokens + n_tokens},
                        "served_by": replica.name,
                    }).encode())
                with replica.lock:
                    replica.tokens += n_tokens
                m = replica.model
                replica.gen.labels(m).inc(n_tokens)
                replica.prompt.labels(m).inc(prompt_tokens)
                replica.prefix_q.labels(m).inc(prompt_tokens)
                replica.prefix_h.labels(m).inc(prompt_tokens // 2)
                replica.success.labels(m, "length").inc()
                elapsed = time.monotonic() - start
                replica.e2e.labels(m).observe(elapsed)
                if n_tokens > 1:
                    replica.tpot.labels(m).observe((elapsed - ttft_s) / (n_tokens - 1))
                self._count(200)
            except (BrokenPipeError, ConnectionResetError):
                self._count(499)
            finally:
                replica._account(-1)

        def _stream(self, n_tokens: int, start: float, ttft_s: float, itl_s: float,
                    usage_prompt_tokens: int | None = None, prompt_text: str = "") -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

            def chunk(data: str) -> None:
                raw = data.encode()
                self.wfile.write(f"{len(raw):x}\r\n".encode() + raw + b"\r\n")
                self.wfile.flush()

            time.sleep(ttft_s)
            replica.ttft.labels(replica.model).observe(time.monotonic() - start)
            for i in range(n_tokens):
                if i:
                    time.sleep(itl_s)
                    replica.itl.labels(replica.model).observe(itl_s)
                event = {"id": "chatcmpl-stub", "object": "chat.completion.chunk", "model": replica.model,
                         "served_by": replica.name, "created": int(time.time()),
                         "choices": [{"index": 0, "delta": {"content": f"{replica.token(prompt_text, i)} "},
                                      "finish_reason": None}]}
                chunk(f"data: {json.dumps(event)}\n\n")
            if usage_prompt_tokens is not None:
                event = {"id": "chatcmpl-stub", "object": "chat.completion.chunk", "model": replica.model, "choices": [],
                         "usage": {"prompt_tokens": usage_prompt_tokens, "completion_tokens": n_tokens,
                                   "total_tokens": usage_prompt_tokens + n_tokens}}
                chunk(f"data: {json.dumps(event)}\n\n")
            chunk("data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--name", default=os.environ.get("STUB_NAME", "stub"))
    parser.add_argument("--served-model-name", default=os.environ.get("STUB_MODEL", "stub-model"))
    parser.add_argument("--ttft-ms", type=float, default=float(os.environ.get("STUB_TTFT_MS", 20)))
    parser.add_argument("--itl-ms", type=float, default=float(os.environ.get("STUB_ITL_MS", 5)))
    parser.add_argument("--ttft-ms-max", type=float, default=None, help="draw TTFT uniformly from [--ttft-ms, this]")
    parser.add_argument("--itl-ms-max", type=float, default=None, help="draw each request's ITL uniformly from [--itl-ms, this]")
    parser.add_argument("--error-rate", type=float, default=0.0, help="share of completions answered with a 500")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--backlog", type=int, default=5, help="listen queue length")
    parser.add_argument("--drift", type=float, default=0.0, help="share of output tokens replaced (golden-set tests)")
    args, _ = parser.parse_known_args(argv)  # tolerate the rest of a `vllm serve` command line
    replica = Replica(args.name, args.served_model_name, args.ttft_ms / 1000, args.itl_ms / 1000,
                      os.environ.get("VLLM_API_KEY") or None,
                      ttft_max_s=None if args.ttft_ms_max is None else args.ttft_ms_max / 1000,
                      itl_max_s=None if args.itl_ms_max is None else args.itl_ms_max / 1000,
                      error_rate=args.error_rate, seed=args.seed, drift=args.drift)
    def handle_error(self, request, client_address):  # a client closing a keep-alive connection is not an error
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            ThreadingHTTPServer.handle_error(self, request, client_address)

    server_class = type("StubServer", (ThreadingHTTPServer,), {"request_queue_size": args.backlog, "handle_error": handle_error})
    server = server_class((args.host, args.port), make_handler(replica))
    server.daemon_threads = True
    # Like vLLM: SIGTERM means stop. (As a container's PID 1 the default action never fires.)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"stub {args.name} listening on {args.host}:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
