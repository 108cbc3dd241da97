"""Run tests/gpu without pytest (a bare GPU machine: torch, torchvision, numpy only).

    python benchmarks/run_cuda_tests.py

Uses pytest when it imports; otherwise a minimal stand-in that supports what tests/gpu uses (module-level
`pytestmark`, `mark.skipif`, `mark.parametrize`, module-scoped fixtures, `tmp_path`, `tmp_path_factory`,
`approx`). Prints one line per test and exits 1 when one fails.
"""

from __future__ import annotations

import importlib.util
import inspect
import itertools
import math
import sys
import tempfile
import traceback
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GPU_TESTS = ROOT / "tests" / "gpu"


class _Mark:
    """pytest.mark.NAME / pytest.mark.NAME(args): decorates a function or stands in a pytestmark list."""

    def __init__(self, name: str, args: tuple = (), kwargs: dict | None = None):
        self.name, self.args, self.kwargs = name, args, kwargs or {}

    def __call__(self, *args, **kwargs):
        if len(args) == 1 and inspect.isfunction(args[0]) and not kwargs:
            args[0].__dict__.setdefault("marks", []).append(self)
            return args[0]
        return _Mark(self.name, args, kwargs)


class _Approx:
    def __init__(self, expected: float, rel: float | None = None, abs: float | None = None):
        self.expected, self.rel, self.abs = expected, rel if rel is not None else 1e-6, abs or 1e-12

    def __eq__(self, actual: object) -> bool:
        return math.isclose(float(actual), self.expected, rel_tol=self.rel, abs_tol=self.abs)


def _stand_in() -> types.ModuleType:
    mod = types.ModuleType("pytest")
    mod.mark = types.SimpleNamespace(
        cuda=_Mark("cuda"), skipif=_Mark("skipif"), parametrize=_Mark("parametrize"), slow=_Mark("slow")
    )
    mod.fixture = lambda scope="function": lambda f: setattr(f, "is_fixture", True) or f
    mod.approx = _Approx
    mod.skip = lambda reason="": (_ for _ in ()).throw(RuntimeError(f"skip: {reason}"))
    return mod


def _resolve(name: str, tmp: Path, fixtures: dict, cache: dict) -> object:
    """A fixture's value: tmp_path per test, the others built once per module (their own fixtures first)."""
    if name == "tmp_path":
        return tmp
    if name not in cache:
        f = fixtures[name]
        cache[name] = f(*[_resolve(a, tmp, fixtures, cache) for a in inspect.signature(f).parameters])
    return cache[name]


def _run_without_pytest(tests: Path = GPU_TESTS) -> int:
    sys.modules["pytest"] = _stand_in()
    sys.path.insert(0, str(tests.parent))  # tests/ (shared fixtures), as pytest's pythonpath setting does
    failures = 0
    for path in sorted(tests.glob("test_*.py")):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except ImportError as exc:  # e.g. a test that needs PyYAML on a machine without it
            print(f"SKIP {path.name}: cannot import ({type(exc).__name__}: {exc})")
            continue
        skip = [m for m in getattr(module, "pytestmark", []) if m.name == "skipif" and m.args and m.args[0]]
        if skip:
            print(f"SKIP {path.name}: {skip[0].kwargs.get('reason', '')}")
            continue
        fixtures = {n: f for n, f in vars(module).items() if getattr(f, "is_fixture", False)}
        cache: dict[str, object] = {
            "tmp_path_factory": types.SimpleNamespace(mktemp=lambda name: Path(tempfile.mkdtemp(prefix=name)))
        }

        for name, fn in vars(module).items():
            if not name.startswith("test_") or not callable(fn):
                continue
            params = [m for m in getattr(fn, "marks", []) if m.name == "parametrize"]
            cases = [{}]
            for m in params:
                names = [n.strip() for n in m.args[0].split(",")]
                values = [v if len(names) > 1 else (v,) for v in m.args[1]]
                cases = [{**c, **dict(zip(names, v))} for c, v in itertools.product(cases, values)]
            for case in cases:
                label = f"{path.name}::{name}{list(case.values()) if case else ''}"
                try:
                    tmp = Path(tempfile.mkdtemp(prefix="t"))
                    args = {
                        a: case[a] if a in case else _resolve(a, tmp, fixtures, cache)
                        for a in inspect.signature(fn).parameters
                    }
                    fn(**args)
                    print(f"PASS {label}", flush=True)
                except Exception:  # noqa: BLE001 - report every failure and go on
                    failures += 1
                    print(f"FAIL {label}\n{traceback.format_exc()}", flush=True)
    print(f"{failures} failed")
    return 1 if failures else 0


def main() -> int:
    try:
        import pytest
    except ImportError:
        print("pytest is not installed: running tests/gpu with the minimal stand-in")
        return _run_without_pytest()
    return pytest.main(["-p", "no:cacheprovider", "-q", "-rA", "-m", "cuda", str(GPU_TESTS)])


if __name__ == "__main__":
    raise SystemExit(main())
