"""Cross-dataset results on the model registry: `xeval.<test>.<metric>` tags on a model version.

`xeval_tags({"synthetic_b": {"rank1": 0.41, "mAP": 0.2}})` ->
`{"xeval.synthetic_b.rank1": "0.4100", "xeval.synthetic_b.mAP": "0.2000"}`; `tag_version` writes them
to the registered version (with retries; mlflow is imported lazily by `connection.client`).
`registered_version` finds that version from the training run itself: the register stage tags the run with
`registered_model` and `registered_version` (tracking.versions.mark_registered); a run without them (the
quality gate refused it in KFP, where register runs only behind the gate) has none. `rewrite_description`
rewrites the version's model card (stages.cross_evaluate adds its cross-dataset table).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from . import runs
from .connection import client, tracking_uri, with_retries
from .versions import REGISTERED_MODEL_TAG, REGISTERED_VERSION_TAG

PREFIX = "xeval"
TAGGED_METRICS = ("rank1", "mAP")


def xeval_tags(
    results: Mapping[str, Mapping[str, float]], metrics: Sequence[str] = TAGGED_METRICS
) -> dict[str, str]:
    """`{test: {metric: value}}` -> `{"xeval.<test>.<metric>": "<value, 4 decimals>"}` for `metrics`."""
    return {
        f"{PREFIX}.{test}.{metric}": f"{float(values[metric]):.4f}"
        for test, values in sorted(results.items())
        for metric in metrics
        if metric in values
    }


def tag_version(name: str, version: int, results: Mapping[str, Mapping[str, float]]) -> dict[str, str]:
    """Set the xeval tags of `results` on registered model `name` version `version`; return them."""
    tags = xeval_tags(results)
    uri = tracking_uri()
    c = client(uri)
    for key, value in tags.items():
        with_retries(lambda k=key, v=value: c.set_model_version_tag(name, str(version), k, v),
                     what=f"tagging {name} version {version}", uri=uri)  # fmt: skip
    return tags


def rewrite_description(name: str, version: int, rewrite: Callable[[str], str]) -> str:
    """Replace the description (the model card) of `name` version `version` by `rewrite(current)`."""
    uri = tracking_uri()
    c = client(uri)
    what = f"updating the model card of {name} version {version}"
    current = with_retries(
        lambda: c.get_model_version(name, str(version)).description or "", what=what, uri=uri
    )
    text = rewrite(current)
    with_retries(lambda: c.update_model_version(name, str(version), description=text), what=what, uri=uri)
    return text


def registered_version(ref: runs.RunRef) -> tuple[str, int] | None:
    """The (name, version) the training run `ref` was registered as (its `registered_model` and
    `registered_version` run tags); None when it was never registered (the quality gate refused it)."""
    tags = runs.get_run_tags(ref)
    name, version = tags.get(REGISTERED_MODEL_TAG), tags.get(REGISTERED_VERSION_TAG)
    if not name or not version:
        return None
    return name, int(version)
