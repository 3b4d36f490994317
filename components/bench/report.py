"""Reports: the summary table, `--json`, and for a sweep latency-vs-load PNGs plus an HTML page
with the PNGs embedded (base64), so the page is one self-contained file."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

from rich.table import Table

METRICS = (("ttft_ms", "TTFT"), ("tpot_ms", "TPOT"), ("itl_ms", "ITL"), ("e2e_ms", "E2E latency"))


def _ms(v) -> str:
    return "-" if v is None else f"{v:,.1f}"


def summary_table(summary: dict, title: str) -> Table:
    table = Table(title=title)
    for col in ("metric", "mean", "p50", "p90", "p99"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for key, label in METRICS:
        s = summary[key]
        table.add_row(f"{label} (ms)", _ms(s["mean"]), _ms(s["p50"]), _ms(s["p90"]), _ms(s["p99"]))
    return table


def totals_lines(summary: dict) -> list[str]:
    lines = [
        f"requests {summary['requests']}  completed {summary['completed']}  errors {summary['errors']} "
        f"(error rate {summary['error_rate']:.2%})  in {summary['duration_s']:.2f} s",
        f"throughput {summary['requests_per_s']:.2f} req/s, {summary['output_tokens_per_s']:.1f} output tokens/s "
        f"(tokens from {'server usage' if summary['tokens_from_usage'] else 'counted chunks'}); "
        f"goodput {summary['goodput_requests_per_s']:.2f} req/s",
    ]
    if summary.get("stopped"):
        lines.append(f"STOPPED: {summary['stopped']}")
    for error in summary.get("error_samples") or ():
        lines.append(f"error: {error}")
    return lines


def slo_table(summary: dict) -> Table:
    table = Table(title="SLO gates")
    for col in ("gate", "value", "threshold", "result"):
        table.add_column(col)
    for name, g in summary["slo"].items():
        fmt = (lambda v: "-" if v is None else f"{v:.2%}") if name == "error_rate" else _ms
        table.add_row(name, fmt(g["value"]), fmt(g["threshold"]), "[green]pass[/]" if g["pass"] else "[red]FAIL[/]")
    return table


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def sweep_plots(runs: list[dict]) -> dict[str, bytes]:
    """PNG bytes per figure: latency percentiles vs offered rate, and achieved throughput/goodput."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = [r["offered_rate"] for r in runs]
    figures = {}
    for key, label in METRICS:
        fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
        for pct, style in (("p50", "o-"), ("p90", "s--"), ("p99", "^-")):
            ax.plot(rates, [r[key][pct] for r in runs], style, label=pct)
        threshold = {"ttft_ms": runs[0]["slo"].get("ttft_p99_ms"), "tpot_ms": runs[0]["slo"].get("tpot_p99_ms")}.get(key)
        if threshold:
            ax.axhline(threshold["threshold"], color="red", linewidth=1, linestyle=":", label="p99 SLO")
        ax.set_xlabel("offered load (requests/s)")
        ax.set_ylabel(f"{label} (ms)")
        ax.set_title(f"{label} vs load")
        ax.grid(True, alpha=0.3)
        ax.legend()
        figures[key.replace("_ms", "")] = _png(fig, plt)
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    ax.plot(rates, rates, ":", color="grey", label="offered")
    ax.plot(rates, [r["requests_per_s"] for r in runs], "o-", label="completed")
    ax.plot(rates, [r["goodput_requests_per_s"] for r in runs], "s-", label="goodput (meets SLOs)")
    ax.set_xlabel("offered load (requests/s)")
    ax.set_ylabel("requests/s")
    ax.set_title("Throughput vs load")
    ax.grid(True, alpha=0.3)
    ax.legend()
    figures["throughput"] = _png(fig, plt)
    return figures


def _png(fig, plt) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def write_sweep_report(out_dir: Path, runs: list[dict], meta: dict) -> list[Path]:
    """<out_dir>/<figure>.png for each figure, and <out_dir>/report.html embedding them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = sweep_plots(runs)
    written = []
    for name, png in figures.items():
        path = out_dir / f"{name}.png"
        path.write_bytes(png)
        written.append(path)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in (
            r["offered_rate"], r["requests"], r["errors"], f"{r['error_rate']:.2%}", r["requests_per_s"],
            r["output_tokens_per_s"], r["goodput_requests_per_s"], _ms(r["ttft_ms"]["p50"]), _ms(r["ttft_ms"]["p99"]),
            _ms(r["tpot_ms"]["p50"]), _ms(r["tpot_ms"]["p99"]), _ms(r["e2e_ms"]["p99"]),
            "pass" if r["pass"] else "FAIL")) + "</tr>"
        for r in runs)
    images = "".join(
        f'<figure><img alt="{name}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
        f"<figcaption>{name}</figcaption></figure>" for name, png in figures.items())
    meta_rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in meta.items())
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tierscale bench: latency vs load</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}
figure{{display:inline-block;margin:0 1em 1em 0}}</style></head><body>
<h1>tierscale bench: latency vs load</h1>
<table>{meta_rows}</table>
<h2>Results</h2>
<table><tr><th>offered req/s</th><th>requests</th><th>errors</th><th>error rate</th><th>req/s</th><th>output tok/s</th>
<th>goodput req/s</th><th>TTFT p50 ms</th><th>TTFT p99 ms</th><th>TPOT p50 ms</th><th>TPOT p99 ms</th><th>E2E p99 ms</th><th>SLO</th></tr>
{rows}</table>
<h2>Figures</h2>
{images}
</body></html>
"""
    page_path = out_dir / "report.html"
    page_path.write_text(page)
    return written + [page_path]
