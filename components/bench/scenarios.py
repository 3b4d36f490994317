"""Scenario files: a named list of load runs with shared SLO thresholds (benchmarks/scenarios/)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import math

import yaml

from components import paths, yaml12
from components.suggestions import suggestion

SCENARIO_DIR = paths.REPO_ROOT / "benchmarks" / "scenarios"
RUN_KEYS = {"name": str, "concurrency": int, "rate": (int, float, str), "burstiness": (int, float), "dataset": str,
            "prompt_tokens": int, "output_tokens": int, "duration": (int, float), "requests": int, "warmup": int,
            "stop_error_rate": (int, float), "time_scale": (int, float), "thresholds": dict}
THRESHOLD_KEYS = ("ttft_p99_ms", "tpot_p99_ms", "max_error_rate")
# The ranges `tierscale bench` accepts for the same values given as options (command._check):
# (lowest, whether the lowest itself is allowed, highest or None). A count of 0 requests or
# users, a 0 rate or time scale (arrival gaps divide by them) or an error rate of 5 meaning 5%
# would run something other than what the file says, or fail mid-run.
RANGES = {"concurrency": (1, True, None), "rate": (0, False, None), "burstiness": (0, False, None),
          "prompt_tokens": (1, True, None), "output_tokens": (1, True, None), "duration": (0, False, None),
          "requests": (1, True, None), "warmup": (0, True, None), "stop_error_rate": (0, True, 1),
          "time_scale": (0, False, None), "ttft_p99_ms": (0, True, None), "tpot_p99_ms": (0, True, None),
          "max_error_rate": (0, True, 1)}


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
        data = yaml12.load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ScenarioError(f"{where}: cannot read {path}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ScenarioError(f"{where}: {path} is not UTF-8 text (byte {e.start})") from None
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
    names: dict[str, int] = {}
    for i, item in enumerate(data["scenarios"]):
        at = f"{where}: scenarios[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"].strip():
            raise ScenarioError(f"{at}.name: each scenario is a mapping with a non-empty `name`")
        if item["name"] in names:
            raise ScenarioError(f"{at}.name: {item['name']!r} is already scenarios[{names[item['name']]}]; "
                                "FILE:NAME picks one scenario by name, so names must be unique")
        names[item["name"]] = i
        for key, value in item.items():
            kind = RUN_KEYS.get(key)
            if kind is None:
                raise ScenarioError(f"{at} ({item['name']}): unknown key {key!r}{suggestion(key, RUN_KEYS)} "
                                    f"(known: {', '.join(sorted(RUN_KEYS))})")
            if isinstance(value, bool) or not isinstance(value, kind):
                raise ScenarioError(f"{at} ({item['name']}).{key}: {value!r} has the wrong type "
                                    f"(a {_kind_name(kind)})")
            if key in RANGES and not isinstance(value, str):
                _in_range(value, RANGES[key], f"{at} ({item['name']}).{key}")
        if isinstance(item.get("rate"), str) and item["rate"] != "expected_qps":
            raise ScenarioError(f"{at} ({item['name']}).rate: a number or 'expected_qps' (got {item['rate']!r})")
        if "duration" in item and "requests" in item:
            raise ScenarioError(f"{at} ({item['name']}).duration: give duration or requests, not both (the run ends "
                                "after that many seconds or requests)")
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
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ScenarioError(f"{where}.{key}: a number >= 0 (got {value!r})")
        _in_range(value, RANGES[key], f"{where}.{key}")
    return dict(raw)


def _kind_name(kind) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {int: "whole number", float: "number", str: "string", dict: "mapping"}
    return " or ".join(dict.fromkeys(names[k] for k in kinds))


def _in_range(value, bounds: tuple, where: str) -> None:
    low, inclusive, high = bounds
    if isinstance(value, float) and not math.isfinite(value):
        raise ScenarioError(f"{where}: a finite number (got {value!r})")
    if value < low or (value == low and not inclusive) or (high is not None and value > high):
        allowed = f"{'>=' if inclusive else '>'} {low}" + (f" and <= {high} (a fraction: 0.01 is 1%)" if high else "")
        raise ScenarioError(f"{where}: must be {allowed} (got {value!r})")
