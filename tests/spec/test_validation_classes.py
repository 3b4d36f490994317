"""The facts behind the issue-20 validation classes, and the legal-but-risky warnings.

The refusals themselves are corpus cases (broken_stacks.yaml, classes large / exposure /
gateway / hosts); this file pins what those checks assume about other projects, so a check
cannot outlive its reason: the AWS region list against the pinned provider, and what the
rendered gateways really support.
"""

from __future__ import annotations

import copy

import pytest

from components.spec import load_spec
from components.spec.aws_regions import AWS_REGIONS, partition, unknown_region


def test_aws_regions_are_the_pinned_providers():
    """components/spec/aws_regions.py cites pulumi-aws's Region enum: the installed one must agree."""
    from pulumi_aws._enums import Region

    assert sorted(AWS_REGIONS) == sorted(r.value for r in Region)


def test_partitions_and_unknown_regions():
    assert partition("us-east-1") == "aws" and partition("cn-north-1") == "aws-cn"
    assert partition("us-gov-west-1") == "aws-us-gov" and partition("us-isob-east-1") == "aws-iso-b"
    assert unknown_region("eu-west-1") is None
    assert "did you mean 'eu-west-1'" in unknown_region("eu-wset-1")


@pytest.fixture(scope="module")
def rendered_litellm(tmp_path_factory):
    from components.render import render_stack

    out = tmp_path_factory.mktemp("litellm")
    return render_stack("small-dev", out / "r", extra_config={"tierscale:gateway": '{"kind": "litellm", "port": 8000}'})


def test_rendered_litellm_cannot_terminate_tls(rendered_litellm):
    """rules.py refuses security.tls with gateway.kind litellm because the rendered LiteLLM
    container gets no certificate: when it does, this fails and the refusal must go."""
    compose = (rendered_litellm.out_dir / "compose" / "compose.yaml").read_text() \
        if (rendered_litellm.out_dir / "compose" / "compose.yaml").exists() else \
        next(p.read_text() for p in rendered_litellm.out_dir.rglob("compose*.y*ml"))
    assert "litellm/config.yaml" in compose  # the LiteLLM gateway is what was rendered
    assert "ssl_keyfile" not in compose and "ssl_certfile" not in compose and "/tls" not in compose


def test_rendered_litellm_ignores_connect_timeout_and_body_size(rendered_litellm):
    """rules.py refuses gateway.connectTimeoutS / maxRequestBodyMb with LiteLLM: its config sets neither."""
    config = (rendered_litellm.out_dir / "litellm" / "config.yaml").read_text() \
        if (rendered_litellm.out_dir / "litellm" / "config.yaml").exists() else \
        next(p.read_text() for p in rendered_litellm.out_dir.rglob("litellm*/config.yaml"))
    assert "model_list" in config
    assert "max_request_size_mb" not in config and "connect_timeout" not in config


def test_rendered_nginx_has_no_fallback():
    """rules.py refuses gateway.fallbackModel on nginx: the template has no fallback upstream."""
    from components.paths import REPO_ROOT

    conf = (REPO_ROOT / "templates" / "gateway" / "nginx.conf.j2").read_text()
    router = (REPO_ROOT / "templates" / "gateway" / "model_router.js").read_text()
    assert "fallback_model" not in conf and "fallbackModel" not in router and "fallback_model" not in router


MEDIUM = {
    "tier": "medium",
    "target": {"kind": "kubernetes", "gpuNodes": 4, "namespace": "inference"},
    "gpu": {"type": "h100-80gb", "perNode": 8},
    "models": [{"id": "meta-llama/Llama-3.1-8B-Instruct", "name": "llama-8b", "replicas": 2}],
    "slo": {"expectedQps": 2, "availability": 99.0},
    "security": {"apiAuth": True},
}


def warnings_of(config: dict) -> dict[str, str]:
    return {w.path: w.message for w in load_spec(config, require_secrets=False).warnings}


def test_httproute_with_the_ingress_nginx_namespace_warns():
    config = copy.deepcopy(MEDIUM)
    config["platform"] = {"routing": {"kind": "httproute"}}
    warned = warnings_of(config)
    assert "ingress-nginx implements Ingress only" in warned["platform.routing.controllerNamespace"]
    config["platform"]["routing"]["controllerNamespace"] = "gateway-system"
    assert "platform.routing.controllerNamespace" not in warnings_of(config)


def test_medium_auth_off_on_a_published_name_warns():
    config = copy.deepcopy(MEDIUM)
    config["security"] = {"apiAuth": False, "tls": {"enabled": True, "hostname": "llm.example.com",
                                                     "clusterIssuer": "letsencrypt"}}
    assert "anyone who reaches it" in warnings_of(config)["security.apiAuth"]
    config["security"]["apiAuth"] = True
    assert "security.apiAuth" not in warnings_of(config)


def test_eight_sxm_gpus_without_nvswitch_warns():
    config = {
        "tier": "baremetal",
        "target": {"kind": "baremetal", "hosts": [{"name": "gpu-a", "address": "10.0.0.1", "gpus": 8, "models": ["llama-8b"]}]},
        "gpu": {"type": "h100-80gb", "perNode": 8},
        "models": [{"id": "meta-llama/Llama-3.1-8B-Instruct", "name": "llama-8b", "replicas": 1}],
        "slo": {"expectedQps": 2, "availability": 99.0},
        "security": {"apiAuth": True},
    }
    assert "fabric manager" in warnings_of(config)["target.hosts[0].nvswitch"]
    config["target"]["hosts"][0]["nvswitch"] = True
    assert "target.hosts[0].nvswitch" not in warnings_of(config)
    config["target"]["hosts"][0].update(nvswitch=False, gpus=4)  # a 4-GPU HGX board links GPUs directly
    assert "target.hosts[0].nvswitch" not in warnings_of(config)
