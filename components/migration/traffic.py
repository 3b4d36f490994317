"""Traffic back ends for `tierscale migrate run`: one interface, `set_weight(percent)`.

`percent` is the destination's share of requests; the source gets the rest. A back end
returns only once the new weights are in force (nginx: the reloaded workers answer with the
new split), so a rollback's latency is the time `set_weight(0)` takes.

- `NginxSplit` (small tier): renders the gateway's own config (templates/gateway/nginx.conf.j2,
  the one the Compose gateway runs) with each model's upstream holding both pools as weighted
  servers, checks it with `nginx -t`, reloads nginx, and confirms the reload on the status
  listener's `/gateway/traffic`. At 0% and 100% the upstream is the usual least_conn over one
  pool. With the fallback strategy the source pool is replaced by the fallback endpoint first.
- `HTTPRouteSplit` (medium tier): the stack's HTTPRoute with backendRef weights across the two
  deployments' Services, applied through the stack driver.
- `Route53Split` / `AcceleratorDial` (large tier): render the API payloads; the large tier does
  not exist yet, so `set_weight` raises NotImplementedError.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Protocol

import httpx

from components.serving import model_router
from components.small.project import GATEWAY_AUTH_PATH, GATEWAY_HEALTH_PATH, ROUTER_JS_PATH
from components.spec import ResolvedStack


class TrafficError(RuntimeError):
    """A weight could not be put in force (the message says which step failed)."""


class TrafficBackend(Protocol):
    def set_weight(self, percent: int) -> None:
        """Send `percent`% of requests to the destination, the rest to the source; return once in force."""

    def use_fallback(self) -> None:
        """Fallback strategy: the source's share goes to the fallback endpoint from now on."""

    def describe(self) -> str:
        ...


def pool_weights(percent: int, n_src: int, n_dst: int) -> tuple[list[int], list[int]]:
    """Integer server weights giving the source pool exactly (100 - percent)% and the
    destination pool percent% under weighted round robin, spread evenly within each pool."""
    if not 0 < percent < 100:
        raise ValueError("pool_weights is for a split: 0 < percent < 100")
    src_each, dst_each = (100 - percent) * n_dst, percent * n_src
    g = math.gcd(src_each, dst_each)
    return [src_each // g] * n_src, [dst_each // g] * n_dst


@dataclass
class NginxSplit:
    """The small tier's nginx gateway as a weighted split between two pools of replicas.

    `render` holds nginx_conf's placement keywords (listen, status_listen, runtime_dir,
    log_dir, temp_dir, tls_dir, js_path) as the gateway runs them; `reload` is the command that
    makes the running nginx re-read `conf` (default `nginx -s reload` with the same -p/-c)."""

    stack_name: str
    stack: ResolvedStack  # the source stack: its gateway, models and routes
    conf: Path
    source_servers: dict[str, list[str]]  # model name -> host:port of the source replicas
    dest_servers: dict[str, list[str]]  # model name -> host:port of the destination's (same served model)
    render: dict
    status_url: str
    reload: Optional[list[str]] = None
    test: bool = True  # `nginx -t` before every reload
    fallback_servers: Optional[dict[str, list[str]]] = None
    confirm_timeout_s: float = 10.0
    fallback_active: bool = False
    percent: Optional[int] = None
    revision: int = field(default=0)

    def describe(self) -> str:
        return f"nginx gateway {self.conf} (status {self.status_url})"

    def _prefix(self) -> str:
        return str(self.conf.parent)

    def _nginx(self, *args: str) -> list[str]:
        """nginx with this gateway's prefix (and its error log, so a non-root check does not
        try the packaged default log first)."""
        argv = ["nginx", "-p", self._prefix()]
        if self.render.get("log_dir"):
            argv += ["-e", f"{self.render['log_dir']}/error.log"]
        return argv + list(args)

    def upstreams(self, percent: int) -> list[dict]:
        """Each model's upstream block at this split (the template's `models`)."""
        out = []
        for m in self.stack.models:
            src = list((self.fallback_servers or {}).get(m.name) or []) if self.fallback_active else []
            src = src or list(self.source_servers.get(m.name, []))
            dst = list(self.dest_servers.get(m.name, []))
            entry: dict = {"name": m.name, "upstream": model_router.upstream_name(m.name)}
            if not dst or percent <= 0:
                entry["servers"] = src
            elif percent >= 100 or not src:
                entry["servers"] = dst
            else:
                w_src, w_dst = pool_weights(percent, len(src), len(dst))
                entry["servers"], entry["weights"] = src + dst, w_src + w_dst
            if not entry["servers"]:
                raise TrafficError(f"model {m.name}: no servers in either pool")
            out.append(entry)
        return out

    def render_conf(self, percent: int, revision: int = 0) -> str:
        """The gateway config at this split, from the gateway template (the same arguments
        components.serving.model_router.nginx_conf passes, plus the weights and the status)."""
        r = self.render
        runtime_dir, log_dir = r.get("runtime_dir", "/var/run"), r.get("log_dir", "/var/log/nginx")
        traffic = {"percent": percent, "revision": revision, "fallback": self.fallback_active}
        blocks = self.upstreams(percent)
        weights = {b["name"]: b["weights"] for b in blocks if b.get("weights")}
        return model_router.nginx_conf(
            self.stack, self.stack_name, {b["name"]: b["servers"] for b in blocks}, role="Compose gateway",
            listen=r["listen"], status_listen=r["status_listen"], js_path=r.get("js_path", ROUTER_JS_PATH),
            pid_path=f"{runtime_dir}/nginx.pid", error_log=f"{log_dir}/error.log", access_log=f"{log_dir}/access.log",
            temp_dir=r.get("temp_dir", "/var/cache/nginx"), tls=self.stack.spec.security.tls,
            tls_dir=r.get("tls_dir", "/etc/nginx/tls"), worker_processes=r.get("worker_processes", "auto"),
            auth_file=r.get("auth_file", GATEWAY_AUTH_PATH) if self.stack.spec.security.api_auth else None,
            health_file=r.get("health_file", GATEWAY_HEALTH_PATH), weights_by_model=weights or None,
            traffic=traffic,
        )

    def _run(self, argv: list[str], what: str) -> None:
        if shutil.which(argv[0]) is None:
            raise TrafficError(f"{what}: `{argv[0]}` is not installed or not on PATH")
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise TrafficError(f"{what} failed ({' '.join(argv)}): {(proc.stderr or proc.stdout).strip()}")

    def _write(self, text: str) -> None:
        self.conf.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.conf.parent, prefix=".nginx.conf.")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        if self.test:
            # The candidate is checked where it will live (its relative paths resolve the same).
            self._run(self._nginx("-t", "-q", "-c", tmp), "nginx -t on the new split")
        os.replace(tmp, self.conf)

    def _confirm(self, revision: int) -> None:
        deadline = time.monotonic() + self.confirm_timeout_s
        last = ""
        while time.monotonic() < deadline:
            try:
                reply = httpx.get(self.status_url, timeout=1, headers={"Connection": "close"})
                if reply.status_code == 200 and reply.json().get("revision") == revision:
                    return
                last = reply.text[:200]
            except (httpx.HTTPError, ValueError) as e:
                last = str(e)
            time.sleep(0.02)
        raise TrafficError(f"nginx did not take the new split within {self.confirm_timeout_s:g}s "
                           f"({self.status_url}: {last})")

    def _apply(self, percent: int) -> None:
        self.revision = time.time_ns()
        self._write(self.render_conf(percent, self.revision))
        self._run(self.reload or self._nginx("-c", str(self.conf), "-s", "reload"), "nginx reload")
        self._confirm(self.revision)
        self.percent = percent

    def set_weight(self, percent: int) -> None:
        self._apply(percent)

    def read_weight(self, agree: int = 3, within_s: float = 2.0) -> int:
        """The destination's share the running nginx serves: the `percent` of the config its
        workers loaded, as the status listener's `/gateway/traffic` reports it (not the file on
        disk, which a failed reload leaves ahead of the live config). Right after a reload an old
        worker may still answer a new connection, so `agree` answers in a row must match."""
        deadline = time.monotonic() + within_s
        seen: list[int] = []
        while True:
            try:
                reply = httpx.get(self.status_url, timeout=2, headers={"Connection": "close"})
                live = reply.json() if reply.status_code == 200 else None
            except (httpx.HTTPError, ValueError) as e:
                raise TrafficError(f"cannot read the live split from {self.status_url}: {e}") from e
            if not isinstance(live, dict) or not isinstance(live.get("percent"), int):
                raise TrafficError(f"{self.status_url} does not report the split "
                                   f"(HTTP {reply.status_code}: {reply.text[:200]})")
            seen.append(live["percent"])
            if len(seen) >= agree and len(set(seen[-agree:])) == 1:
                return seen[-1]
            if time.monotonic() > deadline:
                raise TrafficError(f"{self.status_url}: workers disagree on the split after {within_s:g}s "
                                   f"(answers {seen[-10:]})")
            time.sleep(0.02)

    def use_fallback(self) -> None:
        if not self.fallback_servers:
            raise TrafficError("the fallback strategy needs fallback servers (traffic file: fallback_servers)")
        self.fallback_active = True
        self._apply(self.percent or 0)


@dataclass
class HTTPRouteSplit:
    """Gateway API: the source stack's HTTPRoute, each model's backendRefs weighted across the
    source's and the destination's Services; applied through the driver (`apply(manifests)`)."""

    stack: ResolvedStack  # source (a medium-tier stack: its route, parent Gateway, namespace)
    dest: ResolvedStack
    apply: Callable[[list[dict]], None]
    fallback_service: Optional[dict] = None  # {"name": ..., "namespace": ..., "port": ...}
    fallback_active: bool = False
    # The objects as the cluster holds them now (the driver's read-back), or None when the
    # driver cannot read them: then `read_weight` says so instead of guessing.
    read: Optional[Callable[[], Optional[list[dict]]]] = None

    def describe(self) -> str:
        return f"HTTPRoute tierscale in {self.stack.spec.target.namespace}"

    def manifests(self, percent: int) -> list[dict]:
        from components.medium.names import workload
        from components.medium.network import http_route
        from components.serving.vllm_args import VLLM_PORT

        src_ns, dst_ns = self.stack.spec.target.namespace, self.dest.spec.target.namespace
        route = http_route(self.stack, src_ns)
        for rule in route["spec"]["rules"]:
            refs = []
            for ref in rule["backendRefs"]:
                src_ref = dict(ref, weight=100 - percent)
                if self.fallback_active and self.fallback_service:
                    src_ref = dict(self.fallback_service, weight=100 - percent)
                dst_name = self._dest_backend(ref["name"])
                if dst_name is None:
                    refs.append(dict(src_ref, weight=1))
                    continue
                dst_ref = {"name": dst_name, "port": ref.get("port", VLLM_PORT), "weight": percent}
                if dst_ns != src_ns:
                    dst_ref["namespace"] = dst_ns
                refs += [r for r in (src_ref, dst_ref) if r["weight"] > 0]
            rule["backendRefs"] = refs
        out = [route]
        if dst_ns != src_ns:
            # A route may only send to another namespace's Service that grants it.
            out.append({"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
                        "metadata": {"name": "tierscale-migration", "namespace": dst_ns},
                        "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": src_ns}],
                                 "to": [{"group": "", "kind": "Service"}]}})
        return out

    def _dest_backend(self, src_backend: str) -> Optional[str]:
        """The destination's Service for a source backendRef: the destination's model router for
        the source's router (a stack-wide split: each router knows its own models), the
        destination's Deployment of the same served model for a per-model Service, else None."""
        from components.medium.names import workload
        from components.medium.router import ROUTER_NAME

        if src_backend == ROUTER_NAME:
            return ROUTER_NAME
        dst_by_served = {m.served_model_name: m for m in self.dest.models}
        model = next((m for m in self.stack.models if workload(m.name) == src_backend), None)
        dst_model = dst_by_served.get(model.served_model_name) if model else None
        return workload(dst_model.name) if dst_model else None

    def set_weight(self, percent: int) -> None:
        self.apply(self.manifests(percent))

    def read_weight(self) -> int:
        """The destination's share in the applied HTTPRoute: the weight of its backendRefs over
        all weights, on the rules that carry both (every such rule has the same split)."""
        objs = self.read() if self.read else None
        if objs is None:
            raise NotImplementedError(f"{self.describe()}: the driver cannot read the applied route back")
        src_ns, dst_ns = self.stack.spec.target.namespace, self.dest.spec.target.namespace
        if src_ns == dst_ns:
            raise NotImplementedError(f"{self.describe()}: source and destination share namespace {src_ns}, so "
                                      "their Services cannot be told apart in the route")
        shares = set()
        for obj in objs:
            if obj.get("kind") != "HTTPRoute":
                continue
            for rule in obj["spec"]["rules"]:
                refs = rule.get("backendRefs") or []
                dst = sum(r.get("weight", 1) for r in refs if r.get("namespace", src_ns) == dst_ns)
                total = sum(r.get("weight", 1) for r in refs)
                if total and len(refs) > 1 or dst:
                    shares.add(round(100 * dst / total))
        if len(shares) > 1:
            raise TrafficError(f"{self.describe()}: the rules carry different splits {sorted(shares)}")
        return shares.pop() if shares else 0

    def use_fallback(self) -> None:
        if not self.fallback_service:
            raise TrafficError("the fallback strategy needs a fallback Service (traffic file: fallback_service)")
        self.fallback_active = True


_LARGE = ("the large tier (multi-region) does not exist yet: {what} renders its payloads "
          "(`payloads(percent)`) but cannot apply them; shift this traffic by hand or with the AWS CLI")


@dataclass
class Route53Split:
    """Weighted DNS records (ChangeResourceRecordSets): source and destination under one name."""

    hosted_zone_id: str
    record_name: str
    source_target: str
    dest_target: str
    ttl: int = 60

    def describe(self) -> str:
        return f"Route 53 weighted records {self.record_name}"

    def payloads(self, percent: int) -> dict:
        def rrset(ident: str, target: str, weight: int) -> dict:
            return {"Action": "UPSERT", "ResourceRecordSet": {
                "Name": self.record_name, "Type": "CNAME", "SetIdentifier": ident, "Weight": weight,
                "TTL": self.ttl, "ResourceRecords": [{"Value": target}]}}
        return {"HostedZoneId": self.hosted_zone_id, "ChangeBatch": {
            "Comment": f"tierscale migrate: {percent}% to the destination",
            "Changes": [rrset("source", self.source_target, 100 - percent), rrset("destination", self.dest_target, percent)]}}

    def set_weight(self, percent: int) -> None:
        raise NotImplementedError(_LARGE.format(what="Route53Split"))

    def use_fallback(self) -> None:
        raise NotImplementedError(_LARGE.format(what="Route53Split"))


@dataclass
class AcceleratorDial:
    """Global Accelerator traffic dials (UpdateEndpointGroup) on the two regions' endpoint groups."""

    source_endpoint_group_arn: str
    dest_endpoint_group_arn: str

    def describe(self) -> str:
        return "Global Accelerator traffic dials"

    def payloads(self, percent: int) -> list[dict]:
        return [{"EndpointGroupArn": self.source_endpoint_group_arn, "TrafficDialPercentage": float(100 - percent)},
                {"EndpointGroupArn": self.dest_endpoint_group_arn, "TrafficDialPercentage": float(percent)}]

    def set_weight(self, percent: int) -> None:
        raise NotImplementedError(_LARGE.format(what="AcceleratorDial"))

    def use_fallback(self) -> None:
        raise NotImplementedError(_LARGE.format(what="AcceleratorDial"))


TRAFFIC_KINDS = ("nginx", "httproute", "route53", "global-accelerator")


def _host_port(url: str) -> str:
    return url.split("://", 1)[-1].split("/", 1)[0]


def from_settings(settings: dict, src_name: str, src: ResolvedStack, dst_name: str, dst: ResolvedStack,
                  outputs: Optional[dict], apply: Callable[[list[dict]], None], fallback: bool = False,
                  read: Optional[Callable[[], Optional[list[dict]]]] = None):
    """The back end a traffic file (`migrate run --traffic FILE`, YAML) describes:

        kind: nginx                       # small tier
        conf: /opt/tierscale/small-dev/nginx/nginx.conf
        status_url: http://127.0.0.1:8081/gateway/traffic
        render: {listen: "0.0.0.0:8000", status_listen: "0.0.0.0:8081", ...}  # nginx_conf keywords
        source_servers: {llama-8b: ["vllm-llama-8b-0:8000", ...]}
        reload: [docker, compose, -p, small-dev, exec, gateway, nginx, -s, reload]   # optional
        dest_servers: {llama-8b: ["llm.example.com:80"]}   # optional: default the driver's endpoints
        fallback_servers: {llama-8b: ["fallback:8000"]}    # fallback strategy

        kind: httproute                   # medium tier; applied through the driver
        fallback_service: {name: ..., namespace: ..., port: ...}

        kind: route53 | global-accelerator  # large tier: payloads only (NotImplementedError)
    """
    kind = settings.get("kind")
    if kind == "nginx":
        dest = dict(settings.get("dest_servers") or {})
        if not dest and outputs:
            by_served = {m.served_model_name: m.name for m in dst.models}
            endpoints = outputs.get("endpoints") or {}
            for m in src.models:
                dst_model = by_served.get(m.served_model_name)
                if dst_model and endpoints.get(dst_model):
                    dest[m.name] = [_host_port(u) for u in endpoints[dst_model]]
        return NginxSplit(
            stack_name=src_name, stack=src, conf=Path(settings["conf"]), source_servers=settings["source_servers"],
            dest_servers=dest, render=settings["render"], status_url=settings["status_url"],
            reload=settings.get("reload"), test=settings.get("test", True),
            fallback_servers=settings.get("fallback_servers"), fallback_active=fallback)
    if kind == "httproute":
        return HTTPRouteSplit(src, dst, apply, settings.get("fallback_service"), fallback, read)
    if kind == "route53":
        return Route53Split(settings.get("hosted_zone_id", ""), settings.get("record_name", ""),
                            settings.get("source_target", ""), settings.get("dest_target", ""))
    if kind == "global-accelerator":
        return AcceleratorDial(settings.get("source_endpoint_group_arn", ""), settings.get("dest_endpoint_group_arn", ""))
    raise TrafficError(f"traffic kind {kind!r} is not one of {', '.join(TRAFFIC_KINDS)}")
