"""Pinned versions of every image and chart tierscale deploys. Never a floating tag."""

from __future__ import annotations

# vLLM >= 0.18.0 is required for --shutdown-timeout (graceful drain on SIGTERM).
VLLM_IMAGE = "vllm/vllm-openai:v0.18.0"
NGINX_IMAGE = "nginx:1.27.5-alpine"
LITELLM_IMAGE = "ghcr.io/berriai/litellm:main-v1.74.9-stable"
REDIS_IMAGE = "redis:7.4.5-alpine"
PROMETHEUS_IMAGE = "prom/prometheus:v3.5.0"
GRAFANA_IMAGE = "grafana/grafana:12.1.1"
NODE_EXPORTER_IMAGE = "prom/node-exporter:v1.9.1"
NGINX_EXPORTER_IMAGE = "nginx/nginx-prometheus-exporter:1.4.2"
DCGM_EXPORTER_IMAGE = "nvcr.io/nvidia/k8s/dcgm-exporter:4.2.3-4.1.3-ubuntu22.04"
