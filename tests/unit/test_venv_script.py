"""`source scripts/venv.sh` is safe in a user's shell: options stay as they were, a later failing command
does not close the shell, and a failed install returns non-zero without killing it."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _bash(script: str, **env: str) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        ["bash", "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )


def test_a_failing_command_after_sourcing_does_not_close_the_shell():
    proc = _bash("set +e; source scripts/venv.sh; false; echo alive")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "alive"


def test_the_callers_options_are_left_as_they_were():
    show = 'echo "$- $(set -o | grep -E "^(errexit|nounset|pipefail)" | tr -s " \\t" "=" | tr "\\n" " ")"'
    for options in ("set +e +u +o pipefail", "set -u -o pipefail"):
        proc = _bash(f"{options}; {show}; source scripts/venv.sh; {show}")
        before, after = [line.strip() for line in proc.stdout.strip().splitlines()[-2:]]
        assert before == after, (options, proc.stdout, proc.stderr)
        assert ("nounset=on" in after) == ("-u" in options)


def test_a_failed_install_returns_non_zero_and_the_shell_goes_on(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the venv folder should go\n")
    proc = _bash(
        'set +e; old_path=$PATH; source scripts/venv.sh; rc=$?; echo "rc=$rc"; '
        '[ "$PATH" = "$old_path" ] && echo path-unchanged; echo alive',
        SPHEREREID_VENV=str(blocker / "venv"),
    )
    lines = proc.stdout.strip().splitlines()
    assert lines == ["rc=1", "path-unchanged", "alive"], (proc.stdout, proc.stderr)
    assert "setting up" in proc.stderr and "failed" in proc.stderr
