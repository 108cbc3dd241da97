"""Evaluation metrics on the LoggedModel (MLflow 3), so the Models view and `search_logged_models` rank
model versions by them, each tied to the dataset it was measured on.

Register calls `log_model_metrics` once the pyfunc model is logged: the metrics go to the run AND the model
(`model_id`), with the evaluated dataset (the prepared query/gallery, by its content hash) recorded as an
MLflow dataset input of the run and named on every metric. The registry also keeps them as version tags.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from .client import client, dataset_input, with_retries
from .client import tracking_uri as default_tracking_uri
from .runs import RunRef

EVAL_CONTEXT = "evaluation"  # the evaluated set's dataset-input context


def model_id_of(model_uri: str) -> str:
    """`m-...` from `models:/m-.../...`; a URI that names no LoggedModel raises ValueError."""
    if not model_uri.startswith("models:/m-"):
        raise ValueError(f"{model_uri}: not a LoggedModel URI (models:/m-<id>); log the model with MLflow 3")
    return model_uri[len("models:/") :].split("/")[0]


def log_model_metrics(
    ref: RunRef,
    model_uri: str,
    metrics: Mapping[str, float],
    *,
    dataset_name: str,
    dataset_source: str,
    dataset_digest: str,
) -> str:
    """Log `metrics` (finite ones) to the run and the LoggedModel of `model_uri` on the named dataset;
    returns the model id."""
    from mlflow.entities import Metric

    model_id = model_id_of(model_uri)
    digest = dataset_digest[:36]
    item = dataset_input(dataset_source, name=dataset_name, digest=digest, context=EVAL_CONTEXT)
    now = int(time.time() * 1000)
    values = [
        Metric(
            k,
            float(v),
            now,
            0,
            model_id=model_id,
            dataset_name=dataset_name,
            dataset_digest=digest,
            run_id=ref.run_id,
        )
        for k, v in metrics.items()
        if float(v) == float(v)
    ]

    def go() -> None:
        c = client(ref.tracking_uri)
        c.log_inputs(ref.run_id, datasets=[item])
        carried = _on_model(c, model_id)
        fresh = [m for m in values if carried.get((m.key, m.dataset_name)) != m.value]
        if fresh:  # a rerun of register logs nothing twice
            c.log_batch(ref.run_id, metrics=fresh)

    with_retries(go, what=f"log metrics on model {model_id}", uri=ref.tracking_uri)
    return model_id


def _on_model(c: Any, model_id: str) -> dict[tuple[str, str | None], float]:
    """The metrics LoggedModel `model_id` already carries, by (key, dataset name)."""
    return {(m.key, m.dataset_name): m.value for m in c.get_logged_model(model_id).metrics or []}


def ranked_models(experiment_id: str, metric: str = "mAP", tracking_uri: str | None = None) -> list[Any]:
    """The experiment's LoggedModels, best `metric` first (search_logged_models order_by)."""
    uri = tracking_uri or default_tracking_uri()
    order = [{"field_name": f"metrics.{metric}", "ascending": False}]
    return with_retries(
        lambda: list(client(uri).search_logged_models(experiment_ids=[experiment_id], order_by=order)),
        what="search logged models",
        uri=uri,
    )
