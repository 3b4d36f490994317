"""mkdocs hook: the reference pages are generated from the code at every build, never by hand.

`mkdocs build --strict` (make docs, and tests/docs/test_site.py in CI) runs `on_pre_build`
first, which writes `docs/reference/generated/*.md` from:

- the typer app (`components/cli.py`): every command's own `--help`;
- the pins file (`components/pins.yaml`): images, charts, packages with their sources;
- the alert rules (`components/observability/alerts.py`) for the default SLO;
- the Ansible roles' `meta/argument_specs.yml`;
- the stack spec (`components/spec/model.py`): a JSON Schema for editors
  (`stack.schema.json`, also published as a page asset).

The generated folder is git-ignored, so it cannot drift from the code it describes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "reference" / "generated"


def _cli() -> str:
    import click
    import typer
    from typer.testing import CliRunner

    from components.cli import app

    root = typer.main.get_command(app)
    runner = CliRunner()
    parts = ["# CLI reference", "",
             "Generated from the typer app in `components/cli.py`: each block is that command's own `--help`.", ""]

    def walk(cmd, path: list[str]) -> None:
        result = runner.invoke(app, path + ["--help"], prog_name="tierscale", terminal_width=100,
                               env={"COLUMNS": "100", "NO_COLOR": "1"})
        parts.extend([f"## `{' '.join(['tierscale'] + path)}`", "", "```text", result.output.rstrip(), "```", ""])
        if hasattr(cmd, "list_commands"):  # a group (typer vendors its own click classes)
            ctx = type(cmd).context_class(cmd) if hasattr(type(cmd), "context_class") else click.Context(cmd)
            for name in sorted(cmd.list_commands(ctx)):
                walk(cmd.get_command(ctx, name), path + [name])

    walk(root, [])
    return "\n".join(parts)


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _pins() -> str:
    import yaml

    data = yaml.safe_load((ROOT / "components" / "pins.yaml").read_text())
    parts = ["# Pinned versions", "", "Generated from `components/pins.yaml`, the one file that spells a version.", ""]
    for section, entries in data.items():
        if not isinstance(entries, dict):
            continue
        parts.extend([f"## {section}", "", "| name | pin | source |", "|---|---|---|"])
        for name, entry in entries.items():
            if isinstance(entry, dict):
                pin = {k: v for k, v in entry.items() if k != "source"}
                shown = ", ".join(f"{k}: {v}" for k, v in pin.items())
                parts.append(f"| `{_cell(name)}` | {_cell(shown)} | {_cell(entry.get('source', ''))} |")
            else:
                parts.append(f"| `{_cell(name)}` | {_cell(entry)} | |")
        parts.append("")
    return "\n".join(parts)


def _alerts() -> str:
    from components.observability.alerts import alert_rules
    from components.spec.model import SloSpec

    slo = SloSpec()
    parts = ["# Alert rules", "",
             f"Generated from `components/observability/alerts.py` for the default objectives "
             f"(TTFT p99 {slo.ttft_p99_ms} ms, TPOT p99 {slo.tpot_p99_ms} ms); thresholds follow each stack's `slo`.", "",
             "| alert | severity | for | summary |", "|---|---|---|---|"]
    rules = alert_rules(slo)
    for rule in rules:
        parts.append(f"| `{rule.alert}` | {rule.severity} | {rule.for_} | {_cell(rule.summary)} |")
    parts.append("")
    for rule in rules:
        parts.extend([f"## {rule.alert}", "", _cell(rule.description), "", "```promql", rule.expr, "```", ""])
    return "\n".join(parts)


def _roles() -> str:
    import yaml

    parts = ["# Ansible role variables", "",
             "Generated from each role's `meta/argument_specs.yml` (Ansible validates the same file before the role runs).", ""]
    for spec_file in sorted((ROOT / "ansible" / "roles").glob("*/meta/argument_specs.yml")):
        role = spec_file.parent.parent.name
        main = (yaml.safe_load(spec_file.read_text()) or {}).get("argument_specs", {}).get("main", {})
        parts.extend([f"## {role}", "", _cell(main.get("short_description", "")), "",
                      "| variable | type | default | description |", "|---|---|---|---|"])
        for name, opt in (main.get("options") or {}).items():
            default = opt.get("default", "required" if opt.get("required") else "")
            parts.append(f"| `{name}` | {_cell(opt.get('type', 'str'))} | `{_cell(json.dumps(default))}` | "
                         f"{_cell(opt.get('description', ''))} |")
        parts.append("")
    return "\n".join(parts)


def _schema() -> str:
    from components.spec.model import StackSpec

    return json.dumps(StackSpec.model_json_schema(by_alias=True), indent=2, sort_keys=True)


def generate() -> list[Path]:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    OUT.mkdir(parents=True, exist_ok=True)
    pages = {"cli.md": _cli(), "pins.md": _pins(), "alerts.md": _alerts(), "ansible-roles.md": _roles(),
             "stack.schema.json": _schema()}
    written = []
    for name, text in pages.items():
        path = OUT / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        written.append(path)
    return written


def on_pre_build(config, **kwargs) -> None:  # mkdocs hook
    # mkdocs lives in its own venv (.venv-docs, requirements-docs.lock); the pages are generated
    # by the project's venv, which has the code's dependencies (TIERSCALE_PYTHON overrides it).
    import os
    import subprocess

    python = os.environ.get("TIERSCALE_PYTHON", str(ROOT / "venv" / "bin" / "python"))
    subprocess.run([python, str(Path(__file__).resolve())], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)  # stderr shows why it failed


if __name__ == "__main__":
    for p in generate():
        print(p.relative_to(ROOT))
