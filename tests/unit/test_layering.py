"""Dependencies point one way, enforced from the source:
pipeline -> components -> stages -> {tracking, reporting} -> training -> {data, modeling} -> config;
evaluation uses data and config only (and progress bars); the library never imports kfp, components or
pipeline."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "model" / "spherereid"

# What each part of the package may import from the package (besides itself). The top-level modules
# config, param_coercion, entrypoint and cli count as parts of their own.
ALLOWED = {
    "contracts": set(),  # file, folder and environment-variable names; every part may import it
    "config": set(),
    "redaction": set(),  # credentials out of URIs before they are logged or written
    "entrypoint": {"redaction"},  # logging set-up and one-line errors for every command's main()
    "param_coercion": {"config"},
    "device": set(),  # device and precision policy, shared by training and inference
    "progress": set(),  # tqdm or a silent stand-in
    "data": {"config"},
    "modeling": {"config"},
    "inference": {"data", "modeling", "config", "device", "progress"},  # never training
    "evaluation": {"data", "config", "progress"},
    "training": {"data", "modeling", "config", "device", "progress"},
    "reporting": {"training", "evaluation", "data", "modeling", "config"},
    "tracking": {
        "inference",
        "device",
        "training",
        "evaluation",
        "data",
        "modeling",
        "config",
        "entrypoint",
        "redaction",
    },
    "launch": {"config"},
    "deploy": {
        "redaction",
        "progress",
        "tracking",
        "reporting",
        "inference",
        "device",
        "training",
        "evaluation",
        "data",
        "modeling",
        "config",
        "entrypoint",
    },
    "stages": {
        "redaction",
        "inference",
        "device",
        "progress",
        "deploy",
        "tracking",
        "reporting",
        "training",
        "evaluation",
        "data",
        "modeling",
        "config",
        "param_coercion",
        "entrypoint",
        "launch",  # stages.tasks: the train task's torchrun / TrainJob; stages.cleanup deletes a failed one
    },
    "experiments": {
        "redaction",
        "stages",
        "tracking",
        "reporting",
        "evaluation",
        "data",
        "modeling",
        "training",
        "config",
        "entrypoint",
        "inference",
        "device",
        "progress",
    },
    "cli": {
        "redaction",
        "experiments",
        "entrypoint",
        "inference",
        "device",
        "progress",
        "stages",
        "deploy",
        "tracking",
        "reporting",
        "training",
        "evaluation",
        "data",
        "modeling",
        "config",
        "launch",
    },
}
# contracts.py imports nothing of ours, so every part may import it.
ALLOWED = {part: deps | {"contracts"} if part != "contracts" else deps for part, deps in ALLOWED.items()}
FORBIDDEN_TOP_LEVEL = {"kfp", "components", "pipeline"}
# Files kept at an old path only so that MLflow models logged before a move still load (their entry
# script imports that path); each may import its new home, and nothing in the library imports them.
LEGACY_SHIMS = {"tracking/pyfunc_model.py": {"deploy"}}


def _part(path: Path) -> str:
    """The layer a file belongs to: its first folder under spherereid, or its own name at the top."""
    rel = path.relative_to(PKG)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _is_part(name: str) -> bool:
    return (PKG / name).is_dir() or (PKG / f"{name}.py").is_file()


def _package_imports(path: Path) -> list[tuple[int, str]]:
    """(line, first package part) of every import of spherereid code in `path`, relative or absolute."""
    rel = path.relative_to(PKG)
    package = list(rel.parts[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)]
            target = base + (node.module.split(".") if node.module else [])
            if target:
                out.append((node.lineno, target[0]))
            else:  # from . import x (at the top): x is the part, unless it is a name from __init__
                out.extend((node.lineno, a.name) for a in node.names if _is_part(a.name))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "spherereid":
            parts = node.module.split(".")[1:]
            out.extend((node.lineno, parts[0]) for _ in [0] if parts)
            if not parts:
                out.extend((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                if parts[0] == "spherereid" and len(parts) > 1:
                    out.append((node.lineno, parts[1]))
    return out


def _top_level_imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, a.name.split(".")[0]) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module.split(".")[0]))
    return out


def _violations(root: Path) -> list[str]:
    bad = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.as_posix() == "__init__.py":
            continue
        part = _part(path) if root == PKG else rel.parts[0] if len(rel.parts) > 1 else rel.stem
        if part not in ALLOWED:
            bad.append(f"{rel}: part {part!r} is not in the allowed-imports table; add it to ALLOWED")
            continue
        allowed = ALLOWED[part] | LEGACY_SHIMS.get(rel.as_posix(), set())
        for line, target in _package_imports(path):
            if target != part and target not in allowed:
                bad.append(f"{rel}:{line} imports spherereid.{target}, which {part} may not use")
        for line, name in _top_level_imports(path):
            if name in FORBIDDEN_TOP_LEVEL:
                bad.append(f"{rel}:{line} imports {name}; the library never imports kfp/components/pipeline")
    return bad


def test_every_import_follows_the_allowed_imports_table():
    assert len(list(PKG.rglob("*.py"))) > 40
    assert _violations(PKG) == []


def test_nothing_in_the_library_imports_a_legacy_shim():
    stems = {Path(shim).stem for shim in LEGACY_SHIMS}
    hits = []
    for path in sorted(PKG.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom | ast.Import):
                names = {a.name.rsplit(".", 1)[-1] for a in node.names}
                modules = set(getattr(node, "module", None) and node.module.split(".") or [])
                if stems & (names | modules):
                    hits.append(f"{path.relative_to(PKG)}:{node.lineno}")
    assert hits == []


def test_the_table_itself_points_one_way():
    """No cycles: a part never (transitively) may import one that may import it."""

    def reach(part, seen=()):
        for dep in ALLOWED[part]:
            assert dep not in seen + (part,), f"cycle through {part} -> {dep}"
            reach(dep, seen + (part,))

    for part in ALLOWED:
        reach(part)
    assert "training" not in ALLOWED["evaluation"] and "kfp" not in set().union(*ALLOWED.values())


def test_a_forbidden_import_is_reported_with_file_line_and_target(tmp_path, monkeypatch):
    fake = tmp_path / "spherereid"
    (fake / "evaluation").mkdir(parents=True)
    (fake / "evaluation" / "metrics.py").write_text("import os\n\nfrom ..training.loop import extract\n")
    (fake / "data").mkdir()
    (fake / "data" / "x.py").write_text("from kfp import dsl\nfrom ..config import A\n")
    monkeypatch.setitem(globals(), "PKG", fake)
    assert _violations(fake) == [
        "data/x.py:1 imports kfp; the library never imports kfp/components/pipeline",
        "evaluation/metrics.py:3 imports spherereid.training, which evaluation may not use",
    ]
