"""The `tierscale` command: render, validate, inventory, plan, schema, bench, migrate (plan, check, run), up, down.

Exit codes (components/cli_options.EXIT_CODES; docs/reference/cli-conventions.md; every command's help):
  0 success
  1 a check failed (a validator, --strict warnings, a due tier change, an SLO gate, migrate run rolled back)
  2 invalid input (the message names the option or key and what is allowed)
  3 migrate run: the rollback could not be applied or verified
  70 an internal error (set TIERSCALE_DEBUG=1 to see the traceback)
Shared options (--stack NAME|FILE, --stacks-dir, --out, --json, --verbose) are declared once in
components/cli_options.py; `--json` always prints one JSON object on stdout and nothing else there.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from components import paths
from components.cli_options import (EXIT_CHECK_FAILED, EXIT_INVALID_INPUT, JsonOption, StackOption, StacksDirOption,
                                    VerboseOption, add_exit_code_epilog, console, emit_json, fail_spec,
                                    optional_stack_option, out_option, print_command, print_findings, stack_args,
                                    stack_ref, table)
from components.spec import SpecError

# -h as well as --help on every command; `tierscale --install-completion` / `--show-completion`
# for bash, zsh, fish and PowerShell (typer's own completion).
app = typer.Typer(add_completion=True, no_args_is_help=True, pretty_exceptions_enable=False,
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help=__doc__.splitlines()[0])


def _flag_type_hidden() -> None:
    """typer 0.29 prints a `<bool>` type beside on/off flags (TyperOption.display_type in
    typer/core.py@0.29.2), which reads as if the flag took a value; a flag takes none, so show no type."""
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich

    def display_type_rich(self, ctx):
        return None if self.is_flag else shown(self, ctx)

    TyperOption.display_type_rich = display_type_rich


_flag_type_hidden()


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            sys.stdout.write(f"tierscale {version('tierscale')}\n")
        except PackageNotFoundError:
            sys.stdout.write("tierscale (not installed as a package)\n")
        raise typer.Exit(0)


@app.callback()
def _root(show_version: bool = typer.Option(False, "--version", "-V", callback=_version, is_eager=True,
                                            help="Print the version and exit.")) -> None:
    """The `tierscale` command: render, validate, inventory, plan, schema, bench, migrate (plan, check, run),
    up, down."""
out = Console()
err = Console(stderr=True)


@app.command()
def render(
    stack: StackOption,
    out_dir: out_option("Output directory (default build/<stack>)") = None,
    stacks_dir: StacksDirOption = paths.STACKS_DIR,
    verbose: VerboseOption = False,
    as_json: JsonOption = False,
) -> None:
    """Render a stack: write every artifact and summarise GPUs, cost, endpoints and failover.

    Runs the stack's Pulumi program under the mock runtime, writes every artifact and summarises the
    result: GPUs by type, cost, endpoints, failover time (large tier); --verbose lists resource types."""
    from components.cli_summary import summary, text_lines
    from components.render import render_stack

    given = stack
    stack, stacks_dir = stack_ref(stack, stacks_dir)
    try:
        result = render_stack(stack, out_dir, stacks_dir=stacks_dir)
    except SpecError as error:
        fail_spec(error)
    print_findings(result.stack)
    next_command = ["tierscale", "validate", *stack_args(given, stacks_dir)] + (["--out", str(out_dir)] if out_dir else [])
    doc = summary(result, next_command)
    if as_json:
        emit_json(doc)
        return
    c = console()
    for line in text_lines(doc):
        c.print(line, markup=False)
    if verbose:
        kinds = table(f"{stack}: {doc['resources']} resources by type", "type", "count", right=("count",))
        for kind, count in doc["resources_by_type"].items():
            kinds.add_row(kind, str(count))
        c.print(kinds)
    chosen = table("values chosen per model", "model", "GPU", "TP", "PP", "replicas", "GPUs", "max len",
                   "startup s", right=("TP", "PP", "replicas", "GPUs", "max len", "startup s"))
    for m in doc["models"]:
        replicas = str(m["replicas"]) if m["max_replicas"] == m["replicas"] else f"{m['replicas']}-{m['max_replicas']}"
        chosen.add_row(m["name"], m["gpu_type"], str(m["tensor_parallel"]), str(m["pipeline_parallel"]), replicas,
                       str(m["gpus"]), str(m["max_model_len"]), str(m["startup_budget_s"]))
    c.print(chosen)
    for m in doc["models"]:
        if m["derived"]:
            c.print(f"{m['name']}: derived by the planner: {', '.join(m['derived'])}", markup=False)
    print_command(next_command)


@app.command()
def validate(
    stack: StackOption,
    out_dir: out_option("Render directory (default build/<stack>)") = None,
    stacks_dir: StacksDirOption = paths.STACKS_DIR,
    strict: bool = typer.Option(False, "--strict", help="Also fail (exit 1) on capacity/SLO warnings"),
    as_json: JsonOption = False,
) -> None:
    """Render the stack, then run every validator that applies; fail (exit 1) if any fails."""
    from components.render import render_stack
    from components.validate import validate_rendered

    stack, stacks_dir = stack_ref(stack, stacks_dir)
    try:
        result = render_stack(stack, out_dir, stacks_dir=stacks_dir)
    except SpecError as error:
        fail_spec(error)
    print_findings(result.stack)
    outcomes = validate_rendered(result.stack, result.out_dir)
    failed = [o.name for o in outcomes if not o.ok]
    warnings = [str(w) for w in result.stack.warnings]
    strict_failed = strict and bool(warnings)
    ok = not failed and not strict_failed
    # Pulumi reads stack files from stacks/ (Pulumi.yaml stackConfigDir): suggest `pulumi up` only there.
    deployable = ok and Path(stacks_dir).resolve() == paths.STACKS_DIR.resolve()
    next_command = ["pulumi", "up", "--stack", stack] if deployable else None
    if as_json:
        emit_json({"stack": stack, "tier": result.stack.spec.tier, "out_dir": str(result.out_dir),
                   "ok": ok, "strict": strict, "failed": failed,
                   "validators": [{"name": o.name, "ok": o.ok, "message": o.detail} for o in outcomes],
                   "warnings": warnings, "notes": list(result.stack.notes), "next": next_command})
    else:
        rows = table(f"{stack}: validators", "validator", "result", "detail")
        for o in outcomes:
            rows.add_row(o.name, "[green]pass[/]" if o.ok else "[red]FAIL[/]", o.detail)
        console().print(rows)
        if next_command:
            print_command(next_command)
    if failed:
        raise typer.Exit(EXIT_CHECK_FAILED)
    if strict_failed:
        sys.stderr.write(f"--strict: {len(warnings)} warning(s) above; fix them or drop --strict\n")
        raise typer.Exit(EXIT_CHECK_FAILED)


@app.command()
def inventory(
    stack: StackOption,
    out_dir: out_option("Output directory (default build/<stack>/ansible)") = None,
    stacks_dir: StacksDirOption = paths.STACKS_DIR,
    as_json: JsonOption = False,
) -> None:
    """Write the Ansible inventory and group variables for a bare-metal stack."""
    import shlex

    from components.baremetal.inventory import files
    from components.spec import Problem
    from components.spec.stack_file import load_stack

    stack, stacks_dir = stack_ref(stack, stacks_dir)
    try:
        resolved = load_stack(stack, stacks_dir)
        if resolved.spec.tier != "baremetal":
            raise SpecError([Problem("tier", f"is {resolved.spec.tier!r}; `inventory` needs a baremetal stack")], f"stack {stack}")
    except SpecError as error:
        fail_spec(error)
    # Absolute: the next-step command changes directory before it reads the inventory.
    target = (out_dir or paths.REPO_ROOT / "build" / stack / "ansible").resolve()
    written = []
    for rel, content in files(resolved, stack).items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        written.append(str(path))
        if not as_json:
            sys.stdout.write(f"wrote {path}\n")
    inv = shlex.quote(str(target / "inventory.yml"))
    next_command = (f"cd {shlex.quote(str(paths.REPO_ROOT / 'ansible'))} && ansible-playbook -i {inv} site.yml && "
                    f"ansible-playbook -i {inv} verify.yml")
    if as_json:
        emit_json({"stack": stack, "out_dir": str(target), "files": written, "next": next_command})
        return
    print_command(next_command)


@app.command()
def plan(
    model: Optional[str] = typer.Option(None, help="Catalog id or Hugging Face repo id"),
    gpu: str = typer.Option("any", help="GPU type, e.g. h100-80gb (default: search every GPU type)"),
    quantization: Optional[str] = typer.Option(None, help="fp16|bf16|fp8|int8|awq|gptq|mxfp4 (default: search what the model can be served in)"),
    max_model_len: int = typer.Option(8192, help="Context length to serve"),
    qps: float = typer.Option(10.0, help="Expected requests per second"),
    prompt_tokens: int = typer.Option(512, help="Mean prompt tokens"),
    output_tokens: int = typer.Option(256, help="Mean output tokens"),
    ttft_ms: float = typer.Option(500, help="TTFT p99 SLO (ms)"),
    tpot_ms: float = typer.Option(100, help="TPOT p99 SLO (ms)"),
    availability: Optional[float] = typer.Option(None, help="Availability target (%); only a stated target adds spare replicas or raises the tier"),
    gpu_memory_utilization: float = typer.Option(0.9, help="Share of GPU memory vLLM may use"),
    concurrency: int = typer.Option(1, help="Sequences at max-model-len that must fit per replica"),
    price_per_hour: Optional[float] = typer.Option(None, help="Override the instance price (USD/hour)"),
    tensor_parallel: Optional[int] = typer.Option(None, "--tensor-parallel", help="Evaluate this TP only (no TP/PP search)"),
    pipeline_parallel: Optional[int] = typer.Option(None, "--pipeline-parallel", help="With --tensor-parallel: PP stages"),
    max_num_seqs: Optional[int] = typer.Option(None, "--max-num-seqs", help="Fix vLLM's max_num_seqs (default: searched)"),
    kv_cache_dtype: str = typer.Option("auto", "--kv-cache-dtype", help="auto|fp8"),
    max_gpus: Optional[int] = typer.Option(None, "--max-gpus", help="Budget: at most this many GPUs (does it fit what I have?)"),
    nodes: Optional[int] = typer.Option(None, "--nodes", help="Budget: at most this many nodes"),
    top: int = typer.Option(5, "--top", help="Alternatives to show, with why each lost"),
    custom_json: Optional[str] = typer.Option(None, "--custom-json", help="A model described inline as JSON (models.yaml keys), instead of --model"),
    model_config: Optional[str] = typer.Option(None, "--model-config", help="A model's config.json (file or model directory; a repo id when huggingface_hub is installed and online)"),
    stack: optional_stack_option("Compare every model of this stack with the planner's optimum") = None,
    stacks_dir: StacksDirOption = paths.STACKS_DIR,
    as_json: JsonOption = False,
) -> None:
    """Search the cheapest configuration meeting the SLOs: GPU, quantization, TP/PP, replicas, tier, cost.

    With --stack: each model of the stack as configured against the planner's optimum."""
    from components.planner.request import PlanInputError, build_request
    from components.planner import PlanError, plan as run_plan

    if stack is not None:
        _plan_stack(*stack_ref(stack, stacks_dir), as_json)
        return
    try:
        request = build_request(model, gpu, quantization, max_model_len, qps, prompt_tokens, output_tokens,
                                ttft_ms, tpot_ms, availability, gpu_memory_utilization, concurrency, price_per_hour,
                                custom_json=custom_json, tensor_parallel=tensor_parallel,
                                pipeline_parallel=pipeline_parallel, max_num_seqs=max_num_seqs, top=top,
                                kv_cache_dtype=kv_cache_dtype, max_gpus=max_gpus, nodes=nodes,
                                model_config=model_config)
        result = run_plan(request)
    except (PlanInputError, PlanError) as error:
        sys.stderr.write(f"error: {error}\n")
        raise typer.Exit(EXIT_INVALID_INPUT)
    if as_json:
        emit_json(result.to_json())
        return
    from components.planner.answer import render as render_answer

    repo = (request.model.hf_repos[0] if request.model.hf_repos else None)
    if model and "/" in model:
        repo = model
    width = max(60, min(out.width or 80, 100))
    sys.stdout.write(render_answer(result, repo, prompt_tokens, output_tokens, width=width))


def _plan_stack(stack: str, stacks_dir: Path, as_json: bool) -> None:
    """Each model of a stack: its configured choice against the planner's optimum, and the one
    verdict (components.planner.verdict) that validate and migrate check print too."""
    from components.planner import verdict
    from components.planner.answer import ms
    from components.spec.stack_file import load_stack

    try:
        resolved = load_stack(stack, stacks_dir)
    except SpecError as error:
        fail_spec(error)
    spec = resolved.spec
    found = verdict.stack_verdict(spec, resolved.models)
    if as_json:
        rows = []
        for mv in found.models:
            if mv.configured is None:
                sys.stderr.write(f"error: {mv.name}: {mv.findings[0].message}\n")
                raise typer.Exit(EXIT_INVALID_INPUT)
            rows.append({"model": mv.name, "configured": mv.configured.to_json(), "optimum": mv.optimum.to_json(),
                         "meets_slo": mv.meets_slo, "warnings": [f"{f.key}: {f.message}" for f in mv.findings],
                         "findings": [{"key": f.key, "kind": f.kind, "message": f.message} for f in mv.findings]})
        emit_json({"stack": stack, "tier": spec.tier, "gpu_type": spec.gpu.type, "qps": found.qps,
                   "slo": {"ttft_p99_ms": spec.slo.ttft_p99_ms, "tpot_p99_ms": spec.slo.tpot_p99_ms},
                   "models": rows, "recommended_tier": found.recommended.tier, "tier_reason": found.recommended.reason,
                   "tier_holds": found.tier_holds, "next_tier": found.next_tier,
                   "findings": [{"key": f.key, "kind": f.kind, "message": f.message} for f in found.findings]})
        return
    import textwrap

    lines = [f"{stack} ({spec.tier}, {spec.gpu.type}): {found.qps:g} QPS, TTFT p99 {spec.slo.ttft_p99_ms} ms, "
             f"TPOT {spec.slo.tpot_p99_ms} ms"]
    for mv in found.models:
        if mv.configured is None:
            sys.stderr.write(f"error: {mv.name}: {mv.findings[0].message}\n")
            raise typer.Exit(2)
        for label, p in (("configured", mv.configured), ("optimum", mv.optimum)):
            cost = f"${p.cost_per_hour_usd:,.2f}/h" if p.cost_per_hour_usd is not None else f"{p.gpus} GPUs"
            lines.append(f"  {mv.name} {label}: {p.describe()}, {cost}, TTFT {ms(p.ttft_ms_estimate)} "
                         f"({p.ttft_margin_pct:+.0f}%), TPOT {ms(p.tpot_ms_estimate, 1)} ({p.tpot_margin_pct:+.0f}%), "
                         f"{'meets' if (mv.meets_slo if label == 'configured' else p.meets_slo) else 'MISSES'} the SLOs")
    lines.append(f"  tier: {found.recommended.reason}; {spec.tier} {'holds' if found.tier_holds else 'does NOT hold'} it")
    width = max(60, min(out.width or 80, 100))
    for line in lines:
        sys.stdout.write("\n".join(textwrap.wrap(line, width, subsequent_indent="      ", break_long_words=False,
                                                  break_on_hyphens=False)) + "\n")
    prices = {p.price_as_of for mv in found.models for p in (mv.configured, mv.optimum) if p and p.price_as_of}
    if prices:
        sys.stdout.write(f"prices: AWS on-demand us-east-1 as of {', '.join(sorted(prices))}\n")
    for f in found.all_findings():
        sys.stdout.write("\n".join(textwrap.wrap(f"warning: {f.key}: {f.message}", width, subsequent_indent="    ",
                                                  break_long_words=False, break_on_hyphens=False)) + "\n")


@app.command()
def schema(
    check: bool = typer.Option(False, "--check", help="Fail (exit 1) if Pulumi.yaml or docs/config-reference.md is stale"),
    as_json: JsonOption = False,
) -> None:
    """Regenerate Pulumi.yaml's config block and docs/config-reference.md from the spec."""
    from components.spec import reference

    stale = reference.write_all(check=check)
    if as_json:
        emit_json({"check": check, "ok": not (check and stale), "stale": stale if check else [],
                   "written": [] if check else stale})
    elif check and stale:
        sys.stderr.write(f"stale: {', '.join(stale)}; run `venv/bin/tierscale schema`\n")
    else:
        sys.stdout.write("up to date\n" if check else "written: Pulumi.yaml, docs/config-reference.md\n")
    if check and stale:
        raise typer.Exit(EXIT_CHECK_FAILED)


migrate_app = typer.Typer(no_args_is_help=True, help="Move a deployment between stacks: plan, check, run.")
app.add_typer(migrate_app, name="migrate")


def _check_migration_pair(source: str, src, destination: str, dst, accept: Optional[list[str]], command: str,
                          in_place: bool = False) -> None:
    """components/migration/pair.py: refuse (exit 2, the key and both values) or warn."""
    from components.migration.pair import accept_values, check_pair
    from components.spec import Problem

    try:
        accepted = accept_values(accept)
    except ValueError as e:
        fail_spec(SpecError([Problem("--accept", str(e).removeprefix("--accept: "))], command))
    result = check_pair(source, src, destination, dst, accepted, in_place=in_place)
    for warning in result.warnings:
        sys.stderr.write(f"warning: {warning}\n")
    if result.errors:
        fail_spec(SpecError(result.problems(), f"{command} {source} -> {destination}"))


@migrate_app.command("plan")
def migrate_plan(
    source: str = typer.Option(..., "--from", help="Source stack (what serves today): a name or a Pulumi.<name>.yaml path"),
    destination: str = typer.Option(..., "--to", help="Destination stack: a name or a Pulumi.<name>.yaml path"),
    strategy: Optional[str] = typer.Option(None, "--strategy", help="rolling|buffer|fallback (default: recommended)"),
    as_json: JsonOption = False,
    rollout_out: Optional[Path] = typer.Option(None, "--rollout-out", help="Model upgrade on medium: write Argo Rollouts "
                                               "Rollout + AnalysisTemplate (the same gates) to this directory"),
    accept: Optional[list[str]] = typer.Option(None, "--accept", help="Migrate although clients lose something: "
                                               "removed-model | context | capacity (repeatable)"),
    stacks_dir: StacksDirOption = paths.STACKS_DIR,
) -> None:
    """Explain a move between two stacks: what changes, the strategy, traffic steps and SLO gates.

    Exit 2 for a pair that is no migration (the same stack or identical), whose stacks collide, or that
    loses clients something (a model name, context, capacity) unless --accept names it."""
    from components.migration.plan import STRATEGIES, plan_migration
    from components.spec import Problem
    from components.spec.stack_file import load_stack
    from components.suggestions import suggestion

    if strategy is not None and strategy not in STRATEGIES:
        fail_spec(SpecError([Problem("--strategy", f"{strategy!r} is not allowed{suggestion(strategy, STRATEGIES)}; "
                                      f"allowed: {', '.join(STRATEGIES)}")], "migrate plan"))
    # --from/--to, like --stack, take a stack name or a Pulumi.<name>.yaml path.
    (source, src_dir), (destination, dst_dir) = stack_ref(source, stacks_dir, "--from"), stack_ref(destination, stacks_dir, "--to")
    try:
        src, dst = load_stack(source, src_dir), load_stack(destination, dst_dir)
    except SpecError as error:
        fail_spec(error)
    _check_migration_pair(source, src, destination, dst, accept, "migrate plan",
                          in_place=rollout_out is not None or strategy == "rolling")
    result = plan_migration(source, src, destination, dst, strategy)
    if rollout_out is not None:
        from components.migration import rollouts

        try:
            bundles = rollouts.render(source, src, destination, dst, strategy=strategy)
        except rollouts.RolloutError as e:
            sys.stderr.write(f"error: --rollout-out: {e}\n")
            raise typer.Exit(2)
        invalid = [err for b in bundles for doc in b.documents().values() for err in rollouts.schema_errors(doc)]
        if invalid:
            sys.stderr.write("error: --rollout-out: rendered manifests fail their CRD schemas: " + "; ".join(invalid) + "\n")
            raise typer.Exit(1)
        for path in rollouts.write(bundles, rollout_out):
            sys.stderr.write(f"wrote {path}\n")
        for warning in (w for b in bundles for w in b.warnings):
            sys.stderr.write(f"warning: {warning}\n")
    if as_json:
        emit_json(result.to_json())
        return
    out.print(f"[bold]{source} -> {destination}[/]" + (f"  (tier {result.tier_change})" if result.tier_change else ""))
    changes = table("what changes", "model", "change", "detail", "cold start s")
    for c in result.changes:
        changes.add_row(c.name, c.change, c.detail, str(result.cold_start_s.get(c.name, "-")))
    out.print(changes)
    costs = table("strategies (extra capacity during the switch)", "strategy", "extra GPUs", "extra cost USD", "")
    for s, n in result.extra_gpus.items():
        usd = result.extra_cost_usd[s]
        costs.add_row(s, str(n), "-" if usd is None else f"{usd:,.0f}",
                      "recommended" if s == result.recommended else ("chosen" if s == result.strategy else ""))
    out.print(costs)
    out.print(f"strategy: {result.strategy} — {result.why}", markup=False)
    out.print("traffic: " + " -> ".join(f"{s['percent']}% ({s['hold']})" for s in result.traffic_steps), markup=False)
    gates = table("gates (every step; a failure returns the destination's weight to 0)", "gate", "pass when", "PromQL")
    for g in result.gates:
        gates.add_row(g.name, f"{g.op} {g.threshold:g} {g.unit}", g.promql)
    out.print(gates)
    for phase in result.phases:
        out.print(f"{phase['id']} {phase['name']}: " + "; ".join(phase["tasks"]), markup=False)
    out.print(f"rollback: {result.rollback}", markup=False)
    for warning in result.warnings:
        sys.stderr.write(f"warning: {warning}\n")


@migrate_app.command("check")
def migrate_check(
    stack: StackOption,
    stacks_dir: StacksDirOption = paths.STACKS_DIR,
    as_json: JsonOption = False,
) -> None:
    """Is a tier change due for the load this stack is planned for? Exit 0 no, 1 yes."""
    from components.migration.triggers import check
    from components.spec.stack_file import load_stack

    stack, stacks_dir = stack_ref(stack, stacks_dir)
    try:
        report = check(load_stack(stack, stacks_dir))
    except SpecError as error:
        fail_spec(error)
    if as_json:
        emit_json({"stack": stack, "tier": report.tier, "qps": report.qps, "nodes": report.nodes, "due": report.due,
                   "next_tier": report.next_tier, "reasons": list(report.reasons)})
    else:
        verdict = f"move to {report.next_tier}" if report.due else "no tier change due"
        console().print(f"{stack} ({report.tier}): {verdict}: " + "; ".join(report.reasons), markup=False)
    if report.due:
        raise typer.Exit(EXIT_CHECK_FAILED)


@migrate_app.command("run")
def migrate_run(
    source: str = typer.Option(..., "--from", help="Source stack (what serves today): a name or a Pulumi.<name>.yaml path"),
    destination: str = typer.Option(..., "--to", help="Destination stack: a name or a Pulumi.<name>.yaml path"),
    strategy: Optional[str] = typer.Option(None, "--strategy", help="rolling|buffer|fallback (default: recommended)"),
    journal_path: Optional[Path] = typer.Option(None, "--journal", help="Journal file (default build/migrations/SRC-to-DST.jsonl)"),
    resume: bool = typer.Option(False, "--resume", help="Continue the run the journal records"),
    hold_scale: float = typer.Option(1.0, "--hold-scale", help="Multiply every hold by this (rehearsals and tests)"),
    prometheus: str = typer.Option("http://127.0.0.1:9090", "--prometheus", help="Prometheus that scrapes both deployments"),
    eval_interval: float = typer.Option(15.0, "--eval-interval", help="Seconds between gate evaluations during a hold"),
    gate_window: str = typer.Option("5m", "--gate-window", help="rate() window of the gates (PromQL duration)"),
    traffic_file: Optional[Path] = typer.Option(None, "--traffic", help="YAML: the traffic back end (nginx, httproute, route53, global-accelerator)"),
    driver_name: str = typer.Option("pulumi", "--driver", help="pulumi (Automation API) | local-stubs (rehearsal: stub replicas)"),
    driver_dir: Optional[Path] = typer.Option(None, "--driver-dir", help="local-stubs: state directory (default build/migrations/DST-stubs)"),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="TIERSCALE_API_KEY", show_default=False,
                                          help="Bearer key for warm-up requests; prefer TIERSCALE_API_KEY"),
    data_timeout: float = typer.Option(180.0, "--data-timeout", help="Seconds to wait for Prometheus to see the destination"),
    golden_file: Optional[Path] = typer.Option(None, "--golden", help="Golden prompts (JSON lines) for a weights/quantization "
                                               "change (default benchmarks/golden/prompts.jsonl)"),
    accept: Optional[list[str]] = typer.Option(None, "--accept", help="Migrate although clients lose something: "
                                               "removed-model | context | capacity (repeatable)"),
    stacks_dir: StacksDirOption = paths.STACKS_DIR,
    as_json: JsonOption = False,
) -> None:
    """Execute the plan: bring DST up, warm it, shift traffic step by step under the SLO gates, roll back on failure.

    Exit 0 completed, 1 rolled back (traffic back on the source, read back), 2 invalid input, a bad journal line or
    cannot start, 3 the rollback could not be applied or verified (stderr says what share the destination still has).
    --json: the progress goes to stderr and stdout holds the outcome (result, steps done, the destination's share,
    the journal)."""
    import yaml

    from components.migration import drivers, traffic as traffic_mod
    from components.migration.journal import Journal, JournalCorrupt, JournalLocked, RunState, StackLocked, StackLocks
    from components.migration.plan import STRATEGIES, plan_migration
    from components.migration.prom import Prometheus, PrometheusError
    from components.migration.runner import (MigrationRun, RunConfig, golden_plan, golden_source_urls,
                                             install_interrupt_handler, load_golden_prompts)
    from components.spec import Problem
    from components.spec.stack_file import load_stack
    from components.suggestions import suggestion

    def fail(message: str) -> None:
        sys.stderr.write(f"error: {message}\n")
        raise typer.Exit(EXIT_INVALID_INPUT)

    if strategy is not None and strategy not in STRATEGIES:
        fail_spec(SpecError([Problem("--strategy", f"{strategy!r} is not allowed{suggestion(strategy, STRATEGIES)}; "
                                      f"allowed: {', '.join(STRATEGIES)}")], "migrate run"))
    if driver_name not in drivers.DRIVERS:
        fail(f"--driver {driver_name!r}: allowed: {', '.join(drivers.DRIVERS)}")
    if traffic_file is None:
        fail("--traffic FILE is required: the back end that shifts traffic (see `tierscale migrate run --help` and the README)")
    try:
        settings = yaml.safe_load(traffic_file.read_text())
    except (OSError, yaml.YAMLError) as e:
        fail(f"--traffic {traffic_file}: {e}")
    # --from/--to, like --stack, take a stack name or a Pulumi.<name>.yaml path.
    (source, src_dir), (destination, stacks_dir) = stack_ref(source, stacks_dir, "--from"), stack_ref(destination, stacks_dir, "--to")
    try:
        src, dst = load_stack(source, src_dir), load_stack(destination, stacks_dir)
    except SpecError as error:
        fail_spec(error)
    journal = Journal(journal_path or paths.REPO_ROOT / "build" / "migrations" / f"{source}-to-{destination}.jsonl")
    # One lock per stack (both of the pair), whatever the journal: two runs never share a split.
    stack_locks = StackLocks((source, destination), journal.path)
    try:
        stack_locks.acquire((source, destination))
        journal.lock()
    except (JournalLocked, StackLocked) as e:
        stack_locks.release()
        fail(str(e))
    try:
        records = journal.records()
    except JournalCorrupt as e:
        fail(f"journal {e}")
    if records and not resume:
        fail(f"{journal.path} already records a run; pass --resume to continue it, or another --journal")
    if resume and records and (records[0]["plan"]["source"], records[0]["plan"]["destination"]) != (source, destination):
        fail(f"{journal.path} records {records[0]['plan']['source']} -> {records[0]['plan']['destination']}, "
             f"not {source} -> {destination}")
    plan_json = None
    if not records:
        result = plan_migration(source, src, destination, dst, strategy, window=gate_window)
        plan_json = result.to_json()
        plan_json["served_models"] = {m.name: m.served_model_name for m in dst.models}
        try:
            plan_json["golden"] = golden_plan(src, dst, load_golden_prompts(golden_file))
        except (OSError, ValueError, KeyError) as e:
            fail(f"--golden {golden_file or 'benchmarks/golden/prompts.jsonl'}: {e!r}")
        # Never in place: the run's split needs both stacks serving side by side.
        _check_migration_pair(source, src, destination, dst, accept, "migrate run")
        for warning in result.warnings:
            if warning.startswith("fallback needs a fallback endpoint") and (
                    settings.get("fallback_servers") or settings.get("fallback_service")):
                continue  # the traffic file names one
            sys.stderr.write(f"warning: {warning}\n")
    if driver_name == "pulumi":
        driver = drivers.PulumiDriver(on_output=lambda line: sys.stderr.write(line))
    else:
        driver = drivers.LocalStubDriver(driver_dir or paths.REPO_ROOT / "build" / "migrations" / f"{destination}-stubs",
                                         stacks_dir=stacks_dir, api_key=api_key)

    def make_traffic(outputs, fallback=False):
        return traffic_mod.from_settings(settings, source, src, destination, dst, outputs,
                                         lambda manifests: driver.apply(destination, manifests), fallback,
                                         read=lambda: driver.read(destination))

    messages = console(as_json)
    say = lambda line: messages.print(line, markup=False, highlight=False)  # noqa: E731
    install_interrupt_handler(journal, say)
    runner = MigrationRun(journal, driver, make_traffic, Prometheus(prometheus),
                          RunConfig(hold_scale=hold_scale, eval_interval_s=eval_interval, api_key=api_key,
                                    data_timeout_s=data_timeout, golden_source=golden_source_urls(settings)), say)
    try:
        code = runner.run(plan_json, resume)
    except JournalCorrupt as e:
        fail(f"journal {e}")
    except (drivers.DriverError, traffic_mod.TrafficError, PrometheusError, NotImplementedError, KeyError) as e:
        journal.append("error", error=f"{type(e).__name__}: {e}")
        fail(f"{e}" if not isinstance(e, KeyError) else f"--traffic {traffic_file}: missing key {e}")
    finally:
        journal.unlock()
        stack_locks.release()
    say(f"journal: {journal.path}")
    if as_json:
        state = RunState.read(journal.records())
        finished = (state.finished or {}).get("result")
        emit_json({"source": source, "destination": destination,
                   "strategy": (state.start or {}).get("plan", {}).get("strategy"), "exit_code": code,
                   "result": finished or ("rollback_unverified" if code == 3 else None),
                   "steps_done": sorted(state.steps_done),
                   "destination_percent": 0 if state.rollback_verified or not state.current else state.current["percent"],
                   "rollback": state.rollback, "rollback_verified": state.rollback_verified is not None,
                   "journal": str(journal.path), "resumed": resume})
    if code:
        raise typer.Exit(code)


@app.command()
def bench(
    stack: optional_stack_option("Load-test this stack's gateway (URL, first model, SLO from the stack file)") = None,
    stacks_dir: StacksDirOption = paths.STACKS_DIR,
    endpoint: Optional[str] = typer.Option(None, "--endpoint", help="Base URL of any OpenAI-compatible API, e.g. http://host:8000"),
    model: Optional[str] = typer.Option(None, "--model", help="Model name to send (default with --stack: the first model's served name)"),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="TIERSCALE_API_KEY", show_default=False,
                                          help="Bearer key; prefer the TIERSCALE_API_KEY environment variable"),
    insecure: bool = typer.Option(False, "--insecure", help="Do not verify the endpoint's TLS certificate"),
    rate: Optional[float] = typer.Option(None, "--rate", help="Requests/s with Poisson (gamma) arrivals"),
    burstiness: Optional[float] = typer.Option(None, "--burstiness", help="Gamma shape of the arrival gaps: 1 Poisson, <1 burstier (default 1)"),
    concurrency: Optional[int] = typer.Option(None, "--concurrency", help="Requests in flight (closed loops; with --rate: a cap)"),
    duration: Optional[float] = typer.Option(None, "--duration", help="Seconds to send for"),
    requests: Optional[int] = typer.Option(None, "--requests", help="Requests to send (default 200 when neither is given)"),
    prompt_tokens: Optional[int] = typer.Option(None, "--prompt-tokens", help="Synthetic prompt tokens (default 512)"),
    output_tokens: Optional[int] = typer.Option(None, "--output-tokens", help="max_tokens per request (default 128)"),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="synthetic | sharegpt-like | a ShareGPT .json | an Azure-trace .csv (replayed at its arrival times)"),
    time_scale: Optional[float] = typer.Option(None, "--time-scale", help="Trace replay speed-up: arrival times are divided by it"),
    warmup: Optional[int] = typer.Option(None, "--warmup", help="Requests sent and discarded before measuring"),
    scenario: Optional[str] = typer.Option(None, "--scenario", help="Scenario file, FILE:NAME for one, or a shipped name (whitepaper)"),
    sweep: Optional[str] = typer.Option(None, "--sweep", help="Comma-separated rates, one run each, with a latency-vs-load report"),
    report_dir: Optional[Path] = typer.Option(None, "--report", help="Directory for the sweep's PNGs and report.html (default bench-report/)"),
    ttft_p99_ms: Optional[float] = typer.Option(None, "--ttft-p99-ms", help="Gate: TTFT p99 at most this (default: the stack's SLO)"),
    tpot_p99_ms: Optional[float] = typer.Option(None, "--tpot-p99-ms", help="Gate: TPOT p99 at most this (default: the stack's SLO)"),
    max_error_rate: Optional[float] = typer.Option(None, "--max-error-rate", help="Gate: error rate at most this fraction (default 1 - availability, or 0.01)"),
    stop_error_rate: Optional[float] = typer.Option(None, "--stop-error-rate", help="Stop the run (and fail) once the error rate exceeds this fraction"),
    as_json: JsonOption = False,
    json_path: Optional[Path] = typer.Option(None, "--out", help="Also write the report (the --json document) to this file",
                                             show_default=False),
    seed: int = typer.Option(0, "--seed", help="Seed for arrivals and synthetic prompts"),
    timeout_s: float = typer.Option(300.0, "--timeout", help="Seconds one request may take"),
) -> None:
    """Load-test an OpenAI-compatible endpoint: TTFT, TPOT, ITL, E2E, throughput, goodput, SLO gates.

    --json prints the report (one run's summary, or {"runs": [...], "pass": ...}) on stdout, the tables and
    progress on stderr; --out FILE writes the same document to a file (`--json FILE` is its deprecated spelling)."""
    from components.bench.command import Options, execute

    if stack is not None:
        stack, stacks_dir = stack_ref(stack, stacks_dir)
    code = execute(Options(
        stack=stack, stacks_dir=stacks_dir, endpoint=endpoint, model=model, api_key=api_key, insecure=insecure, rate=rate,
        burstiness=burstiness, concurrency=concurrency, duration=duration, requests=requests, prompt_tokens=prompt_tokens,
        output_tokens=output_tokens, dataset=dataset, time_scale=time_scale, warmup=warmup, scenario=scenario, sweep=sweep,
        ttft_p99_ms=ttft_p99_ms, tpot_p99_ms=tpot_p99_ms, max_error_rate=max_error_rate, stop_error_rate=stop_error_rate,
        json_path=json_path, as_json=as_json, report_dir=report_dir, seed=seed, timeout_s=timeout_s),
        console(as_json), err)
    if code:
        raise typer.Exit(code)



@app.command()
def up(
    local: bool = typer.Option(False, "--local", help="Run the stack on this machine: vLLM CPU build, nginx gateway, Prometheus (no Docker, no GPU)"),
    stack: StackOption = "local-demo",
    stacks_dir: StacksDirOption = paths.STACKS_DIR,
    model: str = typer.Option("tiny", "--model", envvar="TIERSCALE_DEMO_MODEL", help="tiny (generated, offline) | hf (the stack's Hugging Face repo, downloaded)"),
    replicas: Optional[int] = typer.Option(None, "--replicas", min=1, help="vLLM processes per model (default: the stack's replicas)"),
    port: Optional[int] = typer.Option(None, "--port", help="Gateway port on 127.0.0.1 (default: the stack's gateway.port)"),
    prometheus_port: int = typer.Option(9090, "--prometheus-port", help="Prometheus port on 127.0.0.1 (0: no Prometheus)"),
    detach: bool = typer.Option(False, "--detach", help="Return once it answers and leave it running (stop: tierscale down --local)"),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="Seconds the replicas may take to load (default 900; 1800 with --model hf)"),
    as_json: JsonOption = False,
) -> None:
    """Bring a stack up on this machine (--local; real hosts: `pulumi up`).

    A small-tier stack with the nginx gateway, default local-demo. Only --local is implemented
    here; deploy to real hosts with `pulumi up`. The API key is $TIERSCALE_API_KEY, else a generated one printed once
    (docs/getting-started/try-without-gpu.md). --json: once it answers, stdout gets the URLs and the key's file;
    progress and the banner go to stderr."""
    import signal as _signal
    import time

    from components.local.runner import LocalError, LocalStack

    if not local:
        err.print("tierscale up deploys only with --local (this machine); for real hosts run `pulumi up --stack <name>`")
        raise typer.Exit(2)
    stack, stacks_dir = stack_ref(stack, stacks_dir)
    say = lambda line: ((sys.stderr if as_json else sys.stdout).write(line + "\n"),  # noqa: E731
                        (sys.stderr if as_json else sys.stdout).flush())
    stopping: list[int] = []

    def on_signal(signum, _frame):
        stopping.append(signum)
        raise KeyboardInterrupt

    _signal.signal(_signal.SIGTERM, on_signal)
    try:
        runner = LocalStack(stack, stacks_dir, model_source=model, replicas=replicas, port=port,
                            prometheus_port=prometheus_port, say=say)
        timings = runner.up(ready_timeout_s=timeout)
    except LocalError as e:
        err.print(f"error: {e}", highlight=False, markup=False)
        raise typer.Exit(1)
    except KeyboardInterrupt:
        say("stopped before it was up (every process it started is gone)")
        raise typer.Exit(130)
    except SpecError as e:
        fail_spec(e)
    say(runner.banner())
    say(f"(up in {timings['first_completion']:.0f} s: replicas answering after {timings['replicas']:.0f} s; "
        f"first completion: {runner.first_reply!r})")
    if as_json:
        emit_json({"stack": stack, "url": runner.url, "base_url": f"{runner.url}/v1",
                   "models": [m.served_model_name for m in runner.stack.models], "replicas": len(runner.replica_procs),
                   "api_key_file": str(runner.workdir / "api-key"), "api_key_generated": runner.generated_key,
                   "prometheus": runner.prometheus.url if runner.prometheus else None,
                   "logs": str(runner.workdir / "logs"), "timings_s": timings, "detached": detach,
                   "stop": ["tierscale", "down", "--local", "--stack", stack]})
    if detach:
        return
    try:
        runner.watch(lambda: False)
    except KeyboardInterrupt:
        pass
    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)
    _signal.signal(_signal.SIGTERM, _signal.SIG_IGN)
    say("stopping: SIGTERM to every replica, the gateway and Prometheus ...")
    started = time.monotonic()
    killed = runner.down()
    say(f"stopped in {time.monotonic() - started:.1f} s" + (f" (SIGKILL after the grace period: {', '.join(killed)})" if killed else ""))


@app.command()
def down(
    local: bool = typer.Option(False, "--local", help="Stop what `tierscale up --local` started"),
    stack: StackOption = "local-demo",
    stacks_dir: StacksDirOption = paths.STACKS_DIR,
    as_json: JsonOption = False,
) -> None:
    """Stop what `tierscale up --local` started (real hosts: `pulumi destroy`).

    The stack given to up --local, default local-demo. Only --local is implemented here (tear real
    hosts down with `pulumi destroy`)."""
    from components.local.runner import stop_recorded

    if not local:
        err.print("tierscale down stops only --local runs; for real hosts run `pulumi destroy --stack <name>`")
        raise typer.Exit(2)
    stack, _ = stack_ref(stack, stacks_dir)
    state = stop_recorded(paths.REPO_ROOT / "build" / "local" / stack)
    if as_json:
        emit_json({"stack": stack, "was_running": state is not None,
                   "stopped_groups": sorted((state or {}).get("groups", {})), "killed": (state or {}).get("killed") or []})
        return
    if state is None:
        sys.stdout.write(f"{stack}: nothing running locally\n")
        return
    killed = state.get("killed") or []
    sys.stdout.write(f"{stack}: stopped ({len(state.get('groups', {}))} process groups"
                     + (f"; {len(killed)} needed SIGKILL" if killed else "") + ")\n")

add_exit_code_epilog(app)  # after every command is registered: each help ends with the exit codes


def _deprecated_bench_json_path(argv: list[str]) -> list[str]:
    """`bench --json FILE` (before --json became a flag everywhere) still writes FILE: read as `--out FILE`,
    with a deprecation warning. bench takes no positional argument, so a word after --json can only be that path."""
    if argv[:1] != ["bench"]:
        return argv
    fixed, i = [], 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--json="):
            arg, following = "--json", [arg[len("--json="):]]
        else:
            following = argv[i + 1:i + 2]
        if arg == "--json" and following and following[0] and not following[0].startswith("-"):
            sys.stderr.write(f"warning: `bench --json {following[0]}` is deprecated: --json is a flag that prints the "
                             f"report on stdout; write the file with `--out {following[0]}`\n")
            fixed += ["--out", following[0]]
            i += 1 if argv[i].startswith("--json=") else 2
            continue
        fixed.append(argv[i])
        i += 1
    return fixed


def main() -> None:
    sys.argv[1:] = _deprecated_bench_json_path(sys.argv[1:])
    try:
        app()
    except SpecError as error:  # raised outside a command's own handler
        sys.stderr.write(error.render() + "\n")
        sys.exit(2)
    except Exception as error:  # never a traceback for users
        if os.environ.get("TIERSCALE_DEBUG"):
            raise
        sys.stderr.write(f"internal error: {type(error).__name__}: {error} (set TIERSCALE_DEBUG=1 for the traceback)\n")
        sys.exit(70)


if __name__ == "__main__":
    main()
