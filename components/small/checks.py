"""Small-tier rules (ports on the one host) and the validators for what it renders.

Imports only the spec types: the spec's resolver calls `problems` through the tier registry.
"""

from __future__ import annotations

from components.spec import kubernetes_rules
from components.spec.errors import Problem
from components.spec.model import StackSpec

# Ports the Compose project uses besides the gateway's (components/small/project.py and
# templates/small/compose.yaml.j2 use these names).
NGINX_STATUS_PORT = 8081  # inside the nginx container: stub_status for the exporter
LITELLM_PORT = 4000  # inside the LiteLLM container
PROMETHEUS_HOST_PORT = 9090  # published on 127.0.0.1
GRAFANA_HOST_PORT = 3000  # published on 127.0.0.1


def problems(spec: StackSpec) -> list[Problem]:
    out: list[Problem] = kubernetes_rules.tls_outside_kubernetes(spec)
    port = spec.gateway.port
    taken: dict[int, str] = {}
    if spec.gateway.kind == "nginx":
        taken[NGINX_STATUS_PORT] = "nginx's status listener (stub_status) in the same container"
    if spec.monitoring.enabled:
        taken[PROMETHEUS_HOST_PORT] = "Prometheus, published on the host's 127.0.0.1"
        taken[GRAFANA_HOST_PORT] = "Grafana, published on the host's 127.0.0.1"
    host = getattr(spec.target, "host", "localhost")  # another target kind is reported by rules.py
    if host not in ("localhost", "127.0.0.1", "::1"):
        taken[spec.target.ssh.port] = f"SSH on {host} (target.ssh.port), which tierscale deploys through"
    if port in taken:
        free = next(p for p in (8000, 8080, 8443, 9000) if p not in taken)
        out.append(Problem("gateway.port", f"{port} is already used by {taken[port]}; choose another port, e.g. {free}"))
    ids = getattr(spec.target, "gpu_device_ids", None) or []
    seen: set[str] = set()
    for i, device in enumerate(ids):
        if device in seen:
            out.append(Problem(f"target.gpuDeviceIds[{i}]", f"{device!r} is listed twice; each GPU can serve one replica slot"))
        seen.add(device)
    if len(ids) > spec.gpu.per_node:
        out.append(Problem("target.gpuDeviceIds", f"lists {len(ids)} GPUs but gpu.perNode is {spec.gpu.per_node}: "
                           "set gpu.perNode to the host's GPU count"))
    return out


def validators(stack) -> list:
    from components.validate import registry as v

    checks = [v.compose_schema, v.compose_config]
    if stack.spec.gateway.kind == "nginx":
        checks.append(v.nginx_syntax)
    if stack.spec.monitoring.enabled:
        checks += [v.promtool_config, v.promtool_rules, v.metric_names]
    return checks
