"""Run `vllm serve` argument lists through the installed vLLM's own parser and config builder.

Runs under the vLLM virtualenv (`.venv-vllm/bin/python`), one process for every list (vLLM's
import takes 10-30 s on 2 cores, so never one process per list). It imports nothing from
tierscale; components/validate/vllm_parser.py collects the lists from the rendered files and
starts it:

    .venv-vllm/bin/python components/validate/vllm_cli.py REQUEST.json RESULT.json

REQUEST.json: {"model": <tiny model directory>, "lists": [{"key": ..., "argv": [...]}, ...]}
`argv` is what follows `vllm serve`. For each list, in the order `vllm serve` itself works
(vllm/entrypoints/cli/main.py main() and vllm/entrypoints/cli/serve.py @ v0.32.0):

1. parse: the `serve` subparser the CLI builds (ServeSubcommand.subparser_init ->
   make_arg_parser), so an unknown, renamed or mistyped flag is argparse's own error
   ("unrecognized arguments: --foo", "argument --max-model-len: invalid ... value");
2. validate: ServeSubcommand.validate (validate_parsed_serve_args), as the CLI does;
3. build: AsyncEngineArgs.from_cli_args(args).create_engine_config(...), the engine
   configuration `vllm serve` builds before it starts anything, with the model swapped for the
   tiny local one (no download: HF_HUB_OFFLINE=1). On the CPU build some settings cannot be
   built (tensor/pipeline parallel sizes and multi-node ranks need as many devices, GPU
   quantization kernels, fp8 KV cache, the Run:ai streamer loader, a speculative draft model
   that would be downloaded). When the build fails, it is retried once with exactly those
   settings reset to their defaults: if that build passes, the list is reported as "built
   without <settings>" with the first error (the honest limit of a CPU check); if it fails
   too, the list fails.

RESULT.json: [{"key", "stage": "ok" | "parse" | "validate" | "build", "error", "reset",
"reset_error"}, ...] plus {"vllm": <version>} first.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys

# Settings the CPU build cannot build (see the module docstring): attributes of the parsed
# Namespace, reset to the parser's own defaults for the retry.
CPU_UNBUILDABLE = ("tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size", "nnodes", "node_rank",
                   "headless", "quantization", "kv_cache_dtype", "load_format", "model_loader_extra_config",
                   "speculative_config")


def _serve_parser():
    from vllm.entrypoints.cli.serve import ServeSubcommand
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    top = FlexibleArgumentParser(prog="vllm")
    subparsers = top.add_subparsers(required=False, dest="subparser")
    command = ServeSubcommand()
    command.subparser_init(subparsers)
    return top, command


def _parse(top, argv: list[str]):
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return top.parse_args(["serve", *argv]), None
    except SystemExit:
        lines = [ln for ln in err.getvalue().strip().splitlines() if ln.strip()]
        # argparse prints the usage, then "vllm serve: error: <message>"
        message = next((ln.split("error: ", 1)[1] for ln in lines if "error: " in ln), lines[-1] if lines else "exit")
        return None, message


def _build(args, model: str) -> None:
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.usage.usage_lib import UsageContext

    args.model = model
    args.model_tag = model
    args.tokenizer = None
    engine_args = AsyncEngineArgs.from_cli_args(args)
    engine_args.create_engine_config(usage_context=UsageContext.OPENAI_API_SERVER,
                                     headless=bool(getattr(args, "headless", False)))


def _error(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}".strip()
    return " ".join(text.split())[:400]


def check(item: dict, model: str, top, command, defaults) -> dict:
    result = {"key": item["key"], "stage": "ok", "error": "", "reset": [], "reset_error": ""}
    args, message = _parse(top, item["argv"])
    if args is None:
        result.update(stage="parse", error=message)
        return result
    if getattr(args, "model_tag", None) is not None:
        args.model = args.model_tag  # ServeSubcommand.cmd does this first
    try:
        command.validate(args)
    except Exception as e:  # noqa: BLE001 - vLLM raises ValueError/TypeError/...
        result.update(stage="validate", error=_error(e))
        return result
    try:
        _build(args, model)
        return result
    except Exception as first:  # noqa: BLE001
        first_error = _error(first)
    args, _ = _parse(top, item["argv"])
    reset = [name for name in CPU_UNBUILDABLE if getattr(args, name, None) != getattr(defaults, name, None)]
    if not reset:
        result.update(stage="build", error=first_error)
        return result
    for name in reset:
        setattr(args, name, getattr(defaults, name))
    try:
        _build(args, model)
        result.update(reset=reset, reset_error=first_error)
    except Exception as e:  # noqa: BLE001
        result.update(stage="build", error=first_error, reset=reset, reset_error=_error(e))
    return result


def main() -> None:
    request_file, result_file = sys.argv[1:3]
    for name, value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"), ("VLLM_NO_USAGE_STATS", "1"),
                        ("VLLM_LOGGING_LEVEL", "ERROR")):
        os.environ.setdefault(name, value)
    request = json.loads(open(request_file).read())
    import vllm

    top, command = _serve_parser()
    defaults, _ = _parse(top, [request["model"]])
    results: list[dict] = [{"vllm": vllm.__version__}]
    for item in request["lists"]:
        with contextlib.redirect_stdout(io.StringIO()):
            results.append(check(item, request["model"], top, command, defaults))
    with open(result_file, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
