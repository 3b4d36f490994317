"""Run the Pulumi program under Pulumi's mock runtime and record every registration.

We subclass Pulumi's MockMonitor rather than only implementing `Mocks.new_resource` because
the monitor sees the whole request: parent, dependencies, provider, and which inputs are
secret (they arrive wrapped), which `resources.json` and the graph tests need.
"""

from __future__ import annotations

import asyncio

from dataclasses import dataclass
from typing import Any, Callable

import pulumi
from pulumi.runtime import mocks, rpc, settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

SECRET_MASK = "[secret]"


def mask_secrets(value: Any) -> Any:
    """Replace every secret-wrapped value with SECRET_MASK; normalise integral floats."""
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            return SECRET_MASK
        return {k: mask_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


@dataclass
class Registered:
    urn: str
    type: str
    name: str
    parent: str
    custom: bool
    provider: str
    dependencies: list[str]
    inputs: dict[str, Any]

    def to_json(self) -> dict:
        return {
            "urn": self.urn, "type": self.type, "name": self.name, "parent": self.parent or None,
            "custom": self.custom, "provider": self.provider or None,
            "dependencies": self.dependencies, "inputs": self.inputs,
        }


class _EchoMocks(pulumi.runtime.Mocks):
    """Resources echo their inputs as state; ids are deterministic."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        outputs = dict(args.inputs)
        if args.typ == "random:index/randomPassword:RandomPassword":
            # Offline there is no provider to generate it; a fixed marker shows where it goes.
            outputs["result"] = "<generated-at-deploy>"
        # Provider-computed attributes other resources consume, as visible placeholders.
        if args.typ.startswith("aws:"):
            outputs.setdefault("arn", f"arn:aws:offline::000000000000:{args.name}")
            outputs.setdefault("name", args.name)
        if args.typ == "aws:eks/cluster:Cluster":
            outputs["endpoint"] = f"https://{args.name}.eks.offline.invalid"
            outputs["certificateAuthority"] = {"data": "T0ZGTElORS1DQQ=="}
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs):
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            # Offline stand-in for the region's zones (render only; `pulumi up` asks AWS).
            return {"names": [f"offline-az-{c}" for c in "abcdef"], "zoneIds": [f"az{i}" for i in range(1, 7)]}
        return {}


class RecordingMonitor(mocks.MockMonitor):
    def __init__(self):
        super().__init__(_EchoMocks())
        self.registered: list[Registered] = []
        self.stack_outputs: dict[str, Any] = {}

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            self.registered.append(Registered(
                urn=response.urn, type=request.type, name=request.name, parent=request.parent,
                custom=bool(request.custom), provider=request.provider,
                dependencies=list(request.dependencies),
                inputs=mask_secrets(rpc.deserialize_properties(request.object)),
            ))
        return response

    def RegisterResourceOutputs(self, request):
        if "::pulumi:pulumi:Stack::" in request.urn:
            self.stack_outputs = mask_secrets(rpc.deserialize_properties(request.outputs))
        return super().RegisterResourceOutputs(request)


def run_with_mocks(project: str, stack: str, config: dict[str, str], secret_keys: set[str],
                   program: Callable[[], Any]) -> tuple[Any, RecordingMonitor]:
    """Run `program` as a Pulumi program; return its result and the recording monitor."""
    # Pulumi's runtime uses the thread's current event loop; asyncio.run() elsewhere in the
    # same process (tests, callers) leaves none set.
    try:
        asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())
    settings.set_root_resource(None)
    monitor = RecordingMonitor()
    mocks.set_mocks(_EchoMocks(), project=project, stack=stack, preview=False, monitor=monitor)
    pulumi.runtime.set_all_config(config, sorted(secret_keys))
    settings.SETTINGS.rpc_manager.clear()
    settings.SETTINGS.outputs.clear()
    box: dict[str, Any] = {}

    def body():
        box["result"] = program()
        # set_mocks finished the root stack before the program ran; finishing it again sends
        # the exports through RegisterResourceOutputs, where secrets are still wrapped.
        root = settings.get_root_resource()
        root._outputs_registered = False
        root._finish()

    _sync_await(run_pulumi_func(body))
    return box.get("result"), monitor
