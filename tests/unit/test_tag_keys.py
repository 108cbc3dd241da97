"""Every MLflow tag key is spelled once, in tracking/tags.py: an AST scan of model/, components/ and
pipeline/ fails on a tag key written as a literal anywhere else.

Two rules, docstrings aside:
- by value: a string literal equal to a key of tags.py (or starting with one of its prefixes, e.g.
  "xeval."), except the keys that are also ordinary words of the code (PLAIN: "dataset" is a KFP metadata
  key, "run_id" a key of registration.json, ...);
- by use, for every literal, in tags.py or not: the key (or a literal value) of a tag write (set_tag
  and friends, RunTag, InputTag), of a dict literal handed to a tags writer (set_tags, `tags=`,
  `<...tags>.update`) or assigned to a name ending in "tags"; a key read from something named "*tags"
  (`run_tags.get("x")`, `mv.tags["x"]`), a value compared with such a read, and a `tags.<key>` filter.
"""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TAGS = ROOT / "model" / "spherereid" / "tracking" / "tags.py"
SCANNED = ("model", "components", "pipeline")
# Tag keys and values that are also ordinary words of the code: the use rules alone apply to them.
PLAIN = {
    "dataset",  # KFP artifact metadata, lineage.json, the collected lists' match key
    "dataset_hash",  # lineage.json and registration.json
    "run_id",  # mlflow_run.json, registration.json, component inputs
    "params_hash",  # an ablation cell's done.json
    "seed",  # checkpoint and sampler state
    "precision",  # precision_check.json
    "passed",  # the gate's words in the model card and summaries
    "failed",
    "unknown",
    "parent",
    "ablation",  # the `spherereid ablation` command and its folder
}
# Calls writing one tag: the position of the key argument.
TAG_WRITERS = {
    "set_tag": 1,
    "set_experiment_tag": 1,
    "set_registered_model_tag": 1,
    "set_model_version_tag": 2,
    "delete_tag": 1,
    "delete_experiment_tag": 1,
    "delete_registered_model_tag": 1,
    "delete_model_version_tag": 2,
    "RunTag": 0,
    "InputTag": 0,
    "ExperimentTag": 0,
}
FILTER = re.compile(r"(?<![\w.])tags\.(\w|$)")


def tag_constants(path: Path = TAGS) -> set[str]:
    """The string values bound to UPPER_CASE names at the top level of the tags module."""
    values = set()
    for node in ast.parse(path.read_text()).body:
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            pair = isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple)
            names = target.elts if pair else [target]
            consts = node.value.elts if pair else [node.value]
            for name, value in zip(names, consts, strict=False):
                if isinstance(name, ast.Name) and name.id.isupper() and isinstance(value, ast.Constant):
                    if isinstance(value.value, str):
                        values.add(value.value)
    return values


def _name(node: ast.AST) -> str:
    """The last name of an expression: `a.b.tags` -> tags, `get_run_tags(ref)` -> get_run_tags."""
    if isinstance(node, ast.Call):
        return _name(node.func)
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return ""


def _literals(node: ast.AST | None) -> list[ast.Constant]:
    """The string constants of a key: a literal, or the literal parts of an f-string."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node]
    if isinstance(node, ast.JoinedStr):
        return [v for v in node.values if isinstance(v, ast.Constant) and v.value]
    return []


def _value_literals(node: ast.AST | None) -> list[ast.Constant]:
    """A tag value's string constants: a literal, or the branches of `"a" if x else "b"`."""
    if isinstance(node, ast.IfExp):
        return _value_literals(node.body) + _value_literals(node.orelse)
    return _literals(node) if isinstance(node, ast.Constant) else []


def _dict_keys(node: ast.AST) -> list[ast.Constant]:
    """The literal keys (and literal values) of a dict display or comprehension."""
    if isinstance(node, ast.Dict):
        return [c for k, v in zip(node.keys, node.values) for c in _literals(k) + _value_literals(v)]
    if isinstance(node, ast.DictComp):
        return _literals(node.key) + _value_literals(node.value)
    return []


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def _is_tag_read(node: ast.AST) -> bool:
    """`x.tags["k"]`, `run_tags.get("k")`, `get_run_tags(ref).get("k")`."""
    if isinstance(node, ast.Subscript):
        return _name(node.value).lower().endswith("tags")
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
        return _name(node.func.value).lower().endswith("tags")
    return False


def _used_as_tag_key(node: ast.AST) -> list[ast.Constant]:
    """The literals `node` uses as a tag key (or a tag value compared with a read)."""
    found: list[ast.Constant] = []
    if isinstance(node, ast.Call):
        callee = _name(node.func)
        if callee in TAG_WRITERS and len(node.args) > TAG_WRITERS[callee]:
            key = TAG_WRITERS[callee]
            found += _literals(node.args[key]) + [c for v in node.args[key + 1 :] for c in _value_literals(v)]
        if callee in TAG_WRITERS:
            found += [c for kw in node.keywords if kw.arg == "key" for c in _literals(kw.value)]
        updates_tags = callee == "update" and _name(getattr(node.func, "value", None)).lower().endswith(
            "tags"
        )
        if callee.endswith("tags") or updates_tags:
            found += [c for arg in node.args for c in _dict_keys(arg)]
        found += [c for kw in node.keywords if kw.arg == "tags" for c in _dict_keys(kw.value)]
    if _is_tag_read(node):
        key = node.slice if isinstance(node, ast.Subscript) else (node.args or [None])[0]
        found += _literals(key)
    if isinstance(node, ast.Assign | ast.AnnAssign):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        if any(_name(t).lower().endswith("tags") for t in targets):
            found += _dict_keys(node.value)
    if isinstance(node, ast.Compare) and any(_is_tag_read(n) for n in [node.left, *node.comparators]):
        found += [c for n in [node.left, *node.comparators] for c in _literals(n)]
    return found


def violations(path: Path, keys: set[str], rel: str) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    docs = _docstrings(tree)
    distinct = keys - PLAIN
    prefixes = tuple(k for k in distinct if k.endswith("."))
    hits = set()
    for node in ast.walk(tree):
        for const in _used_as_tag_key(node):
            hits.add((const.lineno, const.value, "used in a tag"))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            if node.value in distinct or (prefixes and node.value.startswith(prefixes)):
                hits.add((node.lineno, node.value, "a tag key of tracking/tags.py"))
            elif FILTER.search(node.value):
                hits.add((node.lineno, node.value, "a tags.<key> filter"))
    return [f"{rel}:{line} {value!r}: {why}" for line, value, why in sorted(hits)]


def test_no_tag_key_literal_outside_the_tags_module():
    keys = tag_constants()
    assert {"quality_gate", "dvc_data_hash", "kfp_run_id", "lock.owner", "xeval."} <= keys
    files = [p for d in SCANNED for p in sorted((ROOT / d).rglob("*.py")) if p != TAGS]
    assert len(files) > 100
    found = [hit for p in files for hit in violations(p, keys, p.relative_to(ROOT).as_posix())]
    assert found == []


def test_the_scan_catches_each_way_of_spelling_a_key(tmp_path):
    keys = {"quality_gate", "dataset", "xeval.", "lock.owner"}
    src = tmp_path / "gate.py"
    src.write_text(
        '"""Tags quality_gate on the run."""\n'  # 1: a docstring: not code
        'runs.set_tags(ref, {"quality_gate": FAILED, "quality_gate_reason": reason})\n'  # 2
        'c.set_tag(run_id, "failed_task", task)\n'  # 3: a key tags.py does not have yet
        'name = get_run_tags(ref).get("dataset", "")\n'  # 4: a plain word, read as a tag
        'meta = {"dataset": name}\n'  # 5: a plain word, not a tag
        'key = f"xeval.{test}.{metric}"\n'  # 6: a prefix
        "found = c.search_runs(ids, filter_string=f\"tags.{KEY} = '{x}'\")\n"  # 7
        'if mv.tags.get(QUALITY_GATE) == "failed":\n    pass\n'  # 8: a tag value compared
        'data_tags = {"data_revision": rev}\n'  # 10
        'c.set_model_version_tag(lock, "3", "lock.owner", owner)\n'  # 11
        'mv = c.create_model_version(name, source=s, tags={"run_id": run_id})\n'  # 12
        'version_tags.update({"seed": "1"})\n'  # 13
        'tags = {f"ablation.set.{k}": v for k, v in overrides.items()}\n'  # 14
        'tags = {QUALITY_GATE: "passed" if ok else "failed"}\n'  # 15: literal values
        'c.set_tag(run_id, FAILED_TASK, "unknown")\n'  # 16
    )
    assert violations(src, keys, "gate.py") == [
        "gate.py:2 'quality_gate': a tag key of tracking/tags.py",
        "gate.py:2 'quality_gate': used in a tag",
        "gate.py:2 'quality_gate_reason': used in a tag",
        "gate.py:3 'failed_task': used in a tag",
        "gate.py:4 'dataset': used in a tag",
        "gate.py:6 'xeval.': a tag key of tracking/tags.py",
        "gate.py:7 'tags.': a tags.<key> filter",
        "gate.py:8 'failed': used in a tag",
        "gate.py:10 'data_revision': used in a tag",
        "gate.py:11 'lock.owner': a tag key of tracking/tags.py",
        "gate.py:11 'lock.owner': used in a tag",
        "gate.py:12 'run_id': used in a tag",
        "gate.py:13 '1': used in a tag",
        "gate.py:13 'seed': used in a tag",
        "gate.py:14 'ablation.set.': used in a tag",
        "gate.py:15 'failed': used in a tag",
        "gate.py:15 'passed': used in a tag",
        "gate.py:16 'unknown': used in a tag",
    ]


def test_the_tags_module_constants_are_collected_from_its_source(tmp_path):
    src = tmp_path / "tags.py"
    src.write_text('A = "a"\nB, C = "b", "c"\nD = ("d",)\nlower = "x"\nN = 3\n')
    assert tag_constants(src) == {"a", "b", "c"}
