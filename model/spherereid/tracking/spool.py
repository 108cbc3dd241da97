"""Training never waits on tracking: metrics, params and tags go to a local spool and a daemon thread
drains it to MLflow in order, with `MlflowClient.log_batch`.

    <dir>/spool.jsonl   the append-only journal, one record a line: {"seq", "run", "kind", "key", "value",
                        "step", "ts"} (kind metric, param or tag; ts: wall clock in ms; step 0 but metrics')
    <dir>/spool.offset  {"sent": SEQ}: every record up to SEQ reached MLflow or was set aside (atomic)
    <dir>/spool.dead.jsonl  records set aside, each once, because their run is not in the store (a removed
                        mlflow.db, a deleted run)
    <dir>/spool.json    {"tracking_uri": URI}: where the records go (without credentials: redact_uri)
    <dir>/spool.lock    flock'ed by the one process that drains this spool

- `log_metrics` / `log_params` / `set_tags` append, flush and fsync one batch and return; they never
  touch the network. An append is all-or-nothing: a write that fails part-way (a full disk) is cut back
  off the file. A torn last line (a crash mid-append) is dropped with a warning (its call never
  returned); any other unreadable line is an error naming the file and line.
- The drain thread retries connection errors (and 429/5xx, and a busy store: sqlite's "database is
  locked" while an `mlflow ui` writes) with exponential backoff, for ever. Records of a run the store
  does not hold are set aside in spool.dead.jsonl with one warning naming the run and the file, and the
  other runs' records go on. Any other error (e.g. a changed param value) stops it, kept in `error`.
- After each batch the drained high-water mark is persisted. The one batch whose fate is unknown (the
  first one after opening, or one sent while the connection broke) is compared with the run's metric
  history first, so a replay after a partial flush duplicates nothing. Params are immutable in MLflow,
  but an identical value may be sent again; tags are simply overwritten.
- `close(timeout)` waits at most `timeout` s and says whether everything reached the server. What is
  left goes with a rerun of the train stage or `spherereid tracking replay DIR` (`replay`): in order, to
  the URI in DIR/spool.json (a set MLFLOW_TRACKING_URI wins, with a warning), nothing twice; a server that
  stays unreachable, a busy store or a refused record is one line naming the URI and what to do, exit 2.
"""

from __future__ import annotations

import argparse
import fcntl
import functools
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from ..contracts import TRACKING_URI_ENV
from ..entrypoint import run_cli
from ..redaction import redact_text, redact_uri
from .client import client, is_connection_error, non_api_status, with_retries

__all__ = ["MetricSpool", "ReplayResult", "SpoolError", "replay"]

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


# ---------------------------------------------------------------- sending

# MLflow's log_batch limits: 1000 metrics, 100 params, 100 tags, 1000 entities in all
LIMITS = {"metric": 1000, "param": 100, "tag": 100}
MAX_ENTITIES = 1000


def batches(records: list[Record]) -> Iterator[list[Record]]:
    """Consecutive records of one run, cut to log_batch's limits; order is kept."""
    batch: list[Record] = []
    counts = dict.fromkeys(LIMITS, 0)
    for rec in records:
        full = len(batch) >= MAX_ENTITIES or counts[rec.kind] >= LIMITS[rec.kind]
        if batch and (full or rec.run != batch[0].run):
            yield batch
            batch, counts = [], dict.fromkeys(LIMITS, 0)
        batch.append(rec)
        counts[rec.kind] += 1
    if batch:
        yield batch


def _already_logged(c, batch: list[Record]) -> set[int]:
    """Sequence numbers of the batch's metrics that the run's history already holds."""
    run = batch[0].run
    seen: set[int] = set()
    for key in {r.key for r in batch if r.kind == "metric"}:
        have = {(m.step, m.timestamp, repr(float(m.value))) for m in c.get_metric_history(run, key)}
        seen.update(
            r.seq
            for r in batch
            if r.kind == "metric" and r.key == key and (r.step, r.ts, repr(float(r.value))) in have
        )
    return seen


def send_batch(c, batch: list[Record], *, dedupe: bool) -> Counts:
    """log_batch one run's records; with `dedupe`, skip metric values the server already has."""
    from mlflow.entities import Metric, Param, RunTag

    skip = _already_logged(c, batch) if dedupe else set()
    todo = [r for r in batch if r.seq not in skip]
    metrics = [Metric(r.key, float(r.value), r.ts, r.step) for r in todo if r.kind == "metric"]
    params = [Param(r.key, str(r.value)) for r in todo if r.kind == "param"]
    tags = [RunTag(r.key, str(r.value)) for r in todo if r.kind == "tag"]
    if metrics or params or tags:
        c.log_batch(batch[0].run, metrics=metrics, params=params, tags=tags)
    return Counts(len(metrics), len(params), len(tags), len(skip))


def is_transient(exc: BaseException) -> bool:
    """A connection error, a 429/5xx answer that is not MLflow's (a restarting server or its proxy), or a
    store that is busy for now (`store_busy`)."""
    status = non_api_status(exc)
    busy = status is not None and (status == 429 or status >= 500)
    return is_connection_error(exc) or busy or store_busy(exc)


SQLITE_BUSY = ("database is locked", "database table is locked", "database is busy")


def store_busy(exc: BaseException) -> bool:
    """MLflow's TEMPORARILY_UNAVAILABLE (its answer to every database OperationalError, e.g. sqlite's
    "database is locked" after its busy timeout), or such a sqlite error itself."""
    from mlflow.exceptions import MlflowException

    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, MlflowException) and cur.error_code == "TEMPORARILY_UNAVAILABLE":
            return True
        if isinstance(cur, sqlite3.OperationalError) and any(m in str(cur) for m in SQLITE_BUSY):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def run_is_gone(c, run: str) -> bool:
    """True when the store holds no run `run`, or holds it deleted: MLflow refuses its records for good."""
    from mlflow.exceptions import MlflowException

    try:
        return c.get_run(run).info.lifecycle_stage == "deleted"
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return True
        raise


def deliver(c, journal: SpoolJournal, batch: list[Record], *, dedupe: bool, gone: set[str]) -> Counts:
    """`send_batch`, unless the batch's run is not in the store: then the batch is set aside in
    spool.dead.jsonl (the run joins `gone`, with one warning, and its later batches are set aside unsent).
    The caller marks the batch sent either way."""
    run = batch[0].run
    if run not in gone:
        try:
            return send_batch(c, batch, dedupe=dedupe)
        except Exception as exc:  # noqa: BLE001 - only a refusal for a missing run is handled here
            if is_transient(exc) or not run_is_gone(c, run):
                raise
        gone.add(run)
        log.warning(
            "%s: run %s is not in %s (a removed store or a deleted run): its %d unsent records are set "
            "aside in %s; the other runs' records go on",
            journal.dir,
            run,
            journal.tracking_uri,
            sum(r.run == run for r in journal.pending()),
            journal.dir / DEAD_FILE,
        )
    journal.set_aside(batch)
    return Counts(set_aside=len(batch))


def summary(exc: BaseException) -> str:
    """`Type: first line of the message`, any URI in it without credentials."""
    text = str(exc)
    return f"{type(exc).__name__}: {redact_text(text.splitlines()[0]) if text else ''}"


@dataclass(frozen=True)
class Counts:
    """Records sent by kind, metric values skipped because MLflow already had them, and records set aside
    because their run is not in the store."""

    metrics: int = 0
    params: int = 0
    tags: int = 0
    skipped: int = 0
    set_aside: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(*(a + b for a, b in zip(self._tuple(), other._tuple(), strict=True)))

    def _tuple(self) -> tuple[int, int, int, int, int]:
        return self.metrics, self.params, self.tags, self.skipped, self.set_aside


class MetricSpool:
    """A run's metrics, params and tags, spooled in `directory` and drained to `tracking_uri` by a
    daemon thread (`start=False`: spool only, e.g. to replay later)."""

    def __init__(
        self,
        directory: str | Path,
        run_id: str,
        tracking_uri: str,
        *,
        start: bool = True,
        base_delay: float = 0.5,
        max_delay: float = 15.0,
    ) -> None:
        self.run_id, self.tracking_uri = run_id, tracking_uri
        self.journal = SpoolJournal(directory, tracking_uri)
        self.error: str | None = None  # why the drain stopped for good
        self.retrying: str | None = None  # the transient error the drain is waiting out, if any
        self.sent_counts = Counts()
        self._delays = (base_delay, max_delay)
        self._cond = threading.Condition()
        self._closing = self._stopped = False
        self._thread = threading.Thread(target=self._drain, name=f"spool-{run_id[:8]}", daemon=True)
        if start:
            self._thread.start()

    # ------------------------------------------------------------ the caller's side (never blocks)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self._append("metric", {k: float(v) for k, v in metrics.items()}, step)

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._append("param", {k: str(v) for k, v in params.items()}, 0)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._append("tag", {k: str(v) for k, v in tags.items()}, 0)

    def _append(self, kind: str, items: Mapping[str, float | str], step: int) -> None:
        ts = int(time.time() * 1000)
        with self._cond:
            if self._closing:
                raise SpoolError(f"{self.journal.dir}: the spool is closed")
            seq = self.journal.next_seq
            recs = [
                Record(seq + i, self.run_id, kind, str(k), v, int(step), ts)
                for i, (k, v) in enumerate(items.items())
            ]
            if recs:
                self.journal.append(recs)
                self._cond.notify_all()

    @property
    def pending(self) -> int:
        """How many records have not reached MLflow yet."""
        with self._cond:
            return len(self.journal.pending())

    @property
    def draining(self) -> bool:
        return self._thread.is_alive()

    def close(self, timeout: float = 30.0) -> bool:
        """Wait up to `timeout` s for the drain; True when every record reached MLflow. The spool
        files stay, so `replay` (or the next MetricSpool on this directory) sends the rest."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            while self._thread.is_alive() and self.journal.pending() and self.error is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, 0.5))
            self._stopped = True
            self._cond.notify_all()
            done = not self.journal.pending()
        if self._thread.ident is not None:
            self._thread.join(timeout=max(0.0, deadline - time.monotonic()) + 1.0)
        if not self._thread.is_alive():
            self.journal.close()
        if not done:
            log.warning(
                "%s: %d records not sent to %s (%s); replay with `spherereid tracking replay %s`",
                self.journal.dir,
                self.pending,
                redact_uri(self.tracking_uri),
                self.why_unsent(),
                self.journal.dir,
            )
        return done

    def why_unsent(self) -> str:
        """Why records are still pending: the drain's error, the error it is retrying, or an outage."""
        return self.error or self.retrying or "server unreachable"

    # ------------------------------------------------------------ the drain thread

    def _next_batch(self) -> list[Record] | None:
        """The next batch to send; None once stopped (or closing with nothing left)."""
        with self._cond:
            while not self._stopped:
                pending = self.journal.pending()
                if pending:
                    return next(batches(pending))
                if self._closing:
                    return None
                self._cond.wait()
            return None

    def _drain(self) -> None:
        c, uncertain, delay, outage, gone = None, True, self._delays[0], False, set[str]()
        while (batch := self._next_batch()) is not None:
            try:
                c = c or client(self.tracking_uri)
                counts = deliver(c, self.journal, batch, dedupe=uncertain, gone=gone)
            except Exception as exc:  # noqa: BLE001 - transient errors are retried, others kept
                if not is_transient(exc):
                    self._fail(exc)
                    return
                self.retrying = summary(exc)
                if not outage:
                    state = "unreachable" if is_connection_error(exc) else f"busy ({self.retrying})"
                    log.warning(
                        "tracking server %s %s; spooling in %s and retrying",
                        redact_uri(self.tracking_uri),
                        state,
                        self.journal.dir,
                    )
                uncertain, outage = True, True
                self._sleep(delay)
                delay = min(2 * delay, self._delays[1])
                continue
            self.journal.mark_sent(batch[-1].seq)  # file I/O outside the lock: appends never wait on it
            with self._cond:
                self.sent_counts += counts
                self._cond.notify_all()
            if outage:
                shown = redact_uri(self.tracking_uri)
                log.info("tracking server %s is back; draining %s", shown, self.journal.dir)
            uncertain, delay, outage, self.retrying = False, self._delays[0], False, None

    def _sleep(self, seconds: float) -> None:
        with self._cond:
            if not self._stopped:
                self._cond.wait(seconds)

    def _fail(self, exc: BaseException) -> None:
        with self._cond:
            self.error = summary(exc)
            self._cond.notify_all()
        shown = redact_uri(self.tracking_uri)
        log.error("%s: draining to %s stopped: %s", self.journal.dir, shown, self.error)


@dataclass(frozen=True)
class ReplayResult:
    """What a replay sent, where to; `gone`: the runs not in the store, whose records were set aside."""

    directory: Path
    tracking_uri: str
    sent: Counts
    runs: tuple[str, ...]
    gone: tuple[str, ...] = ()


def replay(directory: str | Path, *, tracking_uri: str | None = None) -> ReplayResult:
    """Send a spool's remaining records now, in order, to its recorded server (or `tracking_uri`); each
    batch is checked against the run's history first, so nothing is sent twice. Records of a run the store
    does not hold are set aside in spool.dead.jsonl. An unreachable server raises TrackingUnavailableError
    (after the usual retries), a busy or refusing store SpoolError; what was sent until then stays sent."""
    if not (Path(directory) / META_FILE).is_file():
        raise SpoolError(
            f"{directory}: no spool here ({META_FILE} missing); the train stage writes one next to its "
            "checkpoints"
        )
    journal = SpoolJournal(directory, tracking_uri, redirect=True)
    try:
        uri, total, runs, gone = journal.tracking_uri, Counts(), list[str](), set[str]()
        c = client(uri)
        for batch in batches(journal.pending()):
            counts = _replay_batch(c, journal, batch, gone)
            journal.mark_sent(batch[-1].seq)
            total += counts
            if batch[0].run not in runs and batch[0].run not in gone:
                runs.append(batch[0].run)
        return ReplayResult(journal.dir, uri, total, tuple(runs), tuple(sorted(gone)))
    finally:
        journal.close()


def _replay_batch(c, journal: SpoolJournal, batch: list[Record], gone: set[str]) -> Counts:
    """`deliver` one batch with the usual retries on connection errors; a busy store or a refusal is one
    SpoolError saying what to do (the batch and those after it stay in the spool)."""
    from mlflow.exceptions import MlflowException

    uri = journal.tracking_uri
    send = functools.partial(deliver, c, journal, batch, dedupe=True, gone=gone)
    try:
        return with_retries(send, what=f"replay spool {journal.dir}", uri=uri)
    except MlflowException as exc:
        if store_busy(exc):
            todo = "another process (e.g. `mlflow ui`) holds the sqlite store: replay when it is done"
        else:
            todo = f"MLflow refuses them; to go on without them, move {journal.dir} away (it keeps them)"
        raise SpoolError(
            f"{journal.dir}: records {batch[0].seq}-{batch[-1].seq} of run {batch[0].run} not sent to {uri} "
            f"({summary(exc)}); {todo}"
        ) from None


# ---------------------------------------------------------------- `spherereid tracking replay DIR`


def _target_uri(directory: Path) -> str | None:
    """MLFLOW_TRACKING_URI when set and different from the spool's recorded URI, else None (recorded)."""
    env_uri = os.environ.get(TRACKING_URI_ENV, "").strip()
    meta = directory / META_FILE
    if not env_uri or not meta.is_file():
        return None
    try:
        recorded = json.loads(meta.read_text()).get("tracking_uri")
    except (json.JSONDecodeError, AttributeError):
        recorded = None
    shown = redact_uri(env_uri)  # spool.json holds the URI without credentials
    if recorded != shown:
        log.warning("%s: spool recorded for %s; replaying to MLFLOW_TRACKING_URI=%s", meta, recorded, shown)
    return env_uri


def replay_main(argv: Sequence[str], prog: str) -> int:
    parser = argparse.ArgumentParser(prog=prog, description="send a spool's remaining records to MLflow")
    parser.add_argument("dir", type=Path, help="the spool directory (the train stage's checkpoints folder)")
    args = parser.parse_args(argv)

    def body() -> int:
        res = replay(args.dir, tracking_uri=_target_uri(args.dir))
        s = res.sent
        sent_to = ", ".join(res.runs) or "none"
        shown = redact_uri(res.tracking_uri)
        print(
            f"replayed {args.dir} to {shown}: {s.metrics} metric values, {s.params} params, "
            f"{s.tags} tags sent (run {sent_to}); {s.skipped} metric values were already there"
        )
        if s.set_aside:
            print(
                f"{s.set_aside} records of runs not in {shown} set aside in "
                f"{res.directory / DEAD_FILE} (run {', '.join(res.gone)})"
            )
        return 0

    return run_cli(body)


def main(argv: Sequence[str] | None = None, prog: str = "spherereid tracking") -> int:
    """`spherereid tracking <subcommand>`; today: replay."""
    parser = argparse.ArgumentParser(prog=prog, description="tracking tools (today: replay a spool)")
    sub = parser.add_subparsers(dest="subcommand", metavar="<subcommand>", required=True)
    sub.add_parser("replay", add_help=False, help="replay DIR: send a spool's remaining records to MLflow")
    args, rest = parser.parse_known_args(argv)
    return replay_main(rest, prog=f"{prog} {args.subcommand}")


if __name__ == "__main__":
    raise SystemExit(main())
