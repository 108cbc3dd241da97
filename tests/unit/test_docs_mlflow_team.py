"""docs/mlflow-team.md's server recipe is the one the fault tests run (tests/fixtures/mlflow_server.py,
team_store): the same `mlflow server` options, store schemes and server environment."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from fixtures.mlflow_server import S3_TEST_CREDENTIALS, LocalMlflowServer, team_store

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "mlflow-team.md"


def _recipe_block(text: str) -> str:
    """The first bash block of `text` that starts a plain (no --app-name) `mlflow server`."""
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        if "mlflow server" in block and "--app-name" not in block:
            return block
    raise AssertionError("no bash block with `mlflow server` in docs/mlflow-team.md")


def _server_args(block: str) -> list[str]:
    joined = block.replace("\\\n", " ")
    line = next(ln for ln in joined.splitlines() if ln.strip().startswith("mlflow server"))
    return shlex.split(line, comments=True)[2:]


def _options(args: list[str]) -> dict[str, str]:
    return {args[i]: args[i + 1] for i in range(0, len(args), 2)}


def _exported(block: str) -> set[str]:
    return set(re.findall(r"\b([A-Z][A-Z0-9_]+)=", block))


def test_the_page_runs_the_server_the_fault_tests_run(tmp_path):
    store = team_store("postgresql+psycopg2://u@h:5432/db", "s3://b/p", s3_endpoint="http://s3:9000")
    fixture = _options(LocalMlflowServer(tmp_path, port=5000, store=store)._command()[2:])
    block = _recipe_block(PAGE.read_text())
    page = _options(_server_args(block))
    assert page.keys() == fixture.keys()
    for option in ("--backend-store-uri", "--artifacts-destination"):
        assert page[option].split("://")[0] == fixture[option].split("://")[0], option
    server_env = {*store.env, *S3_TEST_CREDENTIALS, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"}
    assert server_env <= _exported(block), server_env - _exported(block)


def test_the_fixture_docstring_quotes_the_same_command():
    """The recipe's one home in the tests (team_store's docstring) and the page say the same thing."""
    page = _server_args(_recipe_block(PAGE.read_text()))
    doc = team_store.__doc__ or ""
    start = re.search(r"^\s*mlflow server --", doc, flags=re.M)
    assert start is not None, "team_store's docstring quotes no `mlflow server` command"
    quoted = _server_args(doc[start.start() :].split("\n\n")[0])
    assert quoted == page
