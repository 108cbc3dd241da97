"""Compile, submit or locally run the SphereReID Kubeflow pipeline (errors: one line on stderr, exit 2)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from spherereid.config import ConfigError, check_datasets
from spherereid.contracts import IMAGE_ENV, KFP_HOST_ENV
from spherereid.entrypoint import configure_logging

from .settings import LOCAL_SETTINGS, ClusterSettings, PipelineError

RUN_LOCAL_HELP = """Run the pipeline here with kfp.local; print the results table (JSON) on stdout.

--runner docker runs every task in --image through the Docker API that the `docker` SDK finds (DOCKER_HOST,
else /var/run/docker.sock). The pipeline root <out>/kfp is mounted into each task and opened to the image's
user (uid 10001); the MLflow store is <out>/kfp/mlflow.db unless MLFLOW_TRACKING_URI names a server or a
file under --out. Without Docker, podman serves the same API:
  eval "$(bash scripts/podman_host.sh)"     # containers.conf for hosts like our CI machines
  podman system service --time=0 unix:///tmp/podman.sock &
  export DOCKER_HOST=unix:///tmp/podman.sock
Known race: podman 4.3 (Debian 12) answers 500 instead of Docker's 404 once an auto-removed container is
gone; kfp 2.17's DockerRunner (always auto_remove=True) then fails if it asks after the removal. The plain
CLI completed against podman 4.3 in our run; tests/container/ avoids the race in its harness only."""


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got '{text}'")
    return key, value


def _add_cluster_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--image",
        default=os.environ.get(IMAGE_ENV),
        help="immutable image reference (tag or digest); default $SPHEREREID_IMAGE",
    )
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (argument defaults)")
    p.add_argument("--accelerator-type", help="GPU resource name (default nvidia.com/gpu)")
    p.add_argument(
        "--gpus", type=int, dest="gpus_per_node", help="GPUs (= processes) per train node (default 1)"
    )
    p.add_argument("--nodes", type=int, help="train nodes; > 1 runs a Kubeflow Trainer TrainJob (default 1)")
    p.add_argument(
        "--trainjob-runtime", help="ClusterTrainingRuntime for --nodes > 1 (default torch-distributed)"
    )
    p.add_argument("--secret", dest="secret_name", help="Kubernetes Secret with the S3/MLflow credentials")
    p.add_argument("--checkpoint-pvc", help="PVC name for train checkpoints (a retried train resumes)")
    p.add_argument("--parallelism", type=int, help="datasets processed at once (0 = all)")
    p.add_argument(
        "--evaluate-gpus", type=int, help="GPUs for the evaluate task: bf16 extraction (default 0)"
    )
    p.add_argument(
        "--image-pull-secret",
        action="append",
        default=[],
        dest="image_pull_secrets",
        metavar="NAME",
        help="Kubernetes Secret to pull the image from a private registry (repeatable)",
    )
    p.add_argument(
        "--train-timeout", type=int, dest="train_timeout_s", help="train pod deadline, s (0 = none)"
    )
    p.add_argument(
        "--task-timeout", type=int, dest="task_timeout_s", help="other pods' deadline, s (0 = none)"
    )
    p.add_argument(
        "--ttl", type=int, dest="ttl_seconds_after_finished", help="delete a run's pods, s after it ends"
    )
    p.add_argument(
        "--deadline", type=int, dest="active_deadline_s", help="stop a run after this many s (0 = none)"
    )
    p.add_argument(
        "--remove-checkpoints-on-failure",
        action="store_true",
        help="the cleanup task deletes a failed run's checkpoint folder (default: kept for a retry)",
    )
    p.add_argument(
        "--env",
        type=_key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="non-secret env var for every task (e.g. MLFLOW_TRACKING_URI=http://...)",
    )


def _settings(args: argparse.Namespace) -> ClusterSettings:
    base = ClusterSettings()
    env = {**base.env, **dict(args.env)}
    return base.replace(
        accelerator_type=args.accelerator_type,
        gpus_per_node=args.gpus_per_node,
        nodes=args.nodes,
        trainjob_runtime=args.trainjob_runtime,
        secret_name=args.secret_name,
        checkpoint_pvc=args.checkpoint_pvc,
        parallelism=args.parallelism,
        evaluate_gpus=args.evaluate_gpus,
        env=env,
        image_pull_secrets=tuple(args.image_pull_secrets) or None,
        train_timeout_s=args.train_timeout_s,
        task_timeout_s=args.task_timeout_s,
        ttl_seconds_after_finished=args.ttl_seconds_after_finished,
        active_deadline_s=args.active_deadline_s,
        keep_checkpoints_on_failure=False if args.remove_checkpoints_on_failure else None,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compile", help="compile the pipeline to a YAML package")
    _add_cluster_flags(c)
    c.add_argument("--out", type=Path, required=True, help="output YAML file")
    c.add_argument(
        "--ablation",
        action="store_true",
        help="compile the ablation pipeline: the grid's cells fan out (train -> evaluate), one summary table",
    )
    c.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="with --ablation: override a parameter in every cell (repeatable), as `spherereid ablation`",
    )
    c.add_argument(
        "--grid",
        dest="filters",
        action="append",
        default=[],
        metavar="AXIS=V1,V2",
        help="with --ablation: narrow an axis of the grid (repeatable), as `spherereid ablation`",
    )
    s = sub.add_parser("submit", help="compile and start a run on a Kubeflow Pipelines API")
    _add_cluster_flags(s)
    s.add_argument("--host", default=os.environ.get(KFP_HOST_ENV, ""), help="KFP API URL; default $KFP_HOST")
    s.add_argument("--experiment", default="spherereid")
    s.add_argument("--run-name")
    s.add_argument("--data-repo", default="", help="git URL of the repository with the DVC-tracked raw data")
    s.add_argument("--data-rev", default="", help="git revision (tag/commit) of the data repository")
    s.add_argument("--datasets", nargs="+", help="override params.yaml's datasets")
    s.add_argument("--no-cache", action="store_true", help="disable caching for this run")
    k = sub.add_parser("schedule", help="create a recurring run (e.g. nightly) on a Kubeflow Pipelines API")
    _add_cluster_flags(k)
    k.add_argument("--host", default=os.environ.get(KFP_HOST_ENV, ""), help="KFP API URL; default $KFP_HOST")
    k.add_argument("--cron", required=True, help='when, e.g. "0 2 * * *" (02:00 daily; KFP runs it in UTC)')
    k.add_argument("--experiment", default="spherereid")
    k.add_argument("--name", default="spherereid-nightly", help="the recurring run's name")
    k.add_argument("--data-repo", default="", help="git URL of the repository with the DVC-tracked raw data")
    k.add_argument("--data-rev", default="", help="git revision (tag/commit) of the data repository")
    k.add_argument("--datasets", nargs="+", help="override params.yaml's datasets")
    r = sub.add_parser(
        "run-local",
        help="run the pipeline here with kfp.local (no cluster): in this venv, or each task in the image",
        description=RUN_LOCAL_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    r.add_argument("--params", type=Path, default=Path("params.yaml"))
    r.add_argument("--out", type=Path, default=Path("outputs/kfp-local"), help="output dir (pipeline root)")
    r.add_argument("--datasets", nargs="+", help="override params.yaml's datasets")
    r.add_argument(
        "--raw-root",
        default="",
        help="folder holding <dataset>/ raw folders (default: synthetic is generated)",
    )
    r.add_argument(
        "--gpus", type=int, default=1, help="train processes (torchrun, gloo on the CPU); default 1"
    )
    r.add_argument(
        "--runner",
        choices=("subprocess", "docker"),
        default="subprocess",
        help="subprocess: tasks in this venv (default); docker: each task in --image via a Docker API",
    )
    r.add_argument(
        "--image",
        default=os.environ.get(IMAGE_ENV),
        help="image for --runner docker (bash scripts/build_image.sh prints it); default $SPHEREREID_IMAGE",
    )
    return parser


def _required_image(args: argparse.Namespace) -> str:
    """--image (or $SPHEREREID_IMAGE); none is a one-line error."""
    if not args.image:
        raise PipelineError("no image given: pass --image REF or set SPHEREREID_IMAGE")
    return str(args.image)


def _data_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The pipeline parameters submit and schedule set from the command line: the data source and revision,
    and the datasets when --datasets is given."""
    overrides: dict[str, Any] = {"data_repo": args.data_repo, "data_rev": args.data_rev}
    if args.datasets:
        overrides["datasets"] = args.datasets
    return overrides


def _submit(args: argparse.Namespace) -> None:
    from .submit import submit

    run_id = submit(
        host=args.host,
        image=_required_image(args),
        params_path=args.params,
        settings=_settings(args),
        experiment=args.experiment,
        run_name=args.run_name,
        overrides=_data_overrides(args),
        enable_caching=False if args.no_cache else None,
    )
    print(f"submitted run {run_id} to {args.host}")


def _schedule(args: argparse.Namespace) -> None:
    from .schedule import schedule

    job_id = schedule(
        host=args.host,
        image=_required_image(args),
        cron=args.cron,
        params_path=args.params,
        settings=_settings(args),
        experiment=args.experiment,
        name=args.name,
        overrides=_data_overrides(args),
    )
    print(f"recurring run {job_id} ({args.name}, cron '{args.cron}', one at a time) on {args.host}")


def _compile(args: argparse.Namespace) -> None:
    from .compile import compile_ablation, compile_pipeline

    _required_image(args)
    if args.ablation:
        out = compile_ablation(
            image=args.image,
            out=args.out,
            params_path=args.params,
            settings=_settings(args),
            overrides=args.overrides,
            filters=args.filters,
        )
        print(f"compiled the ablation pipeline {out} for image {args.image}")
        return
    if args.overrides or args.filters:
        raise PipelineError("--set and --grid go with --ablation (the main pipeline takes params.yaml as is)")
    out = compile_pipeline(image=args.image, out=args.out, params_path=args.params, settings=_settings(args))
    print(f"compiled {out} for image {args.image}")


def _run(args: argparse.Namespace) -> int:
    if getattr(args, "datasets", None):  # an override of params.yaml's list, checked as that list is
        check_datasets(list(args.datasets), "--datasets")
    if args.command == "compile":
        _compile(args)
    elif args.command == "submit":
        _submit(args)
    elif args.command == "schedule":
        _schedule(args)
    else:
        from .run_local import run_local

        results = run_local(
            out_dir=args.out,
            params_path=args.params,
            datasets=args.datasets,
            raw_root=args.raw_root,
            settings=LOCAL_SETTINGS.replace(gpus_per_node=args.gpus),
            runner=args.runner,
            image=args.image,
        )
        print(json.dumps(results, indent=2, sort_keys=True))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging()  # the stages' set-up: INFO to stderr, SPHEREREID_LOG_LEVEL overrides
    try:
        return _run(args)
    except (PipelineError, ConfigError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
