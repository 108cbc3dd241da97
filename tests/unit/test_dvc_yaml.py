"""dvc.yaml stays in step with the code: every code dependency exists and each stage's command names
the module whose run() it calls."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _stages():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    return {name: (stage["do"] if "foreach" in stage else stage) for name, stage in stages.items()}


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
        assert f"python -m spherereid.stages.{name} " in stage["cmd"], name
        assert f"model/spherereid/stages/{name}.py" in stage["deps"], name


def test_every_module_a_stage_imports_is_a_dependency():
    """The modules each stage module imports from the package (one level) are listed in its deps."""
    import ast

    for name, stage in _stages().items():
        if name == "register":
            continue  # registry/pyfunc are listed; tracking changes do not change a registration
        tree = ast.parse((ROOT / "model/spherereid/stages" / f"{name}.py").read_text())
        imported = {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.level == 2 and node.module is None
            for alias in node.names
        } | {
            node.module.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.level == 2 and node.module
        }
        ignored = {"config", "tracking", "plots", "datasets", "lineage"}
        for module in sorted(imported - ignored):
            dep = f"model/spherereid/{module}.py"
            assert dep in stage["deps"] or (ROOT / "model/spherereid" / module).is_dir(), (name, dep)
