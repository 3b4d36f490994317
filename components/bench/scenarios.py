"""Scenario files: a named list of load runs with shared SLO thresholds (benchmarks/scenarios/)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import yaml

from components import paths

SCENARIO_DIR = paths.REPO_ROOT / "benchmarks" / "scenarios"
RUN_KEYS = {"name": str, "concurrency": int, "rate": (int, float, str), "burstiness": (int, float), "dataset": str,
            "prompt_tokens": int, "output_tokens": int, "duration": (int, float), "requests": int, "warmup": int,
            "stop_error_rate": (int, float), "time_scale": (int, float), "thresholds": dict}
THRESHOLD_KEYS = ("ttft_p99_ms", "tpot_p99_ms", "max_error_rate")


class ScenarioError(ValueError):
    pass


@dataclass(frozen=True)
class Scenario:
    name: str
    values: dict  # the run keys the file sets
    thresholds: dict = field(default_factory=dict)


def resolve_path(spec: str) -> tuple[Path, Optional[str]]:
    """FILE, FILE:NAME, or a shipped scenario file's stem (`whitepaper`, `whitepaper:stress_test`)."""
    path_part, name = spec, None
    if ":" in spec and not Path(spec).exists():
        path_part, name = spec.rsplit(":", 1)
    path = Path(path_part)
    if not path.exists() and (SCENARIO_DIR / f"{path_part}.yaml").exists():
        path = SCENARIO_DIR / f"{path_part}.yaml"
    return path, name


def load(spec: str) -> list[Scenario]:
    path, only = resolve_path(spec)
    where = f"--scenario {spec}"
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ScenarioError(f"{where}: cannot read {path}: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise ScenarioError(f"{where}: {path} is not valid YAML: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("scenarios"), list) or not data["scenarios"]:
        raise ScenarioError(f"{where}: {path} needs a non-empty `scenarios:` list")
    unknown = set(data) - {"scenarios", "thresholds", "warmup"}
    if unknown:
        raise ScenarioError(f"{where}: unknown top-level key(s) {', '.join(sorted(unknown))}")
    shared = _thresholds(data.get("thresholds") or {}, f"{where}: thresholds")
    warmup = data.get("warmup", 0)
    if not isinstance(warmup, int) or isinstance(warmup, bool) or warmup < 0:
        raise ScenarioError(f"{where}: warmup must be a whole number >= 0 (got {warmup!r})")
    out = []
    for i, item in enumerate(data["scenarios"]):
        at = f"{where}: scenarios[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ScenarioError(f"{at}: each scenario is a mapping with a `name`")
        for key, value in item.items():
            kind = RUN_KEYS.get(key)
            if kind is None:
                raise ScenarioError(f"{at} ({item['name']}): unknown key {key!r} (known: {', '.join(sorted(RUN_KEYS))})")
            if isinstance(value, bool) or not isinstance(value, kind):
                raise ScenarioError(f"{at} ({item['name']}).{key}: {value!r} has the wrong type")
        if isinstance(item.get("rate"), str) and item["rate"] != "expected_qps":
            raise ScenarioError(f"{at} ({item['name']}).rate: a number or 'expected_qps' (got {item['rate']!r})")
        values = {k: v for k, v in item.items() if k not in ("name", "thresholds")}
        values.setdefault("warmup", warmup)
        own = _thresholds(item.get("thresholds") or {}, f"{at}.thresholds")
        out.append(Scenario(item["name"], values, {**shared, **own}))
    if only is not None:
        chosen = [s for s in out if s.name == only]
        if not chosen:
            raise ScenarioError(f"{where}: no scenario named {only!r} in {path} (has: {', '.join(s.name for s in out)})")
        return chosen
    return out


def _thresholds(raw: dict, where: str) -> dict[str, Union[int, float]]:
    if not isinstance(raw, dict):
        raise ScenarioError(f"{where}: a mapping of {', '.join(THRESHOLD_KEYS)}")
    for key, value in raw.items():
        if key not in THRESHOLD_KEYS:
            raise ScenarioError(f"{where}: unknown key {key!r} (known: {', '.join(THRESHOLD_KEYS)})")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ScenarioError(f"{where}.{key}: a number >= 0 (got {value!r})")
    return dict(raw)
