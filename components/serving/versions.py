"""Pinned image of every container tierscale deploys, read from components/pins.yaml (the one
pins file, with each pin's source). Never a floating tag."""

from __future__ import annotations

from components.pins import image

# vLLM >= 0.18.0 is required for --shutdown-timeout (graceful drain on SIGTERM; at the pinned 0.32.0
# vllm/engine/arg_utils.py:1901-1906, default 0 = abort in-flight requests); the pin is 0.32.0,
# the version CI runs (components/pins.yaml, docs/vllm.md).
VLLM_IMAGE = image("vllm")
NGINX_IMAGE = image("nginx")
LITELLM_IMAGE = image("litellm")
REDIS_IMAGE = image("redis")
PROMETHEUS_IMAGE = image("prometheus")
GRAFANA_IMAGE = image("grafana")
NODE_EXPORTER_IMAGE = image("node-exporter")
NGINX_EXPORTER_IMAGE = image("nginx-exporter")
DCGM_EXPORTER_IMAGE = image("dcgm-exporter")
