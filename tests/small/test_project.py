"""The small tier's rendered files for each gateway and option: LiteLLM, TLS, monitoring off."""

from __future__ import annotations

import yaml

from components.small.project import compose_project, scrape_jobs
from components.validate import registry
from tests.support.stacks import small_stack

TWO_MODELS = [
    {"id": "meta-llama/Llama-3.1-8B-Instruct", "name": "llama-8b", "replicas": 2},
    {"id": "Qwen/Qwen2.5-14B-Instruct-AWQ", "name": "qwen-14b", "quantization": "awq", "replicas": 1},
]


def _write(files, out):
    for rel, content in files.items():
        path = out / "compose" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


def test_litellm_gateway(tmp_path):
    stack = small_stack(models=TWO_MODELS, gateway={
        "kind": "litellm", "fallbackModel": "qwen-14b", "aliases": {"gpt-4o-mini": "llama-8b"}})
    files = compose_project(stack, "lite")
    assert "nginx/nginx.conf" not in files
    config = yaml.safe_load(files["litellm/config.yaml"])
    llama = [m for m in config["model_list"] if m["model_name"] == "meta-llama/Llama-3.1-8B-Instruct"]
    assert [m["litellm_params"]["api_base"] for m in llama] == ["http://vllm-llama-8b-0:8000/v1", "http://vllm-llama-8b-1:8000/v1"]
    assert all(m["litellm_params"]["api_key"] == "os.environ/VLLM_API_KEY" for m in config["model_list"])
    router = config["router_settings"]
    assert router["redis_host"] == "redis" and router["routing_strategy"] == "least-busy"
    assert router["model_group_alias"] == {"gpt-4o-mini": "meta-llama/Llama-3.1-8B-Instruct"}
    assert router["fallbacks"] == [{"meta-llama/Llama-3.1-8B-Instruct": ["Qwen/Qwen2.5-14B-Instruct-AWQ"]}]
    assert config["general_settings"]["master_key"] == "os.environ/VLLM_API_KEY"
    compose = yaml.safe_load(files["compose.yaml"])
    assert compose["services"]["gateway"]["image"].startswith("ghcr.io/berriai/litellm:")
    assert compose["services"]["gateway"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "nginx-exporter" not in compose["services"]
    assert scrape_jobs(stack) == "vllm|node|dcgm"
    _write(files, tmp_path)
    for check in (registry.compose_schema, registry.compose_config, registry.promtool_config, registry.promtool_rules,
                  registry.metric_names):
        outcome = check(tmp_path)
        assert outcome.ok, f"{outcome.name}: {outcome.detail}"


def test_tls_gateway_passes_nginx_t(tmp_path):
    stack = small_stack(security={"tls": {"enabled": True, "hostname": "llm.example.com"}})
    files = compose_project(stack, "tls")
    assert "listen 8000 ssl;" in files["nginx/nginx.conf"]
    assert "./tls:/etc/nginx/tls:ro" in files["compose.yaml"]
    _write(files, tmp_path)
    outcome = registry.nginx_syntax(tmp_path)
    assert outcome.ok, outcome.detail


def test_monitoring_off_renders_no_monitoring(tmp_path):
    files = compose_project(small_stack(monitoring={"enabled": False}), "bare")
    assert set(files) == {"compose.yaml", "nginx/nginx.conf", "nginx/model_router.js", "nginx/health_prober.sh",
                          "nginx/probe-targets"}
    services = yaml.safe_load(files["compose.yaml"])["services"]
    assert not {"prometheus", "grafana", "dcgm-exporter"} & set(services)
    _write(files, tmp_path)
    assert registry.compose_config(tmp_path).ok


def test_compose_config_catches_a_broken_project(tmp_path):
    files = compose_project(small_stack(), "broken")
    files["compose.yaml"] = files["compose.yaml"].replace("depends_on: [prometheus]", "depends_on: [no-such-service]")
    _write(files, tmp_path)
    outcome = registry.compose_config(tmp_path)
    assert not outcome.ok and "no-such-service" in outcome.detail


def test_nginx_upstreams_share_a_zone_and_retry_only_safely():
    conf = compose_project(small_stack(), "z")["nginx/nginx.conf"]
    assert "zone vllm_llama_8b 256k;" in conf and "least_conn;" in conf
    assert "proxy_next_upstream error timeout http_502 http_503 http_504 non_idempotent;" in conf
    assert "proxy_buffering off;" in conf and "X-Real-IP" in conf and "keepalive 64;" in conf
