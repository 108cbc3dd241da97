"""The resume key's code fingerprint: the meaning of the training code (syntax tree, no docstrings), so
comment, docstring and layout edits resume and code edits retrain."""

import shutil
from pathlib import Path

import pytest

import spherereid
from spherereid.training import resume

PACKAGE = Path(spherereid.__file__).parent


@pytest.fixture
def copy(tmp_path):
    dest = tmp_path / "spherereid"
    shutil.copytree(PACKAGE, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def test_code_fingerprint_changes_when_any_file_of_data_modeling_or_training_changes(copy):
    base = resume.code_fingerprint(copy)
    assert base == resume.code_fingerprint(PACKAGE) and len(base) == 16
    files = [p for sub in ("data", "modeling", "training") for p in sorted((copy / sub).rglob("*.py"))]
    files.append(copy / "device.py")  # the precision policy decides what training computes too
    assert len(files) > 20 and any(p.parent.name == "datasets" for p in files)  # nested folders count too
    for path in files:
        original = path.read_bytes()
        path.write_bytes(original + b"\nEDITED = 1\n")
        assert resume.code_fingerprint(copy) != base, f"editing {path.relative_to(copy)} kept the fingerprint"
        path.write_bytes(original)
    # a new module in a fingerprinted subpackage counts; files outside them (stages, tracking) do not
    (copy / "modeling" / "new_head.py").write_text("X = 1\n")
    assert resume.code_fingerprint(copy) != base
    (copy / "modeling" / "new_head.py").unlink()
    (copy / "stages" / "train.py").write_text("X = 2\n")
    (copy / "inference.py").write_text("X = 3\n")
    assert resume.code_fingerprint(copy) == base


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{path.name}: the test expects exactly one {old!r}"
    path.write_text(text.replace(old, new))


def test_a_comment_edit_keeps_the_fingerprint(copy):
    base = resume.code_fingerprint(copy)
    _edit(copy / "training" / "trainer.py", "torch.manual_seed(seed)", "torch.manual_seed(seed)  # reworded")
    (copy / "modeling" / "losses.py").write_text(
        "# a new first line\n" + (copy / "modeling" / "losses.py").read_text()
    )
    assert resume.code_fingerprint(copy) == base


def test_a_docstring_or_layout_edit_keeps_the_fingerprint(copy):
    base = resume.code_fingerprint(copy)
    trainer = copy / "training" / "trainer.py"
    _edit(trainer, '"""What fit() returns:', '"""Reworded: what fit() returns:')  # a class docstring
    _edit(
        trainer, "    train = config.train\n", "    train = (\n        config.train\n    )\n"
    )  # layout only
    step = copy / "training" / "step.py"
    step.write_text('"""A new module docstring."""\n' + step.read_text().split('"""', 2)[2])
    assert resume.code_fingerprint(copy) == base


def test_a_code_edit_changes_the_fingerprint(copy):
    base = resume.code_fingerprint(copy)
    _edit(copy / "training" / "trainer.py", "torch.manual_seed(seed)", "torch.manual_seed(seed + 1)")
    assert resume.code_fingerprint(copy) != base


def test_code_meaning_drops_docstrings_but_keeps_other_strings():
    plain = "def f(x):\n    return x + 1\n"
    documented = (
        '"""Module."""\n\n\ndef f(x):\n    """Add one."""\n    # comment\n    return (x +\n            1)\n'
    )
    assert resume.code_meaning(plain) == resume.code_meaning(documented)
    # a string that is not the first statement is code (e.g. a message), not a docstring
    assert resume.code_meaning(plain) != resume.code_meaning(
        "def f(x):\n    'a'\n    'b'\n    return x + 1\n"
    )
    assert resume.code_meaning("X = 'a'\n") != resume.code_meaning("X = 'b'\n")
