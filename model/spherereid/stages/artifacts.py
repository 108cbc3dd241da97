"""The file names that stages hand to each other (the stage contract of DEVELOPERS.md), in one place.

Stages and the KFP components (components/) take every name from here; tests/unit/test_artifacts.py
fails on a hand-off name written out anywhere else in them. The prepared set's own files are named by
data/manifest.py (its contract) and only re-exported here.
"""

import shutil
from pathlib import Path

from ..data.manifest import INFO as DATASET_INFO_FILE  # noqa: F401 - re-exported
from ..data.manifest import MANIFEST as MANIFEST_FILE  # noqa: F401 - re-exported

# preprocess -> train, evaluate (written by reporting/report.py's write_report; shown by KFP)
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
# train -> evaluate, register
MODEL_FILE = "model.pt"  # {"constructor", "state_dict", "num_classes"}
RUN_FILE = "mlflow_run.json"  # the MLflow run reference
LINEAGE_FILE = "lineage.json"  # dataset, dataset hash, input size
RESULT_FILE = "train_result.json"  # epochs, final loss/accuracy, run id (read back after torchrun)
HISTORY_FILE = "history.csv"  # one row per epoch
HISTORY_PLOT = "history.png"
CHECKPOINTS_DIR = "checkpoints"  # train's resume state; never copied to a KFP Model artifact
LAST_CHECKPOINT = "last.pt"  # <out>/checkpoints/last.pt: the checkpoint a restarted train resumes
TRAIN_LOCK_FILE = ".train.lock"  # flock'ed by the one training writing the folder (stages/train_lock.py)
# evaluate -> register
METRICS_FILE = "metrics.json"
CHAIN_FILE = "chain.json"  # the ImageChain evaluated; register serves exactly this chain
PRECISION_CHECK_FILE = "precision_check.json"  # rank-1/mAP at the chain's precision and at fp32
FEATURES_FILE = "features.npz"  # query and gallery embeddings
CMC_FILE = "cmc.csv"
CMC_RERANK_FILE = "cmc_rerank.csv"  # with evaluate.rerank
CMC_PLOT = "cmc.png"
RANKED_LISTS_PLOT = "ranked_lists.png"
# register
REGISTRATION_FILE = "registration.json"


def copy_train_output(train_dir: Path, dest: Path) -> None:
    """Copy a train stage's output folder into `dest` without its resume state (CHECKPOINTS_DIR) and lock."""
    ignore = shutil.ignore_patterns(CHECKPOINTS_DIR, TRAIN_LOCK_FILE)
    shutil.copytree(train_dir, dest, ignore=ignore, dirs_exist_ok=True)
