"""The journal of a `tierscale migrate run`: JSON lines, appended and fsync'ed, one per event,
each line sealed with a checksum and chained to the line before it.

Line format (version 2)::

    {"v":2,"seq":N,"prev":"<sha256 of line N-1, '' for the first>","event":...,"at":...,
     "time":...,<fields>,"sha256":"<sha256 of this record without its sha256 key>"}

The checksum is the SHA-256 of the record's canonical JSON (keys sorted, no spaces, UTF-8)
without its own `sha256` key. Reading the journal checks every line: valid JSON ending in a
newline, version 2, `seq` counting up from 0, `prev` equal to the previous line's `sha256`,
and its own `sha256`. A line that fails any of these (cut short by a crash, edited by hand,
copied from another journal, reordered or deleted) raises `JournalCorrupt` naming the file and
the line: nothing after a bad line is ever trusted, and nothing is silently skipped. The
checksums guard against accidents, not against someone who rewrites the whole file.

Every line has `event`, `at` (epoch seconds) and `time` (UTC, ISO 8601). Events, in order:

    start      the plan (source, destination, strategy, traffic_steps, gates, selectors, window),
               hold_scale, eval_interval_s, run (a random id)
    live       the destination's share as the back end reports it when a run or resume starts
    baseline   the source's own terms (TTFT p99, error ratio) before anything changes
    fallback   (fallback strategy) the source's share now goes to the fallback endpoint
    up         the destination is up: the driver's outputs (endpoints per model)
    warmup     one replica warmed: url, requests, failed
    precheck   the gates at 0%, on the warm-up traffic (all must hold), holds
    weight     step, percent, hold_s, read_back: the weight is in force (the back end confirmed
               it and reports `read_back` percent)
    gates      step, percent, final (end of hold or mid-hold), results [{gate, value, op,
               threshold, unit, holds, read, at}]
    step_done  step, percent
    error      a step's weight could not be applied (what failed)
    rollback   step, percent, reason, gate, value, threshold, detected_at: a rollback was
               decided; from here on the run only ever sets the destination's weight to 0
    rollback_attempt   attempt, ok, error, read_back: one try of set_weight(0) and its read-back
    rollback_verified  read_back 0, zero_at, latency_s, attempts
    rollback_failed    live_percent (what the back end reports, None if unreadable), error, attempts
    stopped    why (a failure before any traffic moved)
    interrupted  signal
    done       result: "completed" | "rolled_back" | "stopped"

`run --resume` reads it back (`RunState`): what is done is not done again; the step that was
in progress when the run died is applied again and held for its full hold. Once a `rollback`
is recorded, resume never applies a forward step again: it repeats the rollback until the
read-back says 0 and ends as rolled back.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

FORMAT_VERSION = 2


class JournalLocked(RuntimeError):
    pass


class JournalCorrupt(ValueError):
    """A journal line that fails its checks: `path`, `line` (1-based) and why."""

    def __init__(self, path: Path, line: int, why: str):
        self.path, self.line, self.why = Path(path), line, why
        super().__init__(f"{path}:{line}: {why}")


def _canonical(record: dict) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def seal(record: dict) -> dict:
    """The record with its `sha256` (of the canonical JSON of everything else)."""
    body = {k: v for k, v in record.items() if k != "sha256"}
    return {**body, "sha256": hashlib.sha256(_canonical(body)).hexdigest()}


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Journal:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock_fd: Optional[int] = None
        self._tail: Optional[tuple[int, str]] = None  # (next seq, sha256 of the last line)
        self.writing = False  # a signal handler must not append in the middle of an append
        self.after_append = None  # called once a line is on disk (held signals fire there)

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

    def _next(self) -> tuple[int, str]:
        if self._tail is None:
            records = self.records()
            self._tail = (len(records), records[-1]["sha256"] if records else "")
        return self._tail

    def append(self, event: str, **fields) -> dict:
        """Seal and append one event; returns only once it is on disk (file and, for the first
        line, the directory entry fsync'ed)."""
        self.writing = True
        try:
            record = self._append(event, fields)
        finally:
            self.writing = False
        if self.after_append is not None:
            self.after_append()
        return record

    def _append(self, event: str, fields: dict) -> dict:
        seq, prev = self._next()
        now = time.time()
        record = seal({"v": FORMAT_VERSION, "seq": seq, "prev": prev, "event": event, "at": now,
                       "time": datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="milliseconds"), **fields})
        line = (json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
        created = not self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(f"{self.path}: short write ({written} of {len(line)} bytes)")
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            _fsync_dir(self.path.parent)
        self._tail = (seq + 1, record["sha256"])
        return record

    def records(self) -> list[dict]:
        """Every record, each line checked (see the module docstring); JournalCorrupt names
        the first bad line."""
        if not self.path.exists():
            return []
        data = self.path.read_bytes()
        out: list[dict] = []
        prev = ""
        lines = data.split(b"\n")
        complete, last = lines[:-1], lines[-1]
        for n, raw in enumerate(complete, 1):
            out.append(self._check(n, raw, len(out), prev))
            prev = out[-1]["sha256"]
        if last:
            try:
                json.loads(last)
                why = "no newline at its end: the write was cut short (a crash or a full disk)"
            except ValueError:
                why = "torn: not a whole JSON record (a write cut short by a crash or a full disk)"
            raise JournalCorrupt(self.path, len(complete) + 1, why + _advice(len(complete) + 1))
        self._tail = (len(out), prev)
        return out

    def _check(self, n: int, raw: bytes, seq: int, prev: str) -> dict:
        def bad(why: str) -> JournalCorrupt:
            return JournalCorrupt(self.path, n, why + _advice(n))
        try:
            record = json.loads(raw)
        except ValueError:
            raise bad("torn or not JSON (a write cut short, or text that is not a journal record)") from None
        if not isinstance(record, dict):
            raise bad("not a JSON object")
        if record.get("v") != FORMAT_VERSION or "sha256" not in record:
            raise bad(f"not a version-{FORMAT_VERSION} tierscale journal record (no 'v': {FORMAT_VERSION} and "
                      f"'sha256'): a foreign line, or a journal from an older tierscale")
        if seal(record)["sha256"] != record["sha256"]:
            raise bad("checksum mismatch: the line was changed after it was written")
        if record.get("seq") != seq:
            raise bad(f"sequence {record.get('seq')!r} where {seq} belongs: a line was removed, reordered or "
                      "copied from another journal")
        if record.get("prev") != prev:
            raise bad("does not follow the line before it (its 'prev' is not that line's sha256): lines were "
                      "removed, reordered or copied from another journal")
        return record


def _advice(n: int) -> str:
    return (f". Nothing from line {n} on is trusted and the run will not guess: read the live split "
            "(nginx: the status listener's /gateway/traffic), set it by hand if needed, and start a new "
            "--journal (keep this one for the record)")


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
    rollback: Optional[dict] = None  # the `rollback` decision, once recorded
    rollback_verified: Optional[dict] = None
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
            elif kind == "rollback":
                s.rollback = r
            elif kind == "rollback_verified":
                s.rollback_verified = r
            elif kind == "done":
                s.finished = r
        return s


# -- one lock per stack ------------------------------------------------------------------

class StackLocked(RuntimeError):
    pass


def state_dir() -> Path:
    """Where the stack locks live: `TIERSCALE_STATE_DIR`, else ~/.local/state/tierscale (XDG)."""
    explicit = os.environ.get("TIERSCALE_STATE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "tierscale"


def _lock_name(stack: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", stack) + ".lock"


class StackLocks:
    """An flock on `<state dir>/locks/<stack>.lock` for the source and for the destination, so
    no two runs touch the same stack's traffic at once, whatever journal each writes (A -> B
    and A -> C share A's gateway). The holder writes its pid, journal and pair into the file;
    the refusal names them."""

    def __init__(self, stacks: tuple[str, ...], journal: Path, directory: Optional[Path] = None):
        self.stacks = tuple(sorted(set(stacks)))
        self.journal = Path(journal)
        self.directory = Path(directory) if directory else state_dir() / "locks"
        self._fds: list[int] = []

    def acquire(self, pair: tuple[str, str]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            for stack in self.stacks:
                path = self.directory / _lock_name(stack)
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    holder = _holder(fd)
                    os.close(fd)
                    raise StackLocked(
                        f"stack {stack} is in another `migrate run`: {holder} (lock {path}); wait for it to end, "
                        "or stop it (SIGTERM journals the interruption)") from None
                os.ftruncate(fd, 0)
                os.pwrite(fd, json.dumps({"pid": os.getpid(), "journal": str(self.journal.resolve()),
                                          "from": pair[0], "to": pair[1], "since": time.time()}).encode(), 0)
                self._fds.append(fd)
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        while self._fds:
            os.close(self._fds.pop())


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:
        info = {}
    if not info:
        return "holder unknown"
    since = datetime.fromtimestamp(info.get("since", 0), timezone.utc).isoformat(timespec="seconds")
    return (f"pid {info.get('pid')}, journal {info.get('journal')}, {info.get('from')} -> {info.get('to')}, "
            f"since {since}")
