"""Dependencies point one way: pipeline -> components -> spherereid; the library never imports kfp."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_library_never_imports_kfp_components_or_pipeline():
    files = sorted((ROOT / "model" / "spherereid").rglob("*.py"))
    assert len(files) > 10
    offenders = {
        str(f.relative_to(ROOT)): sorted(_imports(f) & {"kfp", "components", "pipeline"}) for f in files
    }
    assert {k: v for k, v in offenders.items() if v} == {}
