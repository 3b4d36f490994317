"""Run the Pulumi program under Pulumi's mock runtime and record every registration.

We subclass Pulumi's MockMonitor rather than only implementing `Mocks.new_resource` because
the monitor sees the whole request: parent, dependencies, provider, and which inputs are
secret (they arrive wrapped), which `resources.json` and the graph tests need.

Event loops: Pulumi calls the monitor from the default executor's worker threads, and its
MockMonitor gives each such thread an event loop (`_ensure_event_loop`) that nothing ever
closes. An event loop is a reference cycle (its selector holds its own bound methods), so the
abandoned loops were finalized by the garbage collector in arbitrary order at interpreter
exit: when a loop's self-pipe socket went first, `BaseEventLoop.__del__` -> `close()` ->
`remove_reader(-1)` printed `Exception ignored ... ValueError: Invalid file descriptor: -1`.
Here every loop is closed by whoever opened it: each monitor call on a worker thread runs on
a loop of its own that is closed when the call returns, and `run_with_mocks` runs the program
on a private loop that it shuts down (tasks, async generators, executor) and closes.
"""

from __future__ import annotations

import asyncio
import functools
import threading

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


def _closing_thread_loop(method: Callable) -> Callable:
    """Run a monitor call on a worker thread with an event loop of its own, closed afterwards."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        if threading.current_thread() is threading.main_thread():
            return method(self, *args, **kwargs)  # the program's loop, closed by run_with_mocks
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            return method(self, *args, **kwargs)
        finally:
            asyncio.set_event_loop(None)
            loop.close()

    return wrapper


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


# Every RPC the Pulumi runtime can make on the monitor (the methods named like gRPC calls).
for _name in [n for n in dir(mocks.MockMonitor) if n[:1].isupper() and callable(getattr(mocks.MockMonitor, n))]:
    setattr(RecordingMonitor, _name, _closing_thread_loop(getattr(RecordingMonitor, _name)))
del _name


def run_with_mocks(project: str, stack: str, config: dict[str, str], secret_keys: set[str],
                   program: Callable[[], Any]) -> tuple[Any, RecordingMonitor]:
    """Run `program` as a Pulumi program; return its result and the recording monitor.

    The program runs on a private event loop, closed before returning (see the module
    docstring). Called from inside a running loop, it runs on that loop instead."""
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    settings.set_root_resource(None)
    monitor = RecordingMonitor()
    box: dict[str, Any] = {}

    def body():
        box["result"] = program()
        # set_mocks finished the root stack before the program ran; finishing it again sends
        # the exports through RegisterResourceOutputs, where secrets are still wrapped.
        root = settings.get_root_resource()
        root._outputs_registered = False
        root._finish()

    def run() -> None:
        mocks.set_mocks(_EchoMocks(), project=project, stack=stack, preview=False, monitor=monitor)
        pulumi.runtime.set_all_config(config, sorted(secret_keys))
        settings.SETTINGS.rpc_manager.clear()
        settings.SETTINGS.outputs.clear()
        _sync_await(run_pulumi_func(body))

    if running is not None:
        run()
        return box.get("result"), monitor
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        run()
    finally:
        try:
            _shutdown(loop)
        finally:
            asyncio.set_event_loop(None)
            loop.close()
    return box.get("result"), monitor


def _shutdown(loop: asyncio.AbstractEventLoop) -> None:
    """What asyncio.run does before closing its loop: cancel what is left, then wait for it,
    the async generators and the default executor's threads."""
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.run_until_complete(loop.shutdown_default_executor())
