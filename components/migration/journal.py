"""The journal of a `tierscale migrate run`: JSON lines, appended and fsync'ed, one per event.

Every line has `event`, `at` (epoch seconds) and `time` (UTC, ISO 8601). Events, in order:

    start      the plan (source, destination, strategy, traffic_steps, gates, selectors, window),
               hold_scale, eval_interval_s
    baseline   the source's own terms (TTFT p99, error ratio) before anything changes
    fallback   (fallback strategy) the source's share now goes to the fallback endpoint
    up         the destination is up: the driver's outputs (endpoints per model)
    warmup     one replica warmed: url, requests, failed
    precheck   the gates at 0%, on the warm-up traffic (all must hold), holds
    weight     step, percent, hold_s: the weight is in force (the back end confirmed it)
    gates      step, percent, final (end of hold or mid-hold), results [{gate, value, op,
               threshold, unit, holds, read, at}]
    step_done  step, percent
    rollback   step, percent, gate, value, threshold, detected_at, zero_at, latency_s
    stopped    why (a failure before any traffic moved)
    done       result: "completed" | "rolled_back" | "stopped"

`run --resume` reads it back (`RunState`): what is done is not done again; the step that was
in progress when the run died is applied again and held for its full hold.
A lock file next to the journal keeps two runs off the same journal.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional


class JournalLocked(RuntimeError):
    pass


class Journal:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock_fd: Optional[int] = None

    def lock(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise JournalLocked(f"another `migrate run` is using {self.path}") from None
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def append(self, event: str, **fields) -> dict:
        now = time.time()
        record = {"event": event, "at": now,
                  "time": datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="milliseconds"), **fields}
        with open(self.path, "a") as f:
            f.write(json.dumps(record, separators=(",", ":")) + "\n")
            f.flush()
            os.fsync(f.fileno())
        return record

    def records(self) -> list[dict]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut short by a kill: everything before it stands
        return out


@dataclass
class RunState:
    start: Optional[dict] = None
    fallback: bool = False
    up: Optional[dict] = None
    warmed: set = field(default_factory=set)
    baseline: Optional[dict] = None
    prechecked: bool = False
    steps_done: set = field(default_factory=set)
    current: Optional[dict] = None  # the last `weight` record
    finished: Optional[dict] = None

    @classmethod
    def read(cls, records: list[dict]) -> "RunState":
        s = cls()
        for r in records:
            kind = r["event"]
            if kind == "start":
                s.start = r
            elif kind == "fallback":
                s.fallback = True
            elif kind == "up":
                s.up = r["outputs"]
            elif kind == "warmup" and not r.get("failed"):
                s.warmed.add(r["url"])
            elif kind == "baseline":
                s.baseline = r["terms"]
            elif kind == "precheck" and r.get("holds"):
                s.prechecked = True
            elif kind == "weight":
                s.current = r
            elif kind == "step_done":
                s.steps_done.add(r["step"])
            elif kind == "done":
                s.finished = r
        return s
