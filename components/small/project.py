"""Render the small tier's Compose project (compose.yaml, nginx, Prometheus) from the spec.

Pure functions of the resolved spec: the Pulumi component deploys exactly these files and
`tierscale render` writes exactly these files.
"""

from __future__ import annotations

from dataclasses import dataclass

from components import templating
from components.serving import probes, versions
from components.serving.vllm_args import VLLM_PORT, vllm_serve_args
from components.spec import ResolvedStack
from components.spec.model import DockerHostTarget

NGINX_STATUS_PORT = 8081
# Passive health: after MAX_FAILS failed attempts within FAIL_TIMEOUT the replica is taken
# out of rotation for FAIL_TIMEOUT, then tried again.
MAX_FAILS = 2
FAIL_TIMEOUT_S = 3

IMAGES = {
    "vllm": versions.VLLM_IMAGE,
    "nginx": versions.NGINX_IMAGE,
    "prometheus": versions.PROMETHEUS_IMAGE,
    "node_exporter": versions.NODE_EXPORTER_IMAGE,
    "nginx_exporter": versions.NGINX_EXPORTER_IMAGE,
    "dcgm_exporter": versions.DCGM_EXPORTER_IMAGE,
}


@dataclass(frozen=True)
class VllmService:
    name: str
    model: str
    device_ids: list[str]
    args: list[str]
    start_period_s: int


def vllm_services(stack: ResolvedStack) -> list[VllmService]:
    """One service per replica; replicas get disjoint GPUs so they never share one."""
    target = stack.spec.target
    assert isinstance(target, DockerHostTarget)
    devices = list(target.gpu_device_ids or [str(i) for i in range(stack.spec.gpu.per_node)])
    services, cursor = [], 0
    for model in stack.models:
        for replica in range(model.replicas):
            ids = devices[cursor:cursor + model.gpus_per_replica]
            cursor += model.gpus_per_replica
            services.append(VllmService(
                name=f"vllm-{model.name}-{replica}",
                model=model.name,
                device_ids=ids,
                args=["vllm", "serve", *vllm_serve_args(model, VLLM_PORT)],
                start_period_s=model.startup_budget_s,
            ))
    return services


def upstreams(stack: ResolvedStack, servers_by_model: dict[str, list[str]]) -> list[dict]:
    return [
        {"name": m.name, "upstream": f"vllm_{m.name.replace('-', '_')}", "servers": servers_by_model[m.name]}
        for m in stack.models
    ]


def nginx_conf(stack: ResolvedStack, name: str, servers_by_model: dict[str, list[str]], *, listen: str,
               status_listen: str, runtime_dir: str = "/var/run", log_dir: str = "/var/log/nginx",
               temp_dir: str = "/var/cache/nginx") -> str:
    """nginx.conf; the keyword arguments let tests run the same file on 127.0.0.1."""
    return templating.render(
        "small/nginx.conf.j2",
        stack_name=name,
        models=upstreams(stack, servers_by_model),
        gateway=stack.spec.gateway,
        listen=listen,
        status_listen=status_listen,
        max_fails=MAX_FAILS,
        fail_timeout_s=FAIL_TIMEOUT_S,
        pid_path=f"{runtime_dir}/nginx.pid",
        error_log=f"{log_dir}/error.log",
        access_log=f"{log_dir}/access.log",
        temp_dir=temp_dir,
    )


def compose_project(stack: ResolvedStack, name: str) -> dict[str, str]:
    """Relative path -> file content of the whole Compose project."""
    services = vllm_services(stack)
    servers: dict[str, list[str]] = {}
    for svc in services:
        servers.setdefault(svc.model, []).append(f"{svc.name}:{VLLM_PORT}")
    project = f"tierscale-{name}"
    files = {
        "compose.yaml": templating.render(
            "small/compose.yaml.j2",
            stack_name=name, project=project, vllm_services=services, images=IMAGES,
            vllm_port=VLLM_PORT, stop_grace_s=probes.TERMINATION_GRACE_S,
            gateway=stack.spec.gateway, monitoring=stack.spec.monitoring, status_port=NGINX_STATUS_PORT,
        ),
        "nginx/nginx.conf": nginx_conf(
            stack, name, servers, listen=str(stack.spec.gateway.port), status_listen=str(NGINX_STATUS_PORT)
        ),
    }
    if stack.spec.monitoring.enabled:
        files["prometheus/prometheus.yml"] = templating.render(
            "small/prometheus.yml.j2",
            stack_name=name, monitoring=stack.spec.monitoring,
            models=[{"name": m, "targets": t} for m, t in servers.items()],
        )
    return files
