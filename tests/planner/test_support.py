"""The one table of what vLLM runs where (components/planner/support.py) matches vLLM's source
at the pinned version, and the planner and the stack validator both answer from it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from components.facts import gpu_catalog, model_catalog
from components.planner import search, support
from components.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
QUANT = next(ROOT.glob(".venv-vllm/lib/python3*/site-packages/vllm/model_executor/layers/quantization"), None)


def test_pinned_version_is_the_deployed_image():
    pins = yaml.safe_load((ROOT / "components" / "pins.yaml").read_text())
    text = yaml.safe_dump(pins)
    assert f"vllm/vllm-openai:{support.PINNED_VLLM}" in text


@pytest.mark.skipif(QUANT is None, reason=".venv-vllm (make setup) holds the pinned vLLM source")
@pytest.mark.parametrize("quant,path", [("fp8", "fp8.py"), ("awq", "auto_awq.py"), ("gptq", "auto_gptq.py"),
                                        ("mxfp4", "mxfp4.py"),
                                        ("int8", "compressed_tensors/schemes/compressed_tensors_w8a8_int8.py")])
def test_min_capability_is_vllms(quant, path):
    source = (QUANT / path).read_text()
    found = re.search(r"def get_min_capability\(cls\)[^\n]*\n(?:(?!\n    def )[\s\S])*?return (\d+)", source)
    assert found, path
    major, minor = divmod(int(found.group(1)), 10)
    assert support.TABLE[quant].min_capability == (major, minor)


@pytest.mark.skipif(QUANT is None, reason=".venv-vllm (make setup) holds the pinned vLLM source")
def test_fp8_w8a8_needs_89_and_marlin_covers_below():
    assert "return 89" in (QUANT / "compressed_tensors/schemes/compressed_tensors_w8a8_fp8.py").read_text()
    assert "has_device_capability(75)" in (QUANT / "utils/marlin_utils_fp8.py").read_text()
    assert support.TABLE["fp8"].native_from == (8, 9)


def test_planner_and_stack_validator_agree_on_fp8_on_ampere():
    a100 = gpu_catalog()["a100-80gb"]
    assert search.quantization_problem(model_catalog()["llama-3.1-70b"], "fp8", a100) is None
    assert support.compute_dtype("fp8", a100) == "bf16" and support.note("fp8", a100)
    stack = load_spec({
        "tier": "small", "target": {"kind": "docker-host"}, "gpu": {"type": "a100-80gb", "perNode": 8},
        "models": [{"id": "llama-3.1-8b", "name": "llama-8b", "quantization": "fp8", "replicas": 1}],
        "slo": {"expectedQps": 1, "availability": 99.0}, "security": {"apiAuth": False},
    }, require_secrets=False)
    assert stack.models[0].quantization == "fp8"


def test_a_format_without_a_checkpoint_is_refused_by_both():
    problem = search.quantization_problem(model_catalog()["llama-3.1-70b"], "awq", gpu_catalog()["h100-80gb"])
    assert problem and "checkpoint" in problem
    from components.spec import SpecError
    with pytest.raises(SpecError) as exc:
        load_spec({
            "tier": "small", "target": {"kind": "docker-host"}, "gpu": {"type": "h100-80gb", "perNode": 8},
            "models": [{"id": "llama-3.1-8b", "name": "llama-8b", "quantization": "awq", "replicas": 1}],
            "slo": {"expectedQps": 1, "availability": 99.0}, "security": {"apiAuth": False},
        }, require_secrets=False)
    assert "models[0].quantization" in str(exc.value)
