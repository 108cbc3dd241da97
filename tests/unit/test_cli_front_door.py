"""`spherereid` as users of real CLIs expect it: --help lists every command, --version, per-command help
with `spherereid <cmd>` as the program, unknown commands one line + exit 2. Run as the installed script."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import spherereid
from spherereid.cli import COMMANDS

SCRIPT = shutil.which("spherereid") or str(Path(sys.executable).parent / "spherereid")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([SCRIPT, *args], capture_output=True, text=True, timeout=120)


def test_help_lists_every_command_with_one_line_each():
    proc = _run("--help")
    assert proc.returncode == 0
    for name, (_, help_line) in COMMANDS.items():
        assert re.search(rf"^\s+{re.escape(name)}\b", proc.stdout, re.M), name
        assert help_line.split()[0] in proc.stdout
    assert {"train", "evaluate", "register", "evaluate-features", "summary"} <= set(COMMANDS)


def test_version():
    proc = _run("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"spherereid {spherereid.__version__}"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_command_help_names_the_program_and_documents_every_option(command):
    proc = _run(command, "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: spherereid {command} ")
    options = proc.stdout.split("options:", 1)[1]
    # every option line carries a help text (an option alone on its line is followed by an indented text)
    lines = [line for line in options.splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if re.match(r"^\s{2}-", line):
            documented = len(line.split("  ")) > 2 or (
                i + 1 < len(lines)
                and re.match(r"^\s{6,}\S", lines[i + 1])
                and not lines[i + 1].lstrip().startswith("-")
            )
            assert documented, f"spherereid {command}: undocumented option {line.strip()!r}"
    if command not in ("evaluate-features", "promote", "tracking"):  # registry / spool tools: no params
        assert "--params" in options


def test_unknown_command_is_one_line_and_exit_2():
    proc = _run("trian")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "unknown command 'trian'" in proc.stderr
    assert proc.stdout == ""


def test_no_command_prints_help_and_exits_2():
    proc = _run()
    assert proc.returncode == 2 and "commands:" in proc.stderr
