"""`SpoolJournal.append` is all-or-nothing: a write that fails part-way (a full disk, a file-size limit)
leaves the file and the records as they were, raises one line naming the file, and no sequence number is
ever used twice. Faults are injected at the OS boundary: a file whose write stops with ENOSPC after N
bytes, and a real RLIMIT_FSIZE in a child process."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from spherereid.tracking.spool import SPOOL_FILE, Record, SpoolError, SpoolJournal

MODEL = str(Path(__file__).resolve().parents[2] / "model")


class FullDisk:
    """The journal's open file, on a disk with `room` bytes left: a write past it stores what fits, then
    fails with ENOSPC (as write(2) does). `room = None`: space was freed."""

    def __init__(self, f, room: int) -> None:
        self._f, self.room = f, room

    def write(self, data):
        if self.room is None or len(data) <= self.room:
            if self.room is not None:
                self.room -= len(data)
            return self._f.write(data)
        self._f.write(data[: self.room])
        self._f.flush()
        self.room = 0
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name):
        return getattr(self._f, name)


def recs(start: int, n: int, run: str = "r", step: int = 0) -> list[Record]:
    return [Record(start + i, run, "metric", f"k{i}", float(i), step, 1_700_000_000_000) for i in range(n)]


def on_disk(directory: Path) -> list[tuple[int, int]]:
    """(seq, step) of every line in the spool file; fails on a line that is not a whole record."""
    return [(r["seq"], r["step"]) for r in map(json.loads, (directory / SPOOL_FILE).read_text().splitlines())]


def test_a_full_disk_mid_append_leaves_the_journal_as_it_was(tmp_path):
    journal = SpoolJournal(tmp_path, "sqlite:///x.db")
    journal.append(recs(1, 2, step=0))
    before = (tmp_path / SPOOL_FILE).read_bytes()
    disk = FullDisk(journal._out, room=30)  # the OS boundary: the journal's file object
    journal._out = disk
    with pytest.raises(SpoolError, match=rf"{tmp_path / SPOOL_FILE}: .*No space left on device"):
        journal.append(recs(journal.next_seq, 3, step=1))
    assert (tmp_path / SPOOL_FILE).read_bytes() == before  # no torn half-record left behind
    assert [r.seq for r in journal.records] == [1, 2] and journal.next_seq == 3
    disk.room = None  # space freed: the next append goes on after the last whole record
    journal.append(recs(journal.next_seq, 2, step=2))
    journal.close()
    assert on_disk(tmp_path) == [(1, 0), (2, 0), (3, 2), (4, 2)]
    again = SpoolJournal(tmp_path)  # reopened: every line parses, no sequence number twice
    assert [(r.seq, r.step) for r in again.records] == [(1, 0), (2, 0), (3, 2), (4, 2)]
    again.close()


CHILD = textwrap.dedent(
    """
    import resource, signal, sys
    sys.path.insert(0, sys.argv[1])
    from spherereid.tracking.spool import Record, SpoolError, SpoolJournal, SPOOL_FILE

    def recs(start, n, step):
        return [Record(start + i, "r", "metric", f"k{i}", float(i), step, 1) for i in range(n)]

    journal = SpoolJournal(sys.argv[2], "sqlite:///x.db")
    journal.append(recs(1, 2, 0))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
    size = (journal.dir / SPOOL_FILE).stat().st_size
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + 40, hard))
    try:
        journal.append(recs(journal.next_seq, 3, 1))
    except (SpoolError, OSError) as exc:
        print(type(exc).__name__, exc, flush=True)
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    journal.append(recs(journal.next_seq, 1, 2))
    journal.close()
    """
)


def test_a_file_size_limit_mid_append_leaves_no_torn_record_and_no_reused_seq(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, MODEL, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("SpoolError ") and "File too large" in proc.stdout, proc.stdout
    assert on_disk(tmp_path) == [(1, 0), (2, 0), (3, 2)]
