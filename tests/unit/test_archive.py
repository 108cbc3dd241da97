"""Safe zip / tar extraction: normal archives round-trip, unsafe members and bombs are refused."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from spherereid.data.datasets.archive import ArchiveError, extract_once, safe_extract
from spherereid.data.datasets.base import DatasetError


def _zip(path: Path, members: list[tuple[str, bytes]], links: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return path


def _tar(path: Path, members: list[tarfile.TarInfo], data: dict[str, bytes] | None = None) -> Path:
    data = data or {}
    with tarfile.open(path, "w:gz") as tf:
        for m in members:
            payload = data.get(m.name)
            if payload is not None:
                m.size = len(payload)
            tf.addfile(m, io.BytesIO(payload) if payload is not None else None)
    return path


def _info(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    m = tarfile.TarInfo(name)
    m.type, m.linkname = kind, link
    return m


def test_zip_round_trip(tmp_path):
    arc = _zip(tmp_path / "a.zip", [("top/", b""), ("top/x/a.jpg", b"abc"), ("top/b.txt", b"hello")])
    out = safe_extract(arc, tmp_path / "out")
    assert (out / "top" / "x" / "a.jpg").read_bytes() == b"abc"
    assert (out / "top" / "b.txt").read_bytes() == b"hello"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
        "top",
        "top/b.txt",
        "top/x",
        "top/x/a.jpg",
    ]


@pytest.mark.parametrize(
    "name", ["/etc/evil.txt", "../evil.txt", "a/../../evil.txt", "..\\evil.txt", "C:/evil.txt"]
)
def test_zip_slip_refused(tmp_path, name):
    arc = _zip(tmp_path / "a.zip", [("ok.txt", b"1"), (name, b"pwned")])
    dest = tmp_path / "deep" / "out"
    with pytest.raises(ArchiveError, match="refusing") as exc:
        safe_extract(arc, dest)
    assert name in str(exc.value) and isinstance(exc.value, DatasetError)
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "deep" / "evil.txt").exists()


def test_zip_symlinks_are_refused_even_inside(tmp_path):
    # dataset releases hold no links: any link member is refused (before: a link inside was extracted)
    arc = _zip(tmp_path / "in.zip", [("d/a.txt", b"A")], links={"d/link": "a.txt"})
    with pytest.raises(ArchiveError) as exc:
        safe_extract(arc, tmp_path / "in")
    assert str(exc.value) == (
        f"{arc}: member 'd/link' is a symbolic link (to 'a.txt'); dataset releases hold no links, "
        "refusing to extract"
    )
    bad = _zip(tmp_path / "bad.zip", [("d/a.txt", b"A")], links={"d/link": "../../../etc"})
    with pytest.raises(ArchiveError, match="d/link"):
        safe_extract(bad, tmp_path / "bad")
    assert not (tmp_path / "bad" / "d" / "link").exists()


def test_zip_write_through_escaping_symlink_impossible(tmp_path):
    arc = _zip(tmp_path / "a.zip", [("l/evil.txt", b"x")], links={"l": "../outside"})
    with pytest.raises(ArchiveError, match="'l'"):
        safe_extract(arc, tmp_path / "out")
    assert not (tmp_path / "outside").exists()


def test_zip_size_bomb_refused(tmp_path):
    arc = _zip(tmp_path / "bomb.zip", [("small.txt", b"x" * 10), ("big.bin", b"\0" * 1_000_000)])
    assert arc.stat().st_size < 10_000  # compresses ~1000:1
    with pytest.raises(ArchiveError, match="big.bin"):
        safe_extract(arc, tmp_path / "out", max_total_bytes=100_000)
    safe_extract(arc, tmp_path / "ok", max_total_bytes=1_000_010)  # exactly fits: accepted
    assert (tmp_path / "ok" / "big.bin").stat().st_size == 1_000_000


def test_member_count_cap(tmp_path):
    arc = _zip(tmp_path / "many.zip", [(f"f{i}.txt", b"") for i in range(5)])
    with pytest.raises(ArchiveError, match="more than 3 members.*f3.txt"):
        safe_extract(arc, tmp_path / "out", max_members=3)


def test_tar_round_trip(tmp_path):
    arc = _tar(
        tmp_path / "a.tar.gz",
        [_info("r", tarfile.DIRTYPE), _info("r/a.txt"), _info("r/sub", tarfile.DIRTYPE), _info("r/sub/b")],
        {"r/a.txt": b"data", "r/sub/b": b"bee"},
    )
    out = safe_extract(arc, tmp_path / "out")
    assert (out / "r" / "a.txt").read_bytes() == b"data" and (out / "r" / "sub" / "b").read_bytes() == b"bee"
    assert _tree(out) == ["r", "r/a.txt", "r/sub", "r/sub/b"]


@pytest.mark.parametrize(
    "link, kind",
    [
        (_info("r/s", tarfile.SYMTYPE, "a.txt"), "symbolic link"),
        (_info("r/h", tarfile.LNKTYPE, "r/a.txt"), "hard link"),
    ],
    ids=["symlink-inside", "hardlink-inside"],
)
def test_tar_links_are_refused_even_inside(tmp_path, link, kind):
    # before: both were extracted (a link whose target stayed inside was allowed)
    members = [_info("r", tarfile.DIRTYPE), _info("r/a.txt"), link]
    arc = _tar(tmp_path / "a.tar.gz", members, {"r/a.txt": b"x"})
    with pytest.raises(ArchiveError) as exc:
        safe_extract(arc, tmp_path / "out")
    assert str(exc.value) == (
        f"{arc}: member '{link.name}' is a {kind} (to '{link.linkname}'); dataset releases hold no links, "
        "refusing to extract"
    )
    assert not (tmp_path / "out" / link.name).exists() and not (tmp_path / "out" / link.name).is_symlink()


def _tree(root: Path) -> list[str]:
    """Every path under root (links not followed), relative, sorted."""
    return sorted(
        os.path.relpath(os.path.join(d, n), root) for d, dirs, files in os.walk(root) for n in dirs + files
    )


def _chained_symlink_tar(path: Path) -> Path:
    """The issue's archive: `a` -> b/c/../.. is inside when written, but `b` -> . and `c` -> . written later
    make it resolve two levels above the destination; then a directory (and a file) is created through it."""
    members = [
        _info("a", tarfile.SYMTYPE, "b/c/../.."),
        _info("b", tarfile.SYMTYPE, "."),
        _info("c", tarfile.SYMTYPE, "."),
        _info("a/ESCAPED_DIR/", tarfile.DIRTYPE),
        _info("a/made_by_mkdir/evil.txt"),
    ]
    return _tar(path, members, {"a/made_by_mkdir/evil.txt": b"pwned"})


def test_chained_symlinks_cannot_create_folders_outside(tmp_path):
    arc = _chained_symlink_tar(tmp_path / "evil.tar")
    dest = tmp_path / "x" / "y" / "dest"
    before = _tree(tmp_path)
    with pytest.raises(ArchiveError) as exc:
        safe_extract(arc, dest)
    assert str(exc.value) == (
        f"{arc}: member 'a' is a symbolic link (to 'b/c/../..'); dataset releases hold no links, "
        "refusing to extract"
    )
    # before the fix: ESCAPED_DIR/ and made_by_mkdir/ appeared in tmp_path/x/
    assert [p for p in _tree(tmp_path) if p not in before and not p.startswith("x/y/dest")] == ["x", "x/y"]


@pytest.mark.parametrize("fmt", ["tar", "zip"])
def test_directory_members_are_resolved_inside_the_destination(tmp_path, fmt):
    """Defence in depth: a directory member whose path goes through a link already in the destination
    (here planted before extraction) is refused, as are files; nothing is created outside."""
    dest = tmp_path / "x" / "y" / "dest"
    dest.mkdir(parents=True)
    (dest / "a").symlink_to("../..")
    if fmt == "tar":
        members = [_info("ok", tarfile.DIRTYPE), _info("a/ESCAPED_DIR", tarfile.DIRTYPE)]
        arc = _tar(tmp_path / "d.tar", members)
    else:
        arc = _zip(tmp_path / "d.zip", [("ok/", b""), ("a/ESCAPED_DIR/", b"")])
    with pytest.raises(ArchiveError) as exc:
        safe_extract(arc, dest)
    assert str(exc.value).startswith(f"{arc}: member 'a/ESCAPED_DIR") and "outside" in str(exc.value)
    assert not (tmp_path / "x" / "ESCAPED_DIR").exists()
    files = _zip(tmp_path / "f.zip", [("a/made_by_mkdir/evil.txt", b"x")])
    with pytest.raises(ArchiveError, match="'a/made_by_mkdir/evil.txt' would be written outside"):
        safe_extract(files, dest)
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["y"]  # before: made_by_mkdir/ too


def test_preprocess_cli_refuses_the_chained_symlink_tar_in_one_line(tmp_path):
    import shutil
    import subprocess
    import sys

    arc = _chained_symlink_tar(tmp_path / "evil.tar")
    params = Path(__file__).resolve().parents[2] / "params.yaml"
    script = shutil.which("spherereid") or str(Path(sys.executable).parent / "spherereid")
    before = _tree(tmp_path)
    proc = subprocess.run(
        [
            script,
            "preprocess",
            "--params",
            str(params),
            "--dataset",
            "market1501",
            "--raw",
            str(arc),
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: {arc}: member 'a' is a symbolic link (to 'b/c/../..'); dataset releases hold no links, "
        "refusing to extract"
    )
    # before the fix: out/ESCAPED_DIR and out/made_by_mkdir (two levels above out/work/evil.tar.partial)
    assert _tree(tmp_path) == sorted([*before, "out"])


@pytest.mark.parametrize(
    "member",
    [
        _info("/abs.txt"),
        _info("../up.txt"),
        _info("r/s", tarfile.SYMTYPE, "../../etc/passwd"),
        _info("r/s", tarfile.SYMTYPE, "/etc/passwd"),
        _info("r/h", tarfile.LNKTYPE, "../outside.txt"),
        _info("r/h", tarfile.LNKTYPE, "/etc/passwd"),
        _info("r/dev", tarfile.CHRTYPE),
        _info("r/fifo", tarfile.FIFOTYPE),
    ],
    ids=["absolute", "dotdot", "symlink-up", "symlink-abs", "hardlink-up", "hardlink-abs", "device", "fifo"],
)
def test_tar_unsafe_members_refused(tmp_path, member):
    (tmp_path / "outside.txt").write_text("secret")
    arc = _tar(
        tmp_path / "bad.tar.gz", [_info("r", tarfile.DIRTYPE), member], {"/abs.txt": b"x", "../up.txt": b"x"}
    )
    with pytest.raises(ArchiveError) as exc:
        safe_extract(arc, tmp_path / "out")
    assert member.name in str(exc.value)
    assert not (tmp_path / "up.txt").exists()


def test_tar_size_bomb_refused(tmp_path):
    arc = _tar(tmp_path / "bomb.tgz", [_info("zeros.bin")], {"zeros.bin": b"\0" * 500_000})
    with pytest.raises(ArchiveError, match="zeros.bin"):
        safe_extract(arc, tmp_path / "out", max_total_bytes=499_999)


def test_not_an_archive(tmp_path):
    p = tmp_path / "x.zip"
    p.write_bytes(b"not a zip at all")
    with pytest.raises(ArchiveError, match="neither a zip nor a tar"):
        safe_extract(p, tmp_path / "out")
    with pytest.raises(ArchiveError, match="not found"):
        safe_extract(tmp_path / "missing.zip", tmp_path / "out")


def test_extract_once_reuses_and_refreshes(tmp_path):
    arc = _zip(tmp_path / "r.zip", [("a.txt", b"v1")])
    work = tmp_path / "work"
    out = extract_once(arc, work)
    assert (out / "a.txt").read_bytes() == b"v1"
    (out / "a.txt").write_bytes(b"edited")  # reused as is: not re-extracted
    assert extract_once(arc, work) == out and (out / "a.txt").read_bytes() == b"edited"
    _zip(arc, [("a.txt", b"version-2")])  # a different archive (size changed): extracted again
    assert (extract_once(arc, work) / "a.txt").read_bytes() == b"version-2"
    assert sorted(p.name for p in work.iterdir()) == ["r.zip.d"]  # no partial folder left behind


def test_extract_once_of_a_refused_archive_leaves_nothing(tmp_path):
    arc = _zip(tmp_path / "evil.zip", [("bounding_box_train/a.jpg", b"x"), ("../evil.txt", b"x")])
    work = tmp_path / "work"
    with pytest.raises(ArchiveError, match="'../evil.txt' contains '..'"):
        extract_once(arc, work)
    assert list(work.iterdir()) == []  # before: work/evil.zip.partial/bounding_box_train/a.jpg stayed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.zip", "work"]
