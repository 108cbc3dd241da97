"""dvc.yaml stays in step with the code: every code dependency exists, each stage's command names the
module whose run() it calls, and the deps cover every package module the stage imports, directly or not
(whole subpackage folders, so a new module cannot be forgotten)."""

import ast
from pathlib import Path

import yaml

from spherereid.config import TRAIN_SECTIONS

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "model" / "spherereid"
# MLflow bookkeeping: a changed tracking module does not change what train or evaluate compute.
NOT_A_DEPENDENCY = {"train": {"tracking"}, "evaluate": {"tracking"}}
# The stages package itself, the commands' error-to-exit-code wrapper and the credential scrubber of its
# messages change no output (register, whose registration.json holds a redacted URI, lists redaction.py);
# contracts holds names only (renaming an output renames it in dvc.yaml's outs too, which reruns it);
# progress draws bars on stderr.
STAGE_PLUMBING = {"stages", "entrypoint", "redaction", "contracts", "progress"}
# Stages whose module is not stages.<name>: the cross-dataset matrix is an experiments command (stages may
# not import experiments).
STAGE_MODULES = {"matrix": "experiments.matrix_cli"}
READS_NO_PARAMS = {"matrix"}


def _module(name: str) -> str:
    return STAGE_MODULES.get(name, f"stages.{name}")


def _stages():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    return {name: (stage["do"] if "foreach" in stage else stage) for name, stage in stages.items()}


def _module_file(module: str) -> Path | None:
    """The file of a dotted module inside spherereid ('training.loop'), or None when it is not one."""
    path = PKG.joinpath(*module.split("."))
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return None


def _imported_modules(path: Path) -> set[str]:
    """Dotted spherereid modules (relative to the package) that `path` imports, at any depth of code."""
    here = path.relative_to(PKG).with_suffix("").parts
    package = list(here[:-1]) if path.name != "__init__.py" else list(here[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
            elif node.module and node.module.split(".")[0] == "spherereid":
                base = []
                node = ast.ImportFrom(module=".".join(node.module.split(".")[1:]) or None, names=node.names)
            else:
                continue
            stem = base + (node.module.split(".") if node.module else [])
            for alias in node.names:
                for candidate in (stem + [alias.name], stem):
                    if candidate and _module_file(".".join(candidate)):
                        found.add(".".join(candidate))
                        break
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "spherereid" and len(parts) > 1 and _module_file(".".join(parts[1:])):
                    found.add(".".join(parts[1:]))
    return found


def _closure(module: str) -> set[str]:
    seen, todo = set(), [module]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        parts = current.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)) if _module_file(".".join(parts[:i])))
        todo.extend(_imported_modules(_module_file(current)))
    return seen


def _covered(module: str, deps: list[str]) -> bool:
    path = _module_file(module).relative_to(ROOT).as_posix()
    return any(path == dep or path.startswith(dep.rstrip("/") + "/") for dep in deps)


def test_every_code_dependency_exists():
    missing = [
        (name, dep)
        for name, stage in _stages().items()
        for dep in stage.get("deps", [])
        if dep.startswith("model/") and not (ROOT / dep).exists()
    ]
    assert missing == []


def test_each_stage_runs_its_own_module_and_that_module_is_a_dependency():
    for name, stage in _stages().items():
        module = _module(name)
        assert f"python -m spherereid.{module} " in stage["cmd"], name
        assert _covered(module, stage["deps"]), name


def test_code_deps_are_whole_subpackage_folders_or_single_top_level_files():
    for name, stage in _stages().items():
        for dep in stage["deps"]:
            if dep.startswith("model/spherereid/"):
                rest = dep.removeprefix("model/spherereid/").split("/")
                assert len(rest) == 1 or rest[0] == "stages" and rest[1].endswith(".py"), (name, dep)


def test_every_module_a_stage_imports_directly_or_not_is_covered_by_its_deps():
    for name, stage in _stages().items():
        needed = _closure(_module(name))
        assert ("config" in needed or name in READS_NO_PARAMS) and len(needed) > 3, (name, needed)
        skipped = NOT_A_DEPENDENCY.get(name, set())
        missing = sorted(
            m
            for m in needed - STAGE_PLUMBING
            if m.split(".")[0] not in skipped and not _covered(m, stage["deps"])
        )
        assert missing == [], f"dvc.yaml stage {name!r} lacks deps for {missing}"


def test_preprocess_depends_on_the_metrics_its_baseline_uses():
    needed = _closure("stages.preprocess")
    assert "evaluation.metrics" in needed
    assert _covered("evaluation.metrics", _stages()["preprocess"]["deps"])


def test_train_stage_params_are_the_sections_training_reads():
    """dvc.yaml's train `params:` is the one list of the sections a training reads, in its order: a
    section missing there would not rerun the stage when it changes, an extra one would rerun it for
    nothing."""
    assert _stages()["train"]["params"] == list(TRAIN_SECTIONS)
