"""The params sections a training reads are listed once in the code: FitConfig's fields (config.py), read
as TRAIN_SECTIONS. The train stage, the KFP component and pipelines and the ablation runner build the
FitConfig from that list; dvc.yaml's copy is checked in test_dvc_yaml.py.

A listing is any literal or signature naming at least 4 of the train sections and no other section (a list
of every section, like config.SECTIONS, is another list): a tuple/list/set of names or strings, a dict's
string keys, a call's keyword or positional-name arguments, a function's parameters, a class's fields."""

import ast
from pathlib import Path

from spherereid.config import SECTIONS, TRAIN_SECTIONS

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("model/spherereid", "components", "pipeline")
HOME = ("model/spherereid/config.py", "FitConfig")
# Listings that are something else than "the sections a training reads", each with its reason.
OTHER_LISTS = {
    ("model/spherereid/experiments/cells.py", "CELL_SECTIONS"): "the sections an ablation cell overrides",
}
# KFP declares a component's inputs in its signature (only there: not in its body), checked equal to
# TRAIN_SECTIONS below.
KFP_TRAIN_COMPONENT = ("components/train.py", "train()")
TRAIN = set(TRAIN_SECTIONS)
OTHER_SECTIONS = set(SECTIONS) - TRAIN
AT_LEAST = 4


def _names(node: ast.AST) -> list[str]:
    """The names `node` lists, when it is a kind of node that can list the sections."""
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return [e.value if isinstance(e, ast.Constant) else e.id for e in node.elts if _is_name(e)]
    if isinstance(node, ast.Dict):
        return [k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)]
    if isinstance(node, ast.Call):
        return [k.arg for k in node.keywords if k.arg] + [a.id for a in node.args if isinstance(a, ast.Name)]
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        a = node.args
        return [p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
    if isinstance(node, ast.ClassDef):
        return [
            s.target.id for s in node.body if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)
        ]
    return []


def _is_name(e: ast.AST) -> bool:
    return isinstance(e, ast.Name) or (isinstance(e, ast.Constant) and isinstance(e.value, str))


def _scope(node: ast.stmt) -> str | None:
    """The name of a top-level statement: its def or class, or the target of a module-level assignment."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return node.name
    targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
    return next((t.id for t in targets if isinstance(t, ast.Name)), None)


def listings(root: Path) -> dict[tuple[str, str | None], list[int]]:
    """(file, top-level name) -> the lines where the train sections are listed, under `root`; a top-level
    function's own signature is named `name()`, a listing in its body `name`."""
    found: dict[tuple[str, str | None], list[int]] = {}
    for folder in SCANNED:
        for path in sorted((root / folder).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            for top in ast.parse(path.read_text(encoding="utf-8")).body:
                for node in ast.walk(top):
                    names = set(_names(node))
                    if len(names & TRAIN) >= AT_LEAST and not names & OTHER_SECTIONS:
                        scope = (
                            f"{top.name}()"
                            if node is top and isinstance(top, ast.FunctionDef)
                            else _scope(top)
                        )
                        found.setdefault((rel, scope), []).append(node.lineno)
    return found


def test_the_train_sections_are_listed_in_one_place():
    found = listings(ROOT)
    others = {k: v for k, v in found.items() if k not in (HOME, KFP_TRAIN_COMPONENT, *OTHER_LISTS)}
    assert not others, (
        "the train sections are listed again at "
        + "; ".join(
            f"{path} ({name}) line {', '.join(map(str, lines))}" for (path, name), lines in others.items()
        )
        + ": build a FitConfig with FitConfig.from_params(params) (KFP: fit_config_from_structs) "
        "and iterate TRAIN_SECTIONS"
    )
    assert HOME in found, "FitConfig's fields are the one list (config.py); the scan no longer sees them"
    assert set(OTHER_LISTS) <= set(found), "an exempted listing is gone: drop it from OTHER_LISTS"


def test_the_kfp_train_component_declares_exactly_the_train_sections_in_order():
    """KFP needs each input in the component's signature: the allowed second spelling, kept equal."""
    path, signature = KFP_TRAIN_COMPONENT
    name = signature.removesuffix("()")
    (func,) = [n for n in ast.parse((ROOT / path).read_text()).body if getattr(n, "name", None) == name]
    assert [p for p in _names(func) if p in set(SECTIONS)] == list(TRAIN_SECTIONS)
