"""The names that stages, components and reports hand each other, in one place: file and folder names,
the job's output layout, and the environment variables the code reads.

It imports nothing of ours, so every part of the package (reporting, data, training and tracking
included), the KFP components and the pipeline may import it. tests/unit/test_artifacts.py fails on a
file name of this module written out anywhere else in model/spherereid, components/ or pipeline/.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# preprocess -> train, evaluate: the prepared set (data/manifest.py reads and writes it)
MANIFEST_FILE = "manifest.csv"  # one row per image
DATASET_INFO_FILE = "dataset.json"  # dataset name, counts, input size, content hash
# preprocess (written by reporting/report.py's write_report; shown by KFP)
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
# train -> evaluate, register
MODEL_FILE = "model.pt"  # its format: training/saved_model.py
RUN_FILE = "mlflow_run.json"  # the MLflow run reference
LINEAGE_FILE = "lineage.json"  # dataset, dataset hash, input size
RESULT_FILE = "train_result.json"  # epochs, final loss/accuracy, run id (read back after torchrun)
HISTORY_FILE = "history.csv"  # one row per epoch
HISTORY_PLOT = "history.png"
CHECKPOINTS_DIR = "checkpoints"  # train's resume state; never copied to a KFP Model artifact
LAST_CHECKPOINT = "last.pt"  # <out>/checkpoints/last.pt: the checkpoint a restarted train resumes
CHECKPOINT_MOUNT = "/checkpoints"  # where a pod mounts the checkpoint PVC (pipeline, TrainJob)
TRAIN_LOCK_FILE = ".train.lock"  # flock'ed by the one training writing the folder (stages/train_lock.py)
# a checkpoint's companions (training/checkpoint.py writes them, training/resume.py reads and sets aside)
PREVIOUS_MARK = ".prev"  # last.pt -> last.prev.pt: the checkpoint kept from before the last write
SIDECAR_SUFFIX = ".sha256"  # last.pt.sha256: "<sha256>  <name>"
CORRUPT_SUFFIX = ".corrupt"  # a checkpoint that failed verification, kept aside
STALE_SUFFIX = ".stale"  # a checkpoint of other params or code, kept aside
# evaluate -> register
METRICS_FILE = "metrics.json"
CHAIN_FILE = "chain.json"  # the ImageChain evaluated; register serves exactly this chain
PRECISION_CHECK_FILE = "precision_check.json"  # rank-1/mAP at the chain's precision and at fp32
FEATURES_FILE = "features.npz"  # query and gallery embeddings
CMC_FILE = "cmc.csv"
CMC_RERANK_FILE = "cmc_rerank.csv"  # with evaluate.rerank
CMC_PLOT = "cmc.png"
RANKED_LISTS_PLOT = "ranked_lists.png"
# register -> the end-of-job summary
REGISTRATION_FILE = "registration.json"

# The job's layout (dvc.yaml): outputs/<dataset>/{train,eval,register}
OUTPUTS_DIR = "outputs"
TRAIN_DIR = "train"
EVAL_DIR = "eval"
REGISTER_DIR = "register"

# Environment variables the code reads (the pipeline sets them on its tasks)
REQUIRE_CUDA_ENV = "SPHEREREID_REQUIRE_CUDA"  # "1": device 'auto' means cuda (set on GPU tasks)
IMAGE_ENV = "SPHEREREID_IMAGE"  # the container image: components' base image, register's lineage
LOG_LEVEL_ENV = "SPHEREREID_LOG_LEVEL"
GIT_COMMIT_ENV = "SPHEREREID_GIT_COMMIT"  # baked into the image (docker build --build-arg GIT_COMMIT=...)
USER_ENV = "SPHEREREID_USER"  # who promotes a version
TERM_GRACE_ENV = "SPHEREREID_TERM_GRACE_S"  # seconds a terminated training has to checkpoint
DIST_TIMEOUT_ENV = "SPHEREREID_DIST_TIMEOUT_S"  # the process group's collective timeout
SPOOL_CLOSE_ENV = "SPHEREREID_SPOOL_CLOSE_S"  # how long the end of training waits for the spool
MLFLOW_RETRIES_ENV = "SPHEREREID_MLFLOW_RETRIES"
MLFLOW_BACKOFF_ENV = "SPHEREREID_MLFLOW_BACKOFF"
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
MLFLOW_RUN_ENV = "MLFLOW_RUN_ID"  # set by KFP's MLflow plugin
MLFLOW_EXPERIMENT_ENV = "MLFLOW_EXPERIMENT_ID"  # set by KFP's MLflow plugin
KFP_RUN_ENV = "KFP_RUN_ID"  # the pod's pipeline run id (the pipeline sets it from a field path)
KFP_HOST_ENV = "KFP_HOST"  # the pipeline CLIs' default --host
SERVE_MAX_ROWS_ENV = "SPHEREREID_SERVE_MAX_ROWS"  # the served model's rows per request
SERVE_MAX_PIXELS_ENV = "SPHEREREID_SERVE_MAX_PIXELS"  # the served model's decoded pixels per request
# Read by MLflow and boto3; the pipeline hands them to its tasks (a Secret's keys, or the host's values)
MLFLOW_USERNAME_ENV = "MLFLOW_TRACKING_USERNAME"
MLFLOW_PASSWORD_ENV = "MLFLOW_TRACKING_PASSWORD"
S3_ENDPOINT_ENV = "MLFLOW_S3_ENDPOINT_URL"
AWS_ENDPOINT_ENV = "AWS_ENDPOINT_URL"
AWS_KEY_ID_ENV = "AWS_ACCESS_KEY_ID"
AWS_SECRET_KEY_ENV = "AWS_SECRET_ACCESS_KEY"
AWS_REGION_ENV = "AWS_DEFAULT_REGION"


@dataclass(frozen=True)
class TrainDir:
    """The train stage's output folder and the files in it."""

    root: Path

    @property
    def model(self) -> Path:
        return Path(self.root) / MODEL_FILE

    @property
    def run_file(self) -> Path:
        return Path(self.root) / RUN_FILE

    @property
    def checkpoints(self) -> Path:
        return Path(self.root) / CHECKPOINTS_DIR

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / LAST_CHECKPOINT

    @property
    def checkpoint_run_file(self) -> Path:
        """The run reference kept with the resume state (a resumed training continues its run)."""
        return self.checkpoints / RUN_FILE

    @property
    def history(self) -> Path:
        return Path(self.root) / HISTORY_FILE

    @property
    def history_plot(self) -> Path:
        return Path(self.root) / HISTORY_PLOT


@dataclass(frozen=True)
class EvalDir:
    """The evaluate stage's output folder and the files in it."""

    root: Path

    @property
    def metrics(self) -> Path:
        return Path(self.root) / METRICS_FILE

    @property
    def features(self) -> Path:
        return Path(self.root) / FEATURES_FILE

    @property
    def cmc(self) -> Path:
        return Path(self.root) / CMC_FILE

    @property
    def cmc_rerank(self) -> Path:
        return Path(self.root) / CMC_RERANK_FILE

    @property
    def cmc_plot(self) -> Path:
        return Path(self.root) / CMC_PLOT

    @property
    def ranked_lists_plot(self) -> Path:
        return Path(self.root) / RANKED_LISTS_PLOT


@dataclass(frozen=True)
class JobLayout:
    """Where the main job (dvc.yaml) puts one dataset's stage outputs:
    outputs/<dataset>/{train,eval,register}."""

    outputs: Path
    dataset: str

    @property
    def train(self) -> TrainDir:
        return TrainDir(Path(self.outputs) / self.dataset / TRAIN_DIR)

    @property
    def eval(self) -> EvalDir:
        return EvalDir(Path(self.outputs) / self.dataset / EVAL_DIR)

    @property
    def register(self) -> Path:
        return Path(self.outputs) / self.dataset / REGISTER_DIR

    @property
    def registration(self) -> Path:
        return self.register / REGISTRATION_FILE
