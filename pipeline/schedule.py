"""A recurring run (e.g. nightly retraining) on a Kubeflow Pipelines API: compile, then
Client.create_recurring_run with max concurrency 1 and no catch-up.

    python -m pipeline schedule --cron "0 2 * * *" --image REF --host URL --data-repo GIT --data-rev TAG

KFP's cron has six fields (seconds first); a five-field (Unix) expression gets second 0 prepended.
One run at a time (a slow night does not overlap the next), and no catch-up: a paused schedule that is
resumed starts from now instead of replaying every missed night.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .settings import ClusterSettings, PipelineError
from .submit import upload


def kfp_cron(expression: str) -> str:
    """KFP's six-field cron for a five- or six-field expression; anything else raises PipelineError."""
    fields = expression.split()
    if len(fields) == 5:
        return " ".join(["0", *fields])
    if len(fields) == 6:
        return " ".join(fields)
    raise PipelineError(
        f"--cron '{expression}': expected 5 fields (minute hour day month weekday, e.g. \"0 2 * * *\") "
        "or 6 (KFP's, seconds first)"
    )


def schedule(
    *,
    host: str,
    image: str,
    cron: str,
    params_path: str | Path = "params.yaml",
    settings: ClusterSettings | None = None,
    experiment: str = "spherereid",
    name: str = "spherereid-nightly",
    overrides: dict[str, Any] | None = None,
) -> str:
    """Create the recurring run; returns its id. Arguments come from params.yaml plus `overrides`."""
    expression = kfp_cron(cron)
    given = upload(
        host=host,
        image=image,
        params_path=params_path,
        settings=settings,
        overrides=overrides,
        refused="recurring run",
    )
    with given as up:
        exp = up.client.create_experiment(experiment)
        job = up.client.create_recurring_run(
            experiment_id=exp.experiment_id,
            job_name=name,
            cron_expression=expression,
            max_concurrency=1,
            no_catchup=True,
            params=up.arguments,
            pipeline_package_path=str(up.package),
        )
    return job.recurring_run_id
