"""How `tierscale migrate run` brings the destination stack up: a driver interface.

    class StackDriver(Protocol):
        def check(self) -> None                   # can it run at all? (before anything changes)
        def up(self, stack: str) -> dict          # deploy (idempotent), return outputs()
        def outputs(self, stack: str) -> dict     # {"endpoints": {model: [base URLs]}, ...}
        def apply(self, stack: str, manifests)    # apply Kubernetes objects (HTTPRoute weights)
        def read(self, stack: str) -> list | None # what apply put in force (None: cannot read back)

`endpoints` lists, per model name, the base URLs of the replicas the run warms up and shifts
traffic to (host:port for the nginx split is taken from them). `up` must be idempotent, like
`pulumi up`: `run --resume` calls it again.

Implementations:
- `PulumiDriver`: Pulumi's Automation API (`pulumi.automation`) on this project's stacks. It
  drives the Pulumi CLI, so without `pulumi` on PATH every call fails with `DriverError` naming
  the missing CLI; nothing is pretended.
- `LocalStubDriver`: for rehearsals and CI. "Deploys" a stack as OpenAI-stub processes on
  127.0.0.1 (components/migration/stub_replica.py, vLLM's metric names), one per replica (capped),
  detached so they outlive the run (as a real deployment would), recorded in a state file so
  `up` is idempotent, and written as a Prometheus file_sd target list (`targets.json`) with
  the configured labels so the gates' selectors find them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Protocol

import httpx

from components import paths


class DriverError(RuntimeError):
    """The destination could not be brought up (the message says why and what to do)."""


class StackDriver(Protocol):
    def check(self) -> None:
        ...

    def up(self, stack: str) -> dict:
        ...

    def outputs(self, stack: str) -> dict:
        ...

    def apply(self, stack: str, manifests: list[dict]) -> None:
        ...


PULUMI_MISSING = ("the Pulumi CLI (`pulumi`) is not installed or not on PATH: `migrate run` brings the "
                  "destination up through Pulumi's Automation API (pulumi.automation), which drives that CLI. "
                  "Install it (https://www.pulumi.com/docs/iac/download-install/), `pulumi login --local`, "
                  "then run again; or rehearse with --driver local-stubs")


@dataclass
class PulumiDriver:
    """`pulumi up` of a stack of this project through the Automation API (local program)."""

    work_dir: Path = paths.REPO_ROOT
    on_output: object = print

    def _require_cli(self) -> None:
        if shutil.which("pulumi") is None:
            raise DriverError(PULUMI_MISSING)

    def check(self) -> None:
        self._require_cli()

    def _stack(self, stack: str):
        self._require_cli()
        from pulumi import automation as auto

        try:
            return auto.select_stack(stack_name=stack, work_dir=str(self.work_dir))
        except auto.errors.CommandError as e:
            raise DriverError(f"pulumi: cannot select stack {stack}: {e}") from e

    def up(self, stack: str) -> dict:
        s = self._stack(stack)
        from pulumi import automation as auto

        try:
            s.up(on_output=self.on_output)
        except auto.errors.CommandError as e:
            raise DriverError(f"pulumi up --stack {stack} failed: {e}") from e
        return self.outputs(stack)

    def outputs(self, stack: str) -> dict:
        values = {k: v.value for k, v in self._stack(stack).outputs().items()}
        # The program exports `endpoint` per tier component; a stack whose program exports
        # per-replica `endpoints` gets each replica warmed up on its own.
        if "endpoints" not in values and "endpoint" in values:
            base = str(values["endpoint"]).removesuffix("/v1")
            values["endpoints"] = {name: [base] for name in (values.get("models") or {})}
        return values

    def apply(self, stack: str, manifests: list[dict]) -> None:
        """Apply Kubernetes objects (the weighted HTTPRoute) as their own small inline Pulumi
        stack `<stack>-traffic`, so the weights are tracked state too."""
        self._require_cli()
        from pulumi import automation as auto

        def program():
            import pulumi_kubernetes as k8s

            for obj in manifests:
                k8s.yaml.v2.ConfigGroup(f"{obj['kind'].lower()}-{obj['metadata']['name']}", objs=[obj])

        try:
            s = auto.create_or_select_stack(stack_name=f"{stack}-traffic", project_name="tierscale-traffic",
                                            program=program)
            s.up(on_output=self.on_output)
        except auto.errors.CommandError as e:
            raise DriverError(f"pulumi up of the traffic weights for {stack} failed: {e}") from e

    def read(self, stack: str) -> Optional[list[dict]]:
        """Not implemented for Pulumi: the applied weights cannot be read back through it, so
        the run reports a rollback on this driver as applied but unverified."""
        return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


STUB = Path(__file__).with_name("stub_replica.py")


@dataclass
class LocalStubDriver:
    """Stub replicas on 127.0.0.1 standing in for a stack (see the module docstring).

    Settings come from the constructor or `<state_dir>/driver.json`: `replicas` (cap per
    model, default 2), `ttft_ms`, `itl_ms`, `labels` for Prometheus (default
    {"deployment": "dst"})."""

    state_dir: Path
    stacks_dir: Path = paths.STACKS_DIR
    replicas: int = 2
    ttft_ms: float = 20
    itl_ms: float = 2
    labels: dict = field(default_factory=lambda: {"deployment": "dst"})
    api_key: Optional[str] = None

    def __post_init__(self) -> None:
        self.state_dir = Path(self.state_dir)
        settings = self.state_dir / "driver.json"
        if settings.exists():
            for key, value in json.loads(settings.read_text()).items():
                if key not in ("replicas", "ttft_ms", "itl_ms", "labels"):
                    raise DriverError(f"{settings}: unknown setting {key!r}")
                setattr(self, key, value)

    def check(self) -> None:
        if not STUB.exists():
            raise DriverError(f"local-stubs needs {STUB} (a checkout of this repository)")

    def _state_path(self, stack: str) -> Path:
        return self.state_dir / f"{stack}.json"

    def _state(self, stack: str) -> Optional[dict]:
        path = self._state_path(stack)
        return json.loads(path.read_text()) if path.exists() else None

    def _healthy(self, state: dict) -> bool:
        for replica in state["replicas"]:
            if not _alive(replica["pid"]):
                return False
            try:
                if httpx.get(f"{replica['url']}/health", timeout=2).status_code != 200:
                    return False
            except httpx.HTTPError:
                return False
        return True

    def up(self, stack: str) -> dict:
        from components.spec.stack_file import load_stack

        state = self._state(stack)
        if state and self._healthy(state):
            return self.outputs(stack)  # already up: nothing to change
        if state:
            self.down(stack)
        resolved = load_stack(stack, self.stacks_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        replicas = []
        for m in resolved.models:
            for i in range(min(m.min_replicas, self.replicas)):
                port = _free_port()
                name = f"{stack}-{m.name}-{i}"
                log = open(self.state_dir / f"{name}.log", "ab")
                proc = subprocess.Popen(
                    [sys.executable, str(STUB), "--port", str(port), "--name", name,
                     "--served-model-name", m.served_model_name, "--ttft-ms", str(self.ttft_ms),
                     "--itl-ms", str(self.itl_ms), "--backlog", "128"],
                    env=dict(os.environ, VLLM_API_KEY=self.api_key or ""), stdout=log, stderr=log,
                    start_new_session=True)  # outlives `migrate run`, like a real deployment
                replicas.append({"model": m.name, "name": name, "pid": proc.pid, "url": f"http://127.0.0.1:{port}"})
        self._write(stack, {"stack": stack, "replicas": replicas})
        deadline = time.monotonic() + 30
        for r in replicas:
            while True:
                try:
                    if httpx.get(f"{r['url']}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise DriverError(f"stub replica {r['name']} did not come up (log: {self.state_dir / r['name']}.log)")
                time.sleep(0.05)
        targets = [{"targets": [r["url"].removeprefix("http://")], "labels": dict(self.labels, model=r["model"], replica=r["name"])}
                   for r in replicas]
        self._atomic(self.state_dir / "targets.json", json.dumps(targets, indent=1))
        return self.outputs(stack)

    def outputs(self, stack: str) -> dict:
        state = self._state(stack)
        if state is None:
            raise DriverError(f"stack {stack} is not up (no {self._state_path(stack)})")
        endpoints: dict[str, list[str]] = {}
        for r in state["replicas"]:
            endpoints.setdefault(r["model"], []).append(r["url"])
        return {"endpoints": endpoints, "replicas": state["replicas"]}

    def apply(self, stack: str, manifests: list[dict]) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._atomic(self.state_dir / f"{stack}-applied.json", json.dumps(manifests, indent=1))

    def read(self, stack: str) -> Optional[list[dict]]:
        """The objects `apply` put in force (what a rehearsal's cluster holds)."""
        path = self.state_dir / f"{stack}-applied.json"
        return json.loads(path.read_text()) if path.exists() else []

    def down(self, stack: str) -> None:
        state = self._state(stack)
        for r in (state or {}).get("replicas", []):
            if _alive(r["pid"]):
                try:
                    os.kill(r["pid"], signal.SIGTERM)
                except OSError:
                    pass
        self._state_path(stack).unlink(missing_ok=True)

    def _write(self, stack: str, state: dict) -> None:
        self._atomic(self._state_path(stack), json.dumps(state, indent=1))

    @staticmethod
    def _atomic(path: Path, text: str) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)


DRIVERS = ("pulumi", "local-stubs")
