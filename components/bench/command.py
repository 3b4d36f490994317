"""`tierscale bench`: check the options, plan the runs (one, a scenario file's, or a sweep), run
them with a live progress line, print and write the results, and decide the exit code."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from rich.console import Console
from rich.live import Live
from rich.text import Text

from components.bench.metrics import Slo
from components.bench.workload import WorkloadError, load_dataset


class UsageError(ValueError):
    """Bad options or inputs: exit 2, the message names the option."""


@dataclass(frozen=True)
class Options:
    stack: Optional[str] = None
    stacks_dir: Optional[Path] = None
    endpoint: Optional[str] = None
    model: Optional[str] = None
    api_key: Optional[str] = None
    insecure: bool = False
    rate: Optional[float] = None
    burstiness: Optional[float] = None
    concurrency: Optional[int] = None
    duration: Optional[float] = None
    requests: Optional[int] = None
    prompt_tokens: Optional[int] = None
    output_tokens: Optional[int] = None
    dataset: Optional[str] = None
    time_scale: Optional[float] = None
    warmup: Optional[int] = None
    scenario: Optional[str] = None
    sweep: Optional[str] = None
    ttft_p99_ms: Optional[float] = None
    tpot_p99_ms: Optional[float] = None
    max_error_rate: Optional[float] = None
    stop_error_rate: Optional[float] = None
    json_path: Optional[Path] = None        # --out FILE: the report document, written to a file
    as_json: bool = False                   # --json: the report document on stdout (`out` is then stderr)
    report_dir: Optional[Path] = None
    seed: int = 0
    timeout_s: float = 300.0


@dataclass(frozen=True)
class Plan:
    """One load run with every value decided."""
    name: str
    rate: Optional[float]
    burstiness: float
    concurrency: Optional[int]
    duration: Optional[float]
    requests: Optional[int]
    prompt_tokens: int
    output_tokens: int
    dataset: Optional[str]
    time_scale: float
    warmup: int
    stop_error_rate: Optional[float]
    slo: Slo


def _check(opts: Options) -> None:
    def positive(name: str, value, allow_zero: bool = False) -> None:
        if value is None:
            return
        bad = value < 0 if allow_zero else value <= 0
        if bad or (isinstance(value, float) and math.isnan(value)):
            raise UsageError(f"--{name}: must be {'>= 0' if allow_zero else '> 0'} (got {value:g})")

    for name in ("rate", "burstiness", "concurrency", "duration", "requests", "prompt-tokens", "output-tokens",
                 "time-scale", "timeout"):
        positive(name, getattr(opts, name.replace("-", "_") if name != "timeout" else "timeout_s"))
    for name in ("warmup", "ttft-p99-ms", "tpot-p99-ms"):
        positive(name, getattr(opts, name.replace("-", "_")), allow_zero=True)
    for name in ("max-error-rate", "stop-error-rate"):
        value = getattr(opts, name.replace("-", "_"))
        if value is not None and not 0 <= value <= 1:
            raise UsageError(f"--{name}: a fraction from 0 to 1, e.g. 0.01 for 1% (got {value:g})")
    if opts.duration is not None and opts.requests is not None:
        raise UsageError("--duration and --requests: give one (the run ends after that many seconds or requests)")
    if opts.sweep is not None and opts.scenario is not None:
        raise UsageError("--sweep and --scenario: give one")
    if opts.sweep is not None and opts.rate is not None:
        raise UsageError("--sweep and --rate: --sweep already lists the rates")
    if opts.stack is None and (opts.endpoint is None or opts.model is None):
        raise UsageError("--endpoint and --model are required without --stack (or give --stack NAME)")
    if opts.endpoint is not None and not opts.endpoint.startswith(("http://", "https://")):
        raise UsageError(f"--endpoint: an http:// or https:// URL (got {opts.endpoint!r})")


def _sweep_rates(raw: str) -> list[float]:
    try:
        rates = [float(x) for x in raw.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"--sweep: comma-separated request rates, e.g. 1,2,4,8 (got {raw!r})") from None
    if not rates or any(not (r > 0) for r in rates):
        raise UsageError(f"--sweep: comma-separated request rates > 0, e.g. 1,2,4,8 (got {raw!r})")
    return rates


def _scheme(spec) -> str:
    return "https" if spec.security.tls.enabled else "http"


def _small_endpoint(name: str, resolved) -> str:
    spec = resolved.spec
    return f"{_scheme(spec)}://{spec.target.host}:{spec.gateway.port}"


def _medium_endpoint(name: str, resolved) -> str:
    tls = resolved.spec.security.tls
    if not (tls.enabled and tls.hostname):
        raise UsageError(f"--stack {name}: a medium stack without security.tls.hostname has no fixed address; "
                         "pass --endpoint with the Ingress/Gateway address")
    return f"https://{tls.hostname}"


def _large_endpoint(name: str, resolved) -> str:
    """The global name clients use (Route 53 records or the accelerator's DNS name point at the regions)."""
    spec = resolved.spec
    return f"{_scheme(spec)}://{spec.large.global_traffic.domain}"


def _baremetal_endpoint(name: str, resolved) -> str:
    """The first model's vLLM on the first host that serves it (bare metal has no gateway)."""
    from components.serving.vllm_args import VLLM_PORT

    first = resolved.models[0]
    hosts = [h for h in resolved.spec.target.hosts if first.name in h.models] or \
            [h for h in resolved.spec.target.hosts if "inference" in h.roles]
    if not hosts:
        raise UsageError(f"--stack {name}: no inference host serves {first.name}; pass --endpoint")
    return f"http://{hosts[0].address}:{VLLM_PORT}"


# Where each tier's clients send requests (one entry per tier of components/tiers.py; a test
# checks that every tier has one).
_ENDPOINTS = {"small": _small_endpoint, "medium": _medium_endpoint, "large": _large_endpoint,
              "baremetal": _baremetal_endpoint}


def stack_target(name: str, stacks_dir: Optional[Path]) -> dict:
    """The stack's gateway URL, first model's served name, SLO and expected QPS."""
    from components import paths
    from components.spec.stack_file import load_stack

    resolved = load_stack(name, stacks_dir or paths.STACKS_DIR)
    spec = resolved.spec
    url = _ENDPOINTS[spec.tier](name, resolved)
    availability = spec.slo.availability
    return {"endpoint": url, "model": resolved.models[0].served_model_name,
            "slo": Slo(spec.slo.ttft_p99_ms, spec.slo.tpot_p99_ms, round(1 - availability / 100, 6)),
            "expected_qps": spec.slo.expected_qps, "api_auth": spec.security.api_auth}


def plan_runs(opts: Options, stack: Optional[dict]) -> list[Plan]:
    from components.bench import scenarios

    base_slo = stack["slo"] if stack else Slo(max_error_rate=0.01)

    def slo_with(thresholds: dict) -> Slo:
        slo = Slo(thresholds.get("ttft_p99_ms", base_slo.ttft_p99_ms), thresholds.get("tpot_p99_ms", base_slo.tpot_p99_ms),
                  thresholds.get("max_error_rate", base_slo.max_error_rate))
        return Slo(opts.ttft_p99_ms if opts.ttft_p99_ms is not None else slo.ttft_p99_ms,
                   opts.tpot_p99_ms if opts.tpot_p99_ms is not None else slo.tpot_p99_ms,
                   opts.max_error_rate if opts.max_error_rate is not None else slo.max_error_rate)

    def make(name: str, v: dict, thresholds: dict) -> Plan:
        pick = lambda opt, key, default: opt if opt is not None else v.get(key, default)  # noqa: E731
        rate = pick(opts.rate, "rate", None)
        if rate == "expected_qps":
            if not stack:
                raise UsageError(f"--scenario: {name} runs at the stack's expected QPS; give --stack or --rate")
            rate = float(stack["expected_qps"])
        duration, requests = opts.duration, opts.requests
        if duration is None and requests is None:
            duration, requests = v.get("duration"), v.get("requests")
        if duration is None and requests is None:
            requests = 200 if not (opts.dataset or "").lower().endswith(".csv") else None
        concurrency = pick(opts.concurrency, "concurrency", None)
        dataset = pick(opts.dataset, "dataset", None)
        if rate is None and concurrency is None and not (dataset or "").lower().endswith(".csv"):
            concurrency = 1
        return Plan(name=name, rate=None if rate is None else float(rate), burstiness=float(pick(opts.burstiness, "burstiness", 1.0)),
                    concurrency=concurrency, duration=duration, requests=requests,
                    prompt_tokens=pick(opts.prompt_tokens, "prompt_tokens", 512),
                    output_tokens=pick(opts.output_tokens, "output_tokens", 128), dataset=dataset,
                    time_scale=float(pick(opts.time_scale, "time_scale", 1.0)), warmup=pick(opts.warmup, "warmup", 0),
                    stop_error_rate=pick(opts.stop_error_rate, "stop_error_rate", None), slo=slo_with(thresholds))

    if opts.scenario:
        try:
            return [make(s.name, s.values, s.thresholds) for s in scenarios.load(opts.scenario)]
        except scenarios.ScenarioError as e:
            raise UsageError(str(e)) from None
    if opts.sweep:
        # Each rate is offered open-loop (no concurrency cap unless --concurrency gives one): a run
        # planned without a rate gets concurrency 1, so the rate must be part of the plan, not
        # patched in afterwards.
        return [make(f"rate {r:g}", {"rate": r}, {}) for r in _sweep_rates(opts.sweep)]
    return [make("run", {}, {})]


def _dataset(opts: Options, plan: Plan):
    try:
        return load_dataset(plan.dataset, plan.prompt_tokens, plan.output_tokens, time_scale=plan.time_scale, seed=opts.seed)
    except WorkloadError as e:
        if opts.scenario and opts.dataset is None:  # the scenario file's key, not an option
            message = str(e).removeprefix("--dataset: ")
            raise UsageError(f"--scenario {opts.scenario}: scenario {plan.name!r}.dataset: {message}") from None
        raise


def execute(opts: Options, out: Console, err: Console) -> int:
    """Exit code: 0 every gate of every run holds; 1 a gate fails or a stop condition fired; 2 usage."""
    try:
        _check(opts)
        stack = None
        if opts.stack:
            from components.spec import SpecError
            try:
                stack = stack_target(opts.stack, opts.stacks_dir)
            except SpecError as error:
                sys.stderr.write(error.render() + "\n")
                return 2
        plans = plan_runs(opts, stack)
        datasets = [_dataset(opts, p) for p in plans]
    except (UsageError, WorkloadError) as e:
        sys.stderr.write(f"error: {e}\n")
        return 2
    endpoint_url = opts.endpoint or stack["endpoint"]
    model = opts.model or stack["model"]
    if stack and stack["api_auth"] and not opts.api_key:
        err.print("note: the stack requires an API key (security.apiAuth); set TIERSCALE_API_KEY or --api-key", markup=False)

    from components.bench import client as engine  # Locust + gevent, only now
    from components.bench.metrics import summarize
    from components.bench.report import slo_table, summary_table, totals_lines, write_json, write_sweep_report

    endpoint = engine.Endpoint(engine.Endpoint.normalize(endpoint_url), model, opts.api_key, opts.insecure, opts.timeout_s)
    http = engine.Client(endpoint, pool_size=max([1024] + [p.concurrency or 0 for p in plans]))
    out.print(f"endpoint {endpoint.base_url}/v1/chat/completions, model {model}", markup=False, highlight=False)
    summaries = []
    for plan, dataset in zip(plans, datasets):
        mode = ", ".join(x for x in (
            f"rate {plan.rate:g}/s (burstiness {plan.burstiness:g})" if plan.rate is not None and not dataset.timed else "",
            "trace arrival times" if dataset.timed else "",
            f"concurrency {plan.concurrency}" if plan.concurrency else "",
            f"{plan.duration:g} s" if plan.duration else "", f"{plan.requests} requests" if plan.requests else "",
            f"warm-up {plan.warmup}" if plan.warmup else "",
            f"stop when errors > {plan.stop_error_rate:.1%}" if plan.stop_error_rate is not None else "") if x)
        out.print(f"[bold]{plan.name}[/]: {dataset.name}; {mode}", highlight=False)
        with Live(Text(""), console=err, auto_refresh=False, transient=False) as live:
            def show(p: engine.Progress, live=live, plan=plan) -> None:
                goal = f"/{plan.requests}" if plan.requests else ""
                clock = f"{p.elapsed:5.1f}" + (f"/{plan.duration:g}" if plan.duration and p.phase == "measuring" else "") + " s"
                rate_now = p.done / p.elapsed if p.phase != "warm-up" and p.elapsed > 0 else 0
                live.update(Text(f"{plan.name} {p.phase}: {p.done}{goal} done, {p.errors} errors, {p.in_flight} in flight, "
                                 f"{rate_now:.1f} req/s, {clock}"), refresh=True)
            result = engine.run(http, dataset, rate=plan.rate, burstiness=plan.burstiness, concurrency=plan.concurrency,
                                duration=plan.duration, requests=plan.requests, warmup=plan.warmup,
                                stop_error_rate=plan.stop_error_rate, seed=opts.seed, on_progress=show)
        summary = summarize(result, plan.slo)
        summary = {"name": plan.name, "endpoint": endpoint.base_url, "model": model, "dataset": dataset.name,
                   "offered_rate": plan.rate, "concurrency": plan.concurrency, **summary}
        summaries.append(summary)
        out.print(summary_table(summary, f"{plan.name}: latency"))
        for line in totals_lines(summary):
            out.print(line, markup=False, highlight=False)
        if summary["slo"]:
            out.print(slo_table(summary))
    passed = all(s["pass"] for s in summaries)
    if opts.sweep:
        report_dir = opts.report_dir or Path("bench-report")
        written = write_sweep_report(report_dir, summaries, {"endpoint": endpoint.base_url, "model": model,
                                                             "dataset": datasets[0].name})
        out.print(f"report: {', '.join(str(p) for p in written)}", markup=False, highlight=False)
    document = summaries[0] if len(summaries) == 1 else {"runs": summaries, "pass": passed}
    if opts.json_path:
        write_json(opts.json_path, document)
        out.print(f"wrote {opts.json_path}", markup=False, highlight=False)
    out.print("[green]all SLO gates hold[/]" if passed else "[red]SLO gate failed or run stopped[/]")
    if opts.as_json:
        from components.cli_options import emit_json

        emit_json(document)
    return 0 if passed else 1
