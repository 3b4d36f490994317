"""Every rendered `vllm serve` argument list passes the pinned vLLM's own parser and engine-config
builder (components/validate/vllm_parser.py), and a renamed flag fails validate naming the stack
key and the flag.

Cost: one real vLLM process (.venv-vllm) for the argument lists of every example stack plus
the flag variants below (15-40 s on 2 shared cores); the other tests read its cached results.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from components import pins
from components.render.stack import render_stack
from components.serving.vllm_args import vllm_serve_args
from components.spec import load_spec
from components.spec.errors import SpecError
from components.validate import vllm_parser
from components.validate.vllm_cli import CPU_UNBUILDABLE
from tests.conftest import run_cli
from tests.support.stacks import EXAMPLE_STACKS

RENAMED = ("--max-num-seqs", "--max-num-sequences")  # what a rename in vllm_args.py would render


RENDER_ERRORS: dict[str, str] = {}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Every example stack rendered; one that does not render is left out here and named by
    test_every_example_stack_renders (its own tests elsewhere say why)."""
    out = tmp_path_factory.mktemp("vllm-parser")
    results = {}
    for name in EXAMPLE_STACKS:
        try:
            results[name] = render_stack(name, out / name)
        except SpecError as e:
            RENDER_ERRORS[name] = str(e)
    return results


def test_every_example_stack_renders(rendered):
    assert not RENDER_ERRORS, RENDER_ERRORS


def _flag_variants() -> list[vllm_parser.ArgList]:
    """Argument lists that reach every branch of vllm_serve_args the example stacks may not."""
    def lists(model: dict, gpu=("h100-80gb", 8), **extra):
        stack = load_spec({"tier": "small", "target": {"kind": "docker-host"}, "gpu": {"type": gpu[0], "perNode": gpu[1]},
                           "models": [{"replicas": 1, **model}], "security": {"apiAuth": False},
                           "slo": {"availability": 99.0, "expectedQps": 0.1}, **extra}, require_secrets=False)
        return vllm_parser.ArgList(f"variant {model}", vllm_serve_args(stack.models[0]))
    return [
        lists({"id": "meta-llama/Llama-3.1-405B-Instruct-FP8", "tensorParallel": 8, "maxModelLen": 8192}),
        lists({"id": "meta-llama/Llama-3.1-8B-Instruct", "quantization": "fp8", "kvCacheDtype": "fp8",
               "enablePrefixCaching": False, "revision": "0e9e39f249a16976918f6564b8830bc894c89659"}),
        lists({"id": "meta-llama/Llama-3.1-8B-Instruct", "speculativeDecoding": {"method": "ngram", "numSpeculativeTokens": 3}}),
    ]


def _renamed(out: Path, tmp: Path) -> Path:
    """A copy of a rendered small stack whose first vLLM service says --max-num-sequences."""
    copy_dir = tmp / "renamed"
    shutil.copytree(out, copy_dir)
    compose = copy_dir / "compose" / "compose.yaml"
    doc = yaml.safe_load(compose.read_text())
    service = next(s for s in doc["services"].values() if s.get("entrypoint") == ["vllm", "serve"])
    service["command"] = [RENAMED[1] if a == RENAMED[0] else a for a in service["command"]]
    compose.write_text(yaml.safe_dump(doc, sort_keys=False))
    return copy_dir


@pytest.fixture(scope="module")
def parser_run(rendered, tmp_path_factory, request):
    """ONE vLLM process for every list of every example stack, the flag variants and the renamed
    list; results cached in a fresh directory the other tests then read."""
    if not vllm_parser.vllm_python().exists():
        pytest.fail(f"{vllm_parser.vllm_python()} missing: make setup creates .venv-vllm")
    cache = tmp_path_factory.mktemp("vllm-arg-cache")
    mp = pytest.MonkeyPatch()
    request.addfinalizer(mp.undo)
    mp.setattr(vllm_parser, "CACHE_DIR", cache)
    mp.setenv("TIERSCALE_VLLM_CHECK_CACHE", str(cache))
    small = rendered["small-dev"]
    renamed = _renamed(small.out_dir, tmp_path_factory.mktemp("renamed"))
    per_stack = {name: vllm_parser.vllm_arguments(r.stack, r.out_dir) for name, r in rendered.items()}
    lists = [a for found, _ in per_stack.values() for a in found] + _flag_variants()
    renamed_lists = vllm_parser.vllm_arguments(small.stack, renamed)[0]
    results = vllm_parser.run_vllm_cli(lists + renamed_lists)
    return {"vllm": results[0]["vllm"], "checked": results[1:len(lists) + 1], "renamed": renamed}


def test_collects_the_argument_lists_of_every_tier(rendered):
    """Compose services, Deployments, both LeaderWorkerSet templates, bare-metal units and every
    large-tier region: each rendered vLLM command is found (no parser needed)."""
    found = {name: vllm_parser.vllm_arguments(r.stack, r.out_dir) for name, r in rendered.items()}
    for name, (lists, problems) in found.items():
        assert lists and not problems, (name, problems)
        assert all(a.key.startswith("models[") for a in lists), [a.key for a in lists]
    compose = yaml.safe_load((rendered["small-dev"].out_dir / "compose/compose.yaml").read_text())
    assert len(found["small-dev"][0]) == sum(s.get("entrypoint") == ["vllm", "serve"] for s in compose["services"].values())
    lws = [a for a in found["medium-405b"][0] if "LeaderWorkerSet/" in a.key]
    assert {("leaderTemplate" in a.key, "--headless" in a.argv) for a in lws} == {(True, False), (False, True)}
    assert all("$(" not in arg for a in lws for arg in a.argv)  # LWS_* stand-ins expanded
    units = [a for a in found["baremetal-405b"][0] if "inventory.yml" in a.key]
    assert len(units) >= 3 and any("--headless" in a.argv for a in units)
    large = next((n for n, r in rendered.items() if r.stack.spec.tier == "large"), None)
    if large:
        regions = {r.name for r in rendered[large].stack.spec.target.regions}
        assert {a.key.split()[2].split("/")[0] for a in found[large][0]} == regions


@pytest.mark.slow
@pytest.mark.live_vllm
def test_every_rendered_argument_list_passes_the_real_parser(parser_run):
    assert parser_run["vllm"] == pins.image("vllm").rsplit(":v", 1)[1], "the CI engine is the deployed version"
    checked = parser_run["checked"]
    failed = [r for r in checked if r["stage"] != "ok"]
    assert not failed, failed
    # Built as rendered, or only without settings the CPU build cannot build (each named).
    assert all(set(r["reset"]) <= set(CPU_UNBUILDABLE) for r in checked), checked
    print(f"\n{len(checked)} lists; built as rendered: {sum(not r['reset'] for r in checked)}; "
          f"built without GPU-only settings: {[(r['key'][:60], r['reset']) for r in checked if r['reset']]}")


@pytest.mark.slow
@pytest.mark.live_vllm
def test_a_renamed_flag_fails_validate_with_the_stack_key_and_the_flag(parser_run, rendered, monkeypatch):
    monkeypatch.setenv("TIERSCALE_VLLM_ARG_CHECK", "1")
    stack = rendered["small-dev"].stack
    bad = vllm_parser.check(stack, parser_run["renamed"])
    assert not bad.ok
    assert "models[0] (" in bad.detail and "compose.yaml services." in bad.detail
    assert f"unrecognized arguments: {RENAMED[1]}" in bad.detail, bad.detail
    good = vllm_parser.check(stack, rendered["small-dev"].out_dir)
    assert good.ok, good.detail
    assert "0 sent to vLLM" in good.detail  # read from the one run above


@pytest.mark.slow
@pytest.mark.live_vllm
def test_tierscale_validate_runs_the_parser_check(parser_run, tmp_path, monkeypatch):
    monkeypatch.setenv("TIERSCALE_VLLM_ARG_CHECK", "1")
    proc = run_cli("validate", "--stack", "small-dev", "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "vLLM argument parser" in proc.stdout
