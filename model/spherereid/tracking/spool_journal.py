"""The on-disk spool of tracking records: an append-only JSON-lines journal plus a drained high-water mark.

    <dir>/spool.jsonl   one record a line: {"seq", "run", "kind", "key", "value", "step", "ts"}
    <dir>/spool.offset  {"sent": SEQ}: every record up to SEQ reached MLflow or was set aside (replaced
                        atomically)
    <dir>/spool.dead.jsonl  records set aside because their run is not in the store (a removed mlflow.db,
                        a deleted run), in the format of spool.jsonl, each once
    <dir>/spool.json    {"tracking_uri": URI}: where the records go (without credentials: redact_uri)
    <dir>/spool.lock    flock'ed by the one process that drains this spool

`kind` is metric, param or tag; `ts` is the wall clock in ms when the record was made, `step` the
metric's step (0 for params and tags). A torn last line (a crash mid-append) is dropped with a warning
(its call never returned); any other unreadable line is an error naming the file and line. An append is
all-or-nothing: a write that fails part-way (a full disk) is cut back off the file, so no record is torn
and no sequence number is used twice.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

from ..redaction import redact_uri

log = logging.getLogger(__name__)

SPOOL_FILE, OFFSET_FILE, META_FILE, LOCK_FILE = "spool.jsonl", "spool.offset", "spool.json", "spool.lock"
DEAD_FILE = "spool.dead.jsonl"
KINDS = ("metric", "param", "tag")


class SpoolError(RuntimeError):
    """The spool cannot be used as asked; the message names the file and the fix."""


@dataclass(frozen=True)
class Record:
    """One metric value, param or tag bound for run `run`."""

    seq: int
    run: str
    kind: str
    key: str
    value: float | str
    step: int
    ts: int


def _parse(line: str, where: str) -> Record:
    try:
        raw = json.loads(line)
        rec = Record(**raw)
    except (json.JSONDecodeError, TypeError) as exc:
        raise SpoolError(f"{where}: not a spool record ({exc}); move the file away to start afresh") from None
    if rec.kind not in KINDS:
        raise SpoolError(f"{where}: unknown record kind {rec.kind!r} (expected one of {', '.join(KINDS)})")
    return rec


def _lines(records: list[Record]) -> bytes:
    return "".join(json.dumps(asdict(r)) + "\n" for r in records).encode()


def _append_whole(f: IO[bytes], end: int, data: bytes) -> None:
    """Write `data` at `end` (the end of the last whole record) of the unbuffered file `f` and fsync; on
    an OSError (a full disk) cut the file back to `end` and raise it: all or nothing."""
    fd = f.fileno()
    try:
        if os.fstat(fd).st_size != end:  # an earlier cut-back failed: finish it first
            os.ftruncate(fd, end)
        done = 0
        while done < len(data):  # a short write is continued; nothing stays queued in a buffer
            done += f.write(data[done:])
        os.fsync(fd)
    except OSError:
        try:
            os.ftruncate(fd, end)
        except OSError as exc:  # the next append tries again before writing
            log.warning("%s: could not cut a failed append back off (%s)", getattr(f, "name", f), exc)
        raise


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class SpoolJournal:
    """The files of one spool directory, held (flock) by this process until `close()`."""

    def __init__(self, directory: str | Path, tracking_uri: str | None = None, *, redirect: bool = False):
        """Open (or create) the spool; `tracking_uri` None reads the recorded one. A different URI while
        records are pending is refused, unless `redirect` (a replay told where to send them)."""
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = self._take_lock()
        self.records = self._load()
        self.sent = self._load_offset()
        self.tracking_uri = self._meta_uri(tracking_uri, redirect)
        self._out: IO[bytes] = open(self.dir / SPOOL_FILE, "ab", buffering=0)  # noqa: SIM115 - close()
        self._size = os.fstat(self._out.fileno()).st_size  # the end of the last whole record

    def _take_lock(self) -> IO[str]:
        lock = open(self.dir / LOCK_FILE, "w")  # noqa: SIM115 - held until close()
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise SpoolError(
                f"{self.dir}: the spool is in use by another process (a running training or replay); "
                "wait for it to finish"
            ) from None
        return lock

    def _load(self) -> list[Record]:
        path = self.dir / SPOOL_FILE
        if not path.is_file():
            return []
        data = path.read_text()
        lines = data.split("\n")
        if lines and lines[-1]:  # no newline at the end: a torn append
            log.warning("%s: dropping a torn last record (%d bytes)", path, len(lines[-1]))
            with open(path, "r+") as f:
                f.truncate(len(data) - len(lines[-1]))
        return [_parse(line, f"{path} line {i}") for i, line in enumerate(lines[:-1], 1) if line]

    def _load_offset(self) -> int:
        path = self.dir / OFFSET_FILE
        if not path.is_file():
            return 0
        try:
            return int(json.loads(path.read_text())["sent"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise SpoolError(
                f"{path}: unreadable ({exc}); delete it to resend everything (replay skips what MLflow has)"
            ) from None

    def _meta_uri(self, uri: str | None, redirect: bool) -> str:
        path = self.dir / META_FILE
        recorded = json.loads(path.read_text())["tracking_uri"] if path.is_file() else None
        if uri is None:
            if recorded is None:
                raise SpoolError(f"{path}: not found; {self.dir} holds no spool")
            return str(recorded)
        shown = redact_uri(uri)  # the file never holds credentials; the caller's URI carries them
        if recorded not in (None, shown) and self.pending() and not redirect:
            raise SpoolError(
                f"{self.dir}: {len(self.pending())} records for {recorded} are not sent yet; run "
                f"`spherereid tracking replay {self.dir}` with that server up, or move the spool away"
            )
        if recorded != shown:
            _write_atomic(path, json.dumps({"tracking_uri": shown}) + "\n")
        return uri

    @property
    def next_seq(self) -> int:
        return (self.records[-1].seq if self.records else 0) + 1

    def pending(self) -> list[Record]:
        """Records not known to have reached MLflow, in order."""
        return [r for r in self.records if r.seq > self.sent]

    def append(self, records: list[Record]) -> None:
        """Append and fsync one batch of records, all or nothing: when a write fails part-way (ENOSPC,
        EFBIG) the file is cut back to its previous end and SpoolError names it; `records` and
        `next_seq` then stay as they were."""
        data = _lines(records)
        try:
            _append_whole(self._out, self._size, data)
        except OSError as exc:
            raise SpoolError(
                f"{self.dir / SPOOL_FILE}: could not append {len(records)} tracking records "
                f"({exc.strerror or exc}); the spool is unchanged - free disk space and rerun"
            ) from exc
        self._size += len(data)
        self.records.extend(records)

    def set_aside(self, records: list[Record]) -> Path:
        """Keep `records` (whose run the store does not hold) in spool.dead.jsonl, each once, fsynced;
        the caller then marks them sent. Returns the file."""
        path = self.dir / DEAD_FILE
        with open(path, "ab+", buffering=0) as f:
            f.seek(0)
            held = f.read()
            whole = held[: held.rfind(b"\n") + 1]  # a torn last line (a crash mid-write) is written again
            lines = whole.decode(errors="replace").splitlines()
            kept = {_parse(line, str(path)).seq for line in lines if line}
            new = [r for r in records if r.seq not in kept]
            if new:
                _append_whole(f, len(whole), _lines(new))
        return path

    def mark_sent(self, seq: int) -> None:
        """Persist that every record up to `seq` reached MLflow (or was set aside)."""
        _write_atomic(self.dir / OFFSET_FILE, json.dumps({"sent": seq}) + "\n")
        self.sent = seq

    def close(self) -> None:
        self._out.close()
        self._lock.close()
