"""Render the small tier's Compose project (compose.yaml, nginx, Prometheus) from the spec.

Pure functions of the resolved spec: the Pulumi component deploys exactly these files and
`tierscale render` writes exactly these files.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from components import templating
from components.observability import alerts, dashboard, metrics
from components.serving import kv_cache, model_router, probes, versions
from components.serving.vllm_args import API_KEY_ENV, VLLM_PORT, vllm_serve_args
from components.spec import ResolvedStack

NGINX_STATUS_PORT = 8081
# Passive health (the same figures LiteLLM's cooldowns use below).
MAX_FAILS = model_router.MAX_FAILS
FAIL_TIMEOUT_S = model_router.FAIL_TIMEOUT_S
# Where the gateway container reads the model router's njs script (compose.yaml mounts it).
ROUTER_JS_PATH = f"/etc/nginx/tierscale/{model_router.JS_FILE}"
# The gateway's key file (model_router.auth_include: digests only), written by the component as a
# secret file (0600) and mounted read-only; and the file health_prober.sh writes the replicas it
# found down to (a volume shared by the prober and the gateway).
GATEWAY_AUTH = "gateway-api-keys.conf"
GATEWAY_AUTH_PATH = f"/etc/nginx/tierscale-auth/{model_router.AUTH_FILE}"
GATEWAY_HEALTH_DIR = "/run/tierscale-health"
GATEWAY_HEALTH_PATH = f"{GATEWAY_HEALTH_DIR}/down"
PROBER_PATH = f"/etc/nginx/tierscale/{model_router.PROBER_FILE}"

IMAGES = {
    "vllm": versions.VLLM_IMAGE,
    "nginx": versions.NGINX_IMAGE,
    "prometheus": versions.PROMETHEUS_IMAGE,
    "node_exporter": versions.NODE_EXPORTER_IMAGE,
    "nginx_exporter": versions.NGINX_EXPORTER_IMAGE,
    "dcgm_exporter": versions.DCGM_EXPORTER_IMAGE,
    "grafana": versions.GRAFANA_IMAGE,
    "litellm": versions.LITELLM_IMAGE,
    "redis": versions.REDIS_IMAGE,
}
LITELLM_PORT = 4000
GRAFANA_PORT = 3000
# The files that hold secrets on the host (mode 0600, written by the component, never rendered;
# GATEWAY_AUTH above holds the API key's digest).
SECRETS_ENV = "secrets.env"
GRAFANA_ENV = "grafana.env"


@dataclass(frozen=True)
class VllmService:
    name: str
    model: str
    device_ids: list[str]
    args: list[str]
    start_period_s: int
    # KV tiers (models[].kvCache, components/serving/kv_cache.py): host directory -> the path
    # vLLM's flags name, and the CPU tier's pinned host memory (GiB) reserved for the container.
    kv_mounts: tuple[tuple[str, str], ...] = ()
    kv_memory_gib: int = 0


def vllm_services(stack: ResolvedStack) -> list[VllmService]:
    """One service per replica, on the GPUs the placement step gave it (disjoint by
    construction; components.planner.placement). The small tier has one host, so every
    replica is a single rank group."""
    services = []
    for model in stack.models:
        for replica in model.placement:
            services.append(VllmService(
                name=f"vllm-{model.name}-{replica.replica}",
                model=model.name,
                device_ids=list(replica.leader.gpu_indices),
                args=vllm_serve_args(model, VLLM_PORT),
                start_period_s=model.startup_budget_s,
                kv_mounts=tuple(kv_cache.host_mounts(model.name, model.spec.kv_cache, replica.replica)),
                kv_memory_gib=kv_cache.memory_gib(model.spec.kv_cache),
            ))
    return services


def upstreams(stack: ResolvedStack, servers_by_model: dict[str, list[str]]) -> list[dict]:
    return [
        {"name": m.name, "upstream": model_router.upstream_name(m.name), "servers": servers_by_model[m.name]}
        for m in stack.models
    ]


def nginx_conf(stack: ResolvedStack, name: str, servers_by_model: dict[str, list[str]], *, listen: str,
               status_listen: str, runtime_dir: str = "/var/run", log_dir: str = "/var/log/nginx",
               temp_dir: str = "/var/cache/nginx", tls_dir: str = "/etc/nginx/tls",
               js_path: str = ROUTER_JS_PATH, auth_file: str = GATEWAY_AUTH_PATH,
               health_file: str | None = GATEWAY_HEALTH_PATH, weights_by_model: dict[str, list[int]] | None = None,
               traffic: dict | None = None) -> str:
    """nginx.conf (the shared model router config); the keyword arguments let tests run the
    same file on 127.0.0.1 (with their own key file: model_router.auth_include)."""
    return model_router.nginx_conf(
        stack, name, servers_by_model, role="Compose gateway", listen=listen, status_listen=status_listen,
        js_path=js_path, pid_path=f"{runtime_dir}/nginx.pid", error_log=f"{log_dir}/error.log",
        access_log=f"{log_dir}/access.log", temp_dir=temp_dir, tls=stack.spec.security.tls, tls_dir=tls_dir,
        auth_file=auth_file if stack.spec.security.api_auth else None, health_file=health_file,
        weights_by_model=weights_by_model, traffic=traffic,
    )


def litellm_config(stack: ResolvedStack, servers_by_model: dict[str, list[str]],
                   redis: tuple[str, int] = ("redis", 6379)) -> dict:
    """LiteLLM proxy config: one deployment per replica under the model's served name, OpenAI
    aliases, a fallback model group, and Redis so every proxy worker shares routing state."""
    model_list = []
    for m in stack.models:
        for server in servers_by_model[m.name]:
            model_list.append({
                "model_name": m.served_model_name,
                "litellm_params": {
                    # hosted_vllm/ speaks the OpenAI API to a vLLM server
                    "model": f"hosted_vllm/{m.served_model_name}",
                    "api_base": f"http://{server}/v1",
                    "api_key": f"os.environ/{API_KEY_ENV}",
                    "timeout": stack.spec.gateway.read_timeout_s,
                },
                # One id per replica, so cooldowns and in-flight counts are kept per replica.
                "model_info": {"id": server},
            })
    served = {m.name: m.served_model_name for m in stack.models}
    router: dict = {
        "routing_strategy": "least-busy",
        "redis_host": redis[0],
        "redis_port": redis[1],
        "num_retries": 2,
        "allowed_fails": MAX_FAILS,
        "cooldown_time": FAIL_TIMEOUT_S,
        "timeout": stack.spec.gateway.read_timeout_s,
    }
    if stack.spec.gateway.aliases:
        router["model_group_alias"] = {alias: served[target] for alias, target in sorted(stack.spec.gateway.aliases.items())}
    fallback = stack.spec.gateway.fallback_model
    if fallback:
        router["fallbacks"] = [{served[m.name]: [served[fallback]]} for m in stack.models if m.name != fallback]
    return {
        "model_list": model_list,
        "router_settings": router,
        "litellm_settings": {"drop_params": True, "request_timeout": stack.spec.gateway.read_timeout_s},
        # Clients authenticate to the gateway with the same apiKey the replicas require.
        "general_settings": {"master_key": f"os.environ/{API_KEY_ENV}"},
    }


def grafana_provisioning() -> dict[str, str]:
    datasource = {"apiVersion": 1, "datasources": [{
        "name": "Prometheus", "uid": dashboard.DATASOURCE_UID, "type": "prometheus", "access": "proxy",
        "url": "http://prometheus:9090", "isDefault": True, "editable": False,
    }]}
    provider = {"apiVersion": 1, "providers": [{
        "name": "tierscale", "type": "file", "disableDeletion": True, "allowUiUpdates": False,
        "options": {"path": "/var/lib/grafana/dashboards"},
    }]}
    return {
        "grafana/provisioning/datasources/prometheus.yml": yaml.safe_dump(datasource, sort_keys=False),
        "grafana/provisioning/dashboards/tierscale.yml": yaml.safe_dump(provider, sort_keys=False),
        f"grafana/dashboards/{dashboard.DASHBOARD_UID}.json": dashboard.dashboard_json(),
    }


def scrape_jobs(stack: ResolvedStack) -> str:
    """Regex of the jobs prometheus.yml defines (TierscaleTargetDown watches exactly these)."""
    jobs = ["vllm", "node", "dcgm"]
    if stack.spec.gateway.kind == "nginx":
        jobs.insert(1, "nginx")
    return "|".join(jobs)


def alert_rules_file(stack: ResolvedStack) -> str:
    header = "# Rendered by tierscale from components/observability/alerts.py; do not edit.\n"
    return header + yaml.safe_dump({"groups": alerts.rule_groups(stack.spec.slo, scrape_jobs(stack))},
                                   sort_keys=False, width=200)


def compose_project(stack: ResolvedStack, name: str) -> dict[str, str]:
    """Relative path -> file content of the whole Compose project (secret files excluded)."""
    services = vllm_services(stack)
    servers: dict[str, list[str]] = {}
    for svc in services:
        servers.setdefault(svc.model, []).append(f"{svc.name}:{VLLM_PORT}")
    gateway = stack.spec.gateway
    monitoring = stack.spec.monitoring
    files = {
        "compose.yaml": templating.render(
            "small/compose.yaml.j2",
            stack_name=name, project=f"tierscale-{name}", vllm_services=services, images=IMAGES,
            vllm_port=VLLM_PORT, stop_grace_s=probes.TERMINATION_GRACE_S, gateway=gateway,
            monitoring=monitoring, status_port=NGINX_STATUS_PORT, litellm_port=LITELLM_PORT,
            grafana_port=GRAFANA_PORT, tls=stack.spec.security.tls, secrets_env=SECRETS_ENV,
            grafana_env=GRAFANA_ENV, api_auth=stack.spec.security.api_auth, gateway_auth=GATEWAY_AUTH,
            gateway_auth_path=GATEWAY_AUTH_PATH, gateway_health_dir=GATEWAY_HEALTH_DIR,
            prober_file=model_router.PROBER_FILE,
            probe={"interval": model_router.PROBE_INTERVAL_S, "timeout": model_router.PROBE_TIMEOUT_S,
                   "fall": model_router.PROBE_FALL},
        ),
    }
    if gateway.kind == "nginx":
        files["nginx/nginx.conf"] = nginx_conf(
            stack, name, servers, listen=str(gateway.port), status_listen=str(NGINX_STATUS_PORT)
        )
        files[f"nginx/{model_router.JS_FILE}"] = model_router.router_js()
        files[f"nginx/{model_router.PROBER_FILE}"] = model_router.prober_sh()
        files["nginx/probe-targets"] = model_router.probe_targets(stack, servers)
    else:
        files["litellm/config.yaml"] = yaml.safe_dump(litellm_config(stack, servers), sort_keys=False)
    if monitoring.enabled:
        files["prometheus/prometheus.yml"] = templating.render(
            "small/prometheus.yml.j2",
            stack_name=name, monitoring=monitoring, gateway=gateway, status_port=NGINX_STATUS_PORT,
            models=[{"name": m, "targets": t} for m, t in servers.items()],
        )
        files["prometheus/rules/tierscale-alerts.yml"] = alert_rules_file(stack)
        files["dcgm/counters.csv"] = metrics.dcgm_counters_csv()
        files.update(grafana_provisioning())
    return files
