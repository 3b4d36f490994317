"""`tierscale migrate run`: execute a migration plan step by step, gated, journaled, resumable.

    P1  (fallback strategy: the source's share moves to the fallback endpoint)
        bring the destination up (driver.up, idempotent)
        wait until Prometheus scrapes the destination (`up{<dst selector>}`)
        warm every new replica with WARMUP_REQUESTS synthetic requests (none may fail)
        wait until every gate has data: the gates must hold at 0% (the warm-up traffic
        already meets the SLOs) before any real traffic moves. The warm-up's 50 requests are
        too few for a comparison of p99s (gates.MIN_COMPARISON_SAMPLES): there the destination
        is judged on its own SLOs (TTFT/TPOT p99 against the destination stack's objectives,
        error ratio), and ttft_p99_change once both sides have the samples (prom.py)
        golden set (a model upgrade: new weights or quantization): after the warm-up, the
        same prompts (`plan["golden"]`, default benchmarks/golden/prompts.jsonl) go to the
        source and the destination, temperature 0 and a fixed seed, compared with the
        tolerance for the quantization change (golden_tolerances.yaml); journaled as
        `golden` (model, tolerance, passed, mean_overlap, diverged prompts). Outside the
        tolerance the run stops (exit 1) naming the prompts that diverged; no weight has
        moved from 0
    (before all of it, the source's own terms are measured once: the baseline)
    P1-P3  for each traffic step: set the destination's weight (the back end returns once it
        is in force), hold for the step's hold x --hold-scale while evaluating every gate
        each --eval-interval; a gate whose value breaks its threshold at any evaluation, or
        that has no data at the end of the hold, sets the destination's weight back to 0 at
        once and stops the run (exit 1) with a report naming the gate, its value and threshold
        every weight is read back from the back end after it is set (nginx: the status
        listener's /gateway/traffic) and journaled; a read-back that differs rolls back
    P4  is not run: the source keeps its full size until you destroy it

Rollback (a gate failed, or a step's weight could not be applied): journaled as `rollback`
first, then set_weight(0) and the live weight read back, retried with exponential backoff
(RunConfig.rollback_attempts, rollback_backoff_s) until the read-back says 0
(`rollback_verified`, exit 1). If it never does, `rollback_failed` records the live share and
the run says so on stderr and exits 3 (EXIT_ROLLBACK_FAILED) naming that share; no `done` is
written, so `--resume` repeats the rollback (never a forward step). SIGTERM/SIGINT during a
rollback are held until it ends.

Every event goes to the journal (components/migration/journal.py) before the next begins;
`--resume` skips what the journal shows done and repeats the step in progress from its start.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import httpx

from components import paths
from components.migration import golden as golden_mod
from components.migration.journal import Journal, RunState
from components.migration.plan import WARMUP_REQUESTS, hold_seconds
from components.migration.prom import GateEvaluator, GateResult, Prometheus, PrometheusError, gate_from_json

EXIT_DONE, EXIT_ROLLED_BACK, EXIT_ROLLBACK_FAILED = 0, 1, 3


@dataclass
class RunConfig:
    hold_scale: float = 1.0
    eval_interval_s: float = 15.0
    warmup_requests: int = WARMUP_REQUESTS
    warmup_concurrency: int = 8
    api_key: Optional[str] = None
    data_timeout_s: float = 180.0  # for Prometheus to see the destination and for gate data
    # Golden set: the source's base URLs per source model name (e.g. the nginx back end's
    # source_servers, or the traffic file's `golden_source`).
    golden_source: Optional[dict] = None
    # Rollback: tries of set_weight(0) + read-back, the first wait between them (doubled each time).
    rollback_attempts: int = 5
    rollback_backoff_s: float = 0.5


class RunStopped(Exception):
    """A failure before any traffic moved: nothing to roll back."""


GOLDEN_PROMPTS = paths.REPO_ROOT / "benchmarks" / "golden" / "prompts.jsonl"
GOLDEN_SEED = 0
GOLDEN_MAX_TOKENS = 64


def load_golden_prompts(path: Optional[Path] = None) -> list[dict]:
    """JSON lines `{"id": ..., "prompt": ...}` (id optional: the line number)."""
    path = Path(path or GOLDEN_PROMPTS)
    prompts = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            row = json.loads(line)
            prompts.append({"id": str(row.get("id", n)), "prompt": row["prompt"]})
    if not prompts:
        raise ValueError(f"{path}: no prompts")
    return prompts


def golden_plan(src, dst, prompts: list[dict]) -> Optional[dict]:
    """The golden-set step of a plan between two resolved stacks: every destination model whose
    weights or quantization differ from the source model with the same served name; None when
    no model's weights change."""
    by_served = {m.served_model_name: m for m in src.models}
    models = []
    for m in dst.models:
        old = by_served.get(m.served_model_name)
        if old is None or (old.hf_repo, old.spec.revision, old.quantization) == (m.hf_repo, m.spec.revision, m.quantization):
            continue
        models.append({"model": m.name, "source_model": old.name, "served": m.served_model_name,
                       "source_served": old.served_model_name, "source_dtype": old.quantization,
                       "destination_dtype": m.quantization,
                       "tolerance": golden_mod.tolerance(old.quantization, m.quantization).kind})
    if not models:
        return None
    return {"models": models, "prompts": prompts, "seed": GOLDEN_SEED, "max_tokens": GOLDEN_MAX_TOKENS}


def golden_source_urls(traffic_settings: dict) -> dict:
    """Source base URLs per model from the traffic file: `golden_source` ({model: [URL]}) or
    the nginx back end's `source_servers` ({model: [host:port]})."""
    explicit = traffic_settings.get("golden_source")
    if explicit:
        return {k: list(v) if isinstance(v, list) else [v] for k, v in explicit.items()}
    return {k: [s if "://" in s else f"http://{s}" for s in v]
            for k, v in (traffic_settings.get("source_servers") or {}).items()}


def _diverged(report: golden_mod.GoldenReport) -> list[dict]:
    """The prompts that put a failed report outside its tolerance (worst first)."""
    worst = sorted(report.mismatches, key=lambda m: m["overlap"])
    if report.tolerance.exact:
        return worst
    below = [m for m in worst if m["overlap"] < report.tolerance.min_each]
    return below or worst


def _warm(url: str, served: str, n: int, concurrency: int, api_key: Optional[str]) -> tuple[int, Optional[str]]:
    """n synthetic chat completions straight to one replica; returns (failed, first error)."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    body = {"model": served, "messages": [{"role": "user", "content": "tierscale warm-up"}],
            "max_tokens": 8, "temperature": 0}
    errors: list[str] = []
    with httpx.Client(base_url=url, timeout=120, headers=headers) as client:
        def one(_):
            try:
                r = client.post("/v1/chat/completions", json=body)
                if r.status_code != 200:
                    errors.append(f"HTTP {r.status_code}: {r.text[:200]}")
            except httpx.HTTPError as e:
                errors.append(repr(e))
        with concurrent.futures.ThreadPoolExecutor(max_workers=concurrency) as pool:
            list(pool.map(one, range(n)))
    return len(errors), (errors[0] if errors else None)


def _inner(selector: str) -> str:
    return selector.strip()[1:-1]


class Interrupts:
    """SIGTERM/SIGINT while a rollback or a journal write is under way are held until it ends
    (a half-done rollback is the one state a run must never be left in)."""

    def __init__(self) -> None:
        self.critical = 0
        self.pending: Optional[int] = None
        self.fire: Optional[Callable[[int], None]] = None

    @contextlib.contextmanager
    def shielded(self):
        self.critical += 1
        try:
            yield
        finally:
            self.critical -= 1
            self.fire_pending()

    def fire_pending(self) -> None:
        if self.pending is not None and not self.critical and self.fire is not None:
            signum, self.pending = self.pending, None
            self.fire(signum)


INTERRUPTS = Interrupts()


def _stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


class MigrationRun:
    def __init__(self, journal: Journal, driver, make_traffic: Callable, prom: Prometheus, config: RunConfig,
                 say: Callable[[str], None] = print, warn: Callable[[str], None] = _stderr):
        self.journal, self.driver, self.make_traffic, self.prom = journal, driver, make_traffic, prom
        self.config, self.say, self.warn = config, say, warn
        self.journal_errors: list[str] = []

    # -- the plan as the journal holds it -------------------------------------------------
    def _plan(self, state: RunState) -> dict:
        assert state.start is not None
        return state.start["plan"]

    def run(self, plan_json: Optional[dict], resume: bool) -> int:
        records = self.journal.records()
        state = RunState.read(records)
        if not resume or state.start is None:
            assert plan_json is not None
            self.journal.append("start", plan=plan_json, hold_scale=self.config.hold_scale,
                                eval_interval_s=self.config.eval_interval_s)
            state = RunState.read(self.journal.records())
        else:
            self.say(f"resuming from {self.journal.path}: steps done "
                     f"{sorted(state.steps_done) or 'none'}" + (f", in progress: step {state.current['step']} "
                                                                 f"({state.current['percent']}%)" if state.current else ""))
        if state.finished:
            self.say(f"this run already ended: {state.finished['result']}; start a new journal to run again")
            return EXIT_DONE if state.finished["result"] == "completed" else EXIT_ROLLED_BACK
        plan = self._plan(state)
        if state.rollback is not None:
            # A rollback was decided: it is the only thing a resume may do.
            rb = state.rollback
            self.say(f"the journal records a rollback at step {rb['step'] + 1} ({rb['percent']}%): {rb.get('reason')}; "
                     "repeating the rollback only, no step is applied again")
            traffic = self.make_traffic(state.up, fallback=state.fallback)
            return self._apply_rollback(traffic, plan["destination"], rb["step"], rb["percent"], time.monotonic())
        try:
            return self._execute(plan, state)
        except RunStopped as e:
            self.journal.append("stopped", why=str(e))
            self.journal.append("done", result="stopped")
            self.say(f"STOPPED before any traffic moved: {e}")
            return EXIT_ROLLED_BACK

    def _execute(self, plan: dict, state: RunState) -> int:
        dst, src = plan["destination"], plan["source"]
        gates = [gate_from_json(g) for g in plan["gates"]]
        selectors = plan.get("selectors") or {"destination": '{deployment="dst"}', "source": '{deployment="src"}'}
        window = plan.get("gate_window", "5m")
        fallback = plan["strategy"] == "fallback"

        self.driver.check()  # e.g. no Pulumi CLI: stop before anything changes
        evaluator = GateEvaluator(self.prom, gates, selectors["source"], window, state.baseline)
        if state.baseline is None:
            # The source as it serves now, before anything changes (with the fallback strategy
            # the source stops serving next, so this is the only moment it can be measured).
            baseline = self._wait_baseline(evaluator)
            self.journal.append("baseline", terms=baseline)
            self.say("baseline (the source before any change): " +
                     ", ".join(f"{k}={'no data' if v is None else f'{v:.4g}'}" for k, v in baseline.items()))

        if fallback and not state.fallback:
            self.make_traffic(None, fallback=False).use_fallback()
            self.journal.append("fallback")
            self.say(f"P1 fallback: {src}'s traffic now goes to the fallback endpoint")

        self.say(f"P1 bring up {dst} ({type(self.driver).__name__})")
        outputs = self.driver.up(dst)
        self.journal.append("up", stack=dst, outputs=outputs)
        traffic = self.make_traffic(outputs, fallback=fallback)
        self.say(f"traffic back end: {traffic.describe()}")

        if not state.prechecked:
            # Before any traffic: the split must say 0% (a fresh config from the template), the
            # destination must be scraped, warmed, and already within its gates.
            traffic.set_weight(0)
            self._wait_scraped(selectors["destination"],
                               max(1, sum(len(u) for u in (outputs.get("endpoints") or {}).values())))
            self._warm_up(outputs, plan, state)
            if plan.get("golden"):
                self._golden(plan["golden"], outputs)
            results = self._wait_gate_data(evaluator)
            failed = [r for r in results if not r.holds]
            self.journal.append("precheck", results=[r.to_json() for r in results], holds=not failed)
            if failed:
                raise RunStopped("gates fail on the warm-up traffic already: " + "; ".join(r.describe() for r in failed))
            skipped = [r for r in results if r.skipped]
            self.say("pre-check: every gate holds on the warm-up traffic" + "".join(
                f"; {r.gate} not judged yet: {r.skipped}" for r in skipped))

        for i, step in enumerate(plan["traffic_steps"]):
            if i in state.steps_done:
                continue
            percent = int(step["percent"])
            hold_s = hold_seconds(step["hold"]) * self.config.hold_scale
            try:
                traffic.set_weight(percent)
                live, unreadable = _read_back(traffic)
                if live is not None and live != percent:
                    raise RuntimeError(f"set {percent}% but the back end reports {live}% in force")
            except Exception as e:  # noqa: BLE001 - any failure here may leave a split in force
                # The new weight may or may not be in force: put the source back, verified.
                error = f"{type(e).__name__}: {e}"
                self._journal("error", step=i, percent=percent, error=error)
                return self._rollback(traffic, dst, i, percent, f"setting {percent}% failed: {error}")
            self.journal.append("weight", step=i, percent=percent, hold_s=hold_s, read_back=live,
                                **({"read_error": unreadable} if unreadable else {}))
            self.say(f"step {i + 1}/{len(plan['traffic_steps'])}: {percent}% to {dst}, hold {hold_s:.1f}s "
                     f"(gates every {self.config.eval_interval_s:g}s)")
            failed = self._hold(evaluator, i, percent, hold_s)
            if failed is not None:
                return self._rollback(traffic, dst, i, percent, f"gate {failed.describe()} failed", failed)
            self.journal.append("step_done", step=i, percent=percent)
        self.journal.append("done", result="completed")
        self.say(f"completed: 100% of traffic on {dst}; every gate held at every step. "
                 f"P4: `pulumi destroy --stack {src}` after your rollback window (not done by run)")
        return EXIT_DONE

    # -- phases ----------------------------------------------------------------------------
    def _wait_scraped(self, dst_selector: str, expected: int) -> None:
        """Until Prometheus scrapes at least as many destination targets as there are
        endpoints (a Service endpoint stands for one or more scraped pods)."""
        expr = f"count(up{{{_inner(dst_selector)}}} == 1)"
        deadline = time.monotonic() + self.config.data_timeout_s
        last = None
        while time.monotonic() < deadline:
            try:
                last = self.prom.query(expr)
                if last and last >= expected:
                    self.say(f"Prometheus scrapes {int(last)} destination target(s) ({expr})")
                    return
            except PrometheusError as e:
                last = str(e)
            time.sleep(min(1.0, self.config.eval_interval_s))
        raise RunStopped(f"Prometheus does not scrape the destination after {self.config.data_timeout_s:g}s "
                         f"({expr} -> {last}); the gates could not see it")

    def _warm_up(self, outputs: dict, plan: dict, state: RunState) -> None:
        models = plan.get("served_models") or {}  # destination model name -> served name
        jobs = [(model, url) for model, urls in (outputs.get("endpoints") or {}).items() for url in urls
                if url not in state.warmed]
        if not jobs:
            return
        n = self.config.warmup_requests
        self.say(f"warm-up: {n} synthetic requests to each of {len(jobs)} new replica(s)")
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            futures = {pool.submit(_warm, url, models.get(model, model), n,
                                   self.config.warmup_concurrency, self.config.api_key): (model, url)
                       for model, url in jobs}
            for fut, (model, url) in futures.items():
                failed, error = fut.result()
                self.journal.append("warmup", model=model, url=url, requests=n, failed=failed, error=error)
                if failed:
                    raise RunStopped(f"warm-up of {url} ({model}): {failed} of {n} requests failed: {error}")

    def _golden(self, spec: dict, outputs: dict) -> None:
        """The golden-set consistency check of every upgraded model; RunStopped outside tolerance."""
        done = {r["model"] for r in self.journal.records() if r["event"] == "golden" and r.get("passed")}
        texts = [p["prompt"] for p in spec["prompts"]]
        ids = {p["prompt"]: p["id"] for p in spec["prompts"]}
        for entry in spec["models"]:
            model = entry["model"]
            if model in done:
                continue
            dst_urls = (outputs.get("endpoints") or {}).get(model) or []
            src_urls = (self.config.golden_source or {}).get(entry["source_model"]) or []
            if not dst_urls or not src_urls:
                missing = "destination (the driver's endpoints)" if not dst_urls else \
                    "source (the traffic file's source_servers or golden_source)"
                raise RunStopped(f"golden set for {model}: no {missing} URL for it; the weights change "
                                 f"({entry['source_dtype']} -> {entry['destination_dtype']}), so the outputs must be "
                                 "compared before any traffic moves")
            tol = golden_mod.tolerance(entry["source_dtype"], entry["destination_dtype"])
            self.say(f"golden set: {len(texts)} prompts to {entry['source_model']} ({src_urls[0]}) and {model} "
                     f"({dst_urls[0]}), temperature 0, seed {spec['seed']}; tolerance {tol.kind}")
            try:
                report = golden_mod.check(src_urls[0], entry["source_served"], dst_urls[0], entry["served"], texts, tol,
                                          max_tokens=int(spec["max_tokens"]), seed=int(spec["seed"]),
                                          api_key=self.config.api_key)
            except httpx.HTTPError as e:
                raise RunStopped(f"golden set for {model}: a request failed: {e!r}") from e
            diverged = [] if report.passed else _diverged(report)
            self.journal.append("golden", model=model, tolerance=tol.kind, passed=report.passed,
                                prompts=len(texts), differ=len(report.mismatches),
                                mean_overlap=round(report.mean_overlap, 4),
                                diverged=[{"id": ids.get(d["prompt"]), "prompt": d["prompt"],
                                           "overlap": round(d["overlap"], 4)} for d in diverged])
            self.say(f"{model}: {report.describe()}")
            if not report.passed:
                raise RunStopped(f"golden set for {model}: {report.describe()}; diverged: " + "; ".join(
                    f"{ids.get(d['prompt'])} (overlap {d['overlap']:.2f}): {d['prompt'][:80]!r}" for d in diverged))

    def _wait_baseline(self, evaluator: GateEvaluator) -> dict:
        """The source's terms, once Prometheus has them (a source that serves has them at once)."""
        deadline = time.monotonic() + self.config.data_timeout_s
        while True:
            baseline = evaluator.measure_baseline()
            if all(v is not None for v in baseline.values()) or time.monotonic() > deadline:
                return baseline
            time.sleep(min(1.0, self.config.eval_interval_s))

    def _wait_gate_data(self, evaluator: GateEvaluator) -> list[GateResult]:
        deadline = time.monotonic() + self.config.data_timeout_s
        while True:
            results = evaluator.evaluate()
            if all(r.value is not None or r.skipped for r in results) or time.monotonic() > deadline:
                return results
            time.sleep(self.config.eval_interval_s)

    def _hold(self, evaluator: GateEvaluator, step: int, percent: int, hold_s: float) -> Optional[GateResult]:
        start = time.monotonic()
        end = start + hold_s
        tick = start
        while True:
            tick += self.config.eval_interval_s
            final = tick >= end
            time.sleep(max(0.0, (end if final else tick) - time.monotonic()))
            results = evaluator.evaluate()
            self.journal.append("gates", step=step, percent=percent, final=final, results=[r.to_json() for r in results])
            # Mid-hold a broken threshold rolls back at once; missing data only fails at the end.
            broken = [r for r in results if not r.holds and (final or r.value is not None)]
            if broken:
                return broken[0]
            if final:
                return None

    # -- rollback ------------------------------------------------------------------------
    def _journal(self, event: str, **fields) -> None:
        """Journal, but never let a failing journal stop a rollback: the error is kept and
        reported, and the run exits non-zero."""
        try:
            self.journal.append(event, **fields)
        except OSError as e:
            self.journal_errors.append(f"{event}: {e}")
            self.warn(f"JOURNAL WRITE FAILED ({self.journal.path}, event {event}): {e}")

    def _rollback(self, traffic, dst: str, step: int, percent: int, reason: str,
                  failed: Optional[GateResult] = None) -> int:
        t0 = time.monotonic()
        with INTERRUPTS.shielded():
            fields: dict = {"step": step, "percent": percent, "reason": reason, "detected_at": time.time()}
            if failed is not None:
                fields.update(gate=failed.gate, value=failed.value, op=failed.op, threshold=failed.threshold,
                              unit=failed.unit, evaluated_at=failed.at)
            self._journal("rollback", **fields)
            return self._apply_rollback(traffic, dst, step, percent, t0, reason)

    def _apply_rollback(self, traffic, dst: str, step: int, percent: int, t0: float, reason: str = "") -> int:
        """set_weight(0) and read back until the back end reports 0, with backoff; the outcome
        is journaled and said, and only a verified (or, where the back end cannot read back,
        applied) rollback ends the run as rolled back."""
        with INTERRUPTS.shielded():
            delay = self.config.rollback_backoff_s
            attempts = max(1, self.config.rollback_attempts)
            live: Optional[int] = None
            error = unreadable = None
            for attempt in range(1, attempts + 1):
                error = None
                try:
                    traffic.set_weight(0)
                except Exception as e:  # noqa: BLE001 - reported and retried
                    error = f"{type(e).__name__}: {e}"
                live, unreadable = _read_back(traffic)
                self._journal("rollback_attempt", attempt=attempt, ok=error is None, error=error, read_back=live,
                              read_error=unreadable)
                if live == 0 or (live is None and error is None and unreadable and unreadable.startswith(UNSUPPORTED)):
                    break
                self.warn(f"rollback attempt {attempt}/{attempts}: " + (error or "") +
                          (f"; the back end reports {live}% on {dst}" if live is not None else f"; {unreadable}"))
                if attempt < attempts:
                    time.sleep(delay)
                    delay *= 2
            latency = time.monotonic() - t0
            why = f": {reason}" if reason else ""
            if live == 0:
                self._journal("rollback_verified", read_back=0, zero_at=time.time(), latency_s=latency, attempts=attempt)
                self._journal("done", result="rolled_back")
                self.say(f"ROLLED BACK at step {step + 1} ({percent}%){why}; the destination's weight is 0 again, "
                         f"read back from {traffic.describe()} ({latency * 1000:.0f} ms after the decision, "
                         f"{attempt} attempt(s))")
                return self._exit(EXIT_ROLLED_BACK)
            if live is None and error is None and unreadable and unreadable.startswith(UNSUPPORTED):
                self._journal("rollback_unverified", why=unreadable, zero_at=time.time(), latency_s=latency,
                              attempts=attempt)
                self._journal("done", result="rolled_back")
                self.warn(f"ROLLED BACK at step {step + 1} ({percent}%){why}; weight 0 applied but NOT verified: "
                          f"{unreadable}. Check the destination's share yourself.")
                return self._exit(EXIT_ROLLED_BACK)
            self._journal("rollback_failed", live_percent=live, error=error, read_error=unreadable, attempts=attempts,
                          latency_s=latency)
            state = (f"the destination {dst} still has {live}% of traffic" if live is not None else
                     f"the destination {dst}'s share is UNKNOWN ({unreadable})")
            self.warn(f"ROLLBACK FAILED after {attempts} attempts: {state} (it had {percent}% at step {step + 1})"
                      f"{why}. Last error: {error or 'none'}. Fix the back end ({traffic.describe()}) and run "
                      f"`tierscale migrate run --resume` with this journal ({self.journal.path}): it repeats the "
                      "rollback only.")
            return EXIT_ROLLBACK_FAILED

    def _exit(self, code: int) -> int:
        if self.journal_errors and code != EXIT_ROLLBACK_FAILED:
            self.warn(f"the journal {self.journal.path} is incomplete (writes failed: "
                      f"{'; '.join(self.journal_errors)}); the live state above is what stands")
            return EXIT_ROLLBACK_FAILED
        return code


UNSUPPORTED = "cannot read back: "


def _read_back(traffic) -> tuple[Optional[int], Optional[str]]:
    """(the destination's live share, None) or (None, why it could not be read)."""
    reader = getattr(traffic, "read_weight", None)
    if reader is None:
        return None, f"{UNSUPPORTED}{traffic.describe()} has no read-back"
    try:
        return int(reader()), None
    except NotImplementedError as e:
        return None, f"{UNSUPPORTED}{e}"
    except Exception as e:  # noqa: BLE001 - an unreadable back end is a state to report
        return None, f"{type(e).__name__}: {e}"


def install_interrupt_handler(journal: Journal, say: Callable[[str], None]) -> None:
    """SIGTERM/SIGINT: journal the interruption and exit 130; weights stay as they are, and
    `run --resume` continues (a recorded rollback is repeated, never a step). During a rollback
    or a journal write the signal is held until it ends."""
    def fire(signum: int) -> None:
        journal.append("interrupted", signal=signal.Signals(signum).name)
        say("interrupted: weights left as they are; `tierscale migrate run --resume` continues from the journal")
        raise SystemExit(130)

    def handler(signum, _frame):
        if INTERRUPTS.critical or journal.writing:
            INTERRUPTS.pending = signum
            return
        fire(signum)

    INTERRUPTS.fire = fire
    journal.after_append = INTERRUPTS.fire_pending
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
