"""What to send and when: request sizes (synthetic, ShareGPT, Azure trace) and arrival times.

Arrivals follow `vllm bench serve`: with a request rate R and burstiness k, the gaps between
requests are gamma-distributed with shape k and mean 1/R (k = 1 is a Poisson process; k < 1
burstier, k > 1 more even). A trace replay keeps the trace's own arrival times instead, divided
by `time_scale` (2 replays twice as fast), and its prompt and output sizes.

Token counts of text are estimated at 4 characters per token (no tokenizer is loaded); a
synthetic prompt of P tokens is P short words, which OpenAI/Llama-style BPE tokenizers encode
as about one token each.
"""

from __future__ import annotations

import csv
import json
import math
import random
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterator, Optional

CHARS_PER_TOKEN = 4
WORDS = ("time", "year", "people", "way", "day", "man", "thing", "woman", "life", "child", "world", "school",
         "state", "family", "student", "group", "country", "problem", "hand", "part", "place", "case", "week",
         "company", "system", "program", "question", "work", "government", "number", "night", "point", "home")


class WorkloadError(ValueError):
    """A dataset or workload option that cannot be used; the message names the option."""


@dataclass(frozen=True)
class Request:
    prompt: str
    prompt_tokens: int  # estimated; the server's usage is what gets reported when it is sent
    output_tokens: int  # max_tokens asked for
    at: Optional[float] = None  # seconds after the start (trace replay), else None


def synthetic_prompt(tokens: int, rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(max(1, tokens)))


class Dataset:
    """A finite or endless source of requests; `arrivals` says whether it carries its own times."""

    name = "dataset"
    timed = False

    def __iter__(self) -> Iterator[Request]:
        raise NotImplementedError


class Synthetic(Dataset):
    """Fixed sizes, or (spread > 0) log-normal sizes with these medians, endless."""

    def __init__(self, prompt_tokens: int, output_tokens: int, seed: int = 0, spread: float = 0.0,
                 max_prompt_tokens: int = 8192, max_output_tokens: int = 2048):
        self.prompt_tokens, self.output_tokens, self.seed, self.spread = prompt_tokens, output_tokens, seed, spread
        self.max_prompt_tokens, self.max_output_tokens = max_prompt_tokens, max_output_tokens
        self.name = (f"synthetic {prompt_tokens}/{output_tokens} tokens" if not spread
                     else f"sharegpt-like (log-normal, medians {prompt_tokens}/{output_tokens} tokens, sigma {spread})")

    def __iter__(self) -> Iterator[Request]:
        rng = random.Random(self.seed)
        while True:
            if self.spread:
                p = min(self.max_prompt_tokens, max(4, round(self.prompt_tokens * math.exp(rng.gauss(0, self.spread)))))
                o = min(self.max_output_tokens, max(4, round(self.output_tokens * math.exp(rng.gauss(0, self.spread)))))
            else:
                p, o = self.prompt_tokens, self.output_tokens
            yield Request(synthetic_prompt(p, rng), p, o)


class ShareGPT(Dataset):
    """A ShareGPT-format JSON file: a list of {"conversations": [{"from": "human", "value": ...},
    {"from": "gpt", "value": ...}, ...]}. Like vllm bench serve: the first human turn is the prompt,
    the reply's length is the output size; pairs under 4 tokens either way are skipped. Cycled."""

    def __init__(self, path: Path, seed: int = 0, output_tokens: Optional[int] = None):
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise WorkloadError(f"--dataset: cannot read {path} as ShareGPT JSON: {e}") from None
        if not isinstance(data, list):
            raise WorkloadError(f"--dataset: {path}: a ShareGPT file is a JSON list of conversations")
        pairs = []
        for item in data:
            conv = item.get("conversations") if isinstance(item, dict) else None
            if not isinstance(conv, list) or len(conv) < 2:
                continue
            first, reply = conv[0], conv[1]
            if not (isinstance(first, dict) and isinstance(reply, dict)):
                continue
            prompt, answer = str(first.get("value", "")), str(reply.get("value", ""))
            p, o = len(prompt) // CHARS_PER_TOKEN, len(answer) // CHARS_PER_TOKEN
            if p < 4 or o < 4:
                continue
            pairs.append(Request(prompt, p, output_tokens or o))
        if not pairs:
            raise WorkloadError(f"--dataset: {path}: no conversation with a human turn and a reply of 4+ tokens each")
        random.Random(seed).shuffle(pairs)
        self.pairs = pairs
        self.name = f"ShareGPT {Path(path).name} ({len(pairs)} conversations)"

    def __iter__(self) -> Iterator[Request]:
        while True:
            yield from self.pairs


def _trace_time(value: str) -> float:
    """'2023-11-16 18:17:03.9799600' (7 fractional digits, which fromisoformat refuses) -> seconds."""
    base, _, frac = value.strip().partition(".")
    stamp = datetime.strptime(base, "%Y-%m-%d %H:%M:%S").timestamp()
    return stamp + (float("0." + frac) if frac else 0.0)


class AzureTrace(Dataset):
    """The Azure LLM inference trace format (TIMESTAMP, ContextTokens, GeneratedTokens; Patel et
    al., Splitwise, ISCA 2024): replayed at the trace's arrival times / time_scale, with its sizes."""

    timed = True

    def __init__(self, path: Path, time_scale: float = 1.0, seed: int = 0, max_prompt_tokens: int = 32768):
        rows = []
        try:
            with open(path, newline="") as f:
                reader = csv.DictReader(f)
                missing = {"TIMESTAMP", "ContextTokens", "GeneratedTokens"} - set(reader.fieldnames or ())
                if missing:
                    raise WorkloadError(f"--dataset: {path}: not an Azure trace CSV (missing column(s) {', '.join(sorted(missing))})")
                for n, row in enumerate(reader, start=2):
                    try:
                        rows.append((_trace_time(row["TIMESTAMP"]), int(row["ContextTokens"]), int(row["GeneratedTokens"])))
                    except (ValueError, TypeError):
                        raise WorkloadError(f"--dataset: {path} line {n}: bad TIMESTAMP/ContextTokens/GeneratedTokens "
                                            f"({row.get('TIMESTAMP')!r}, {row.get('ContextTokens')!r}, {row.get('GeneratedTokens')!r})") from None
        except OSError as e:
            raise WorkloadError(f"--dataset: cannot read {path}: {e.strerror or e}") from None
        except UnicodeDecodeError as e:
            raise WorkloadError(f"--dataset: {path} is not a text CSV ({e.reason})") from None
        if not rows:
            raise WorkloadError(f"--dataset: {path}: the trace has no rows")
        rows.sort()
        t0 = rows[0][0]
        rng = random.Random(seed)
        self.requests = [Request(synthetic_prompt(min(ctx, max_prompt_tokens), rng), min(ctx, max_prompt_tokens),
                                 max(1, gen), (t - t0) / time_scale) for t, ctx, gen in rows]
        self.name = f"Azure trace {Path(path).name} ({len(rows)} requests, time scale {time_scale:g})"

    def __iter__(self) -> Iterator[Request]:
        yield from self.requests


def load_dataset(spec: Optional[str], prompt_tokens: int, output_tokens: int, *, time_scale: float = 1.0,
                 seed: int = 0, spread: float = 0.0) -> Dataset:
    """`synthetic` (or None), `sharegpt-like`, a .json ShareGPT file or a .csv Azure trace."""
    if spec in (None, "", "synthetic"):
        return Synthetic(prompt_tokens, output_tokens, seed, spread)
    if spec == "sharegpt-like":
        return Synthetic(prompt_tokens, output_tokens, seed, spread or 0.8)
    path = Path(spec)
    if not path.is_file():
        raise WorkloadError(f"--dataset: {spec!r} is not 'synthetic', 'sharegpt-like' or a readable file")
    if path.suffix.lower() == ".csv":
        return AzureTrace(path, time_scale, seed)
    return ShareGPT(path, seed)


def gaps(rate: float, burstiness: float, rng: random.Random) -> Iterator[float]:
    """Seconds between arrivals: gamma(shape=burstiness, mean=1/rate); 0 for an infinite rate."""
    if math.isinf(rate):
        while True:
            yield 0.0
    theta = 1.0 / (rate * burstiness)
    while True:
        yield rng.gammavariate(burstiness, theta)
