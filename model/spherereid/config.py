"""Typed configuration: one frozen dataclass per params.yaml section.

`load_params(path)` reads params.yaml and builds every known section with `Cls(**section)`, so an
unknown or missing key fails at load time with a message naming the key, the section and the file.
Invariants (P*K == batch size, increasing milestones, scale > 0, ...) are checked in `__post_init__`.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """Raised for an invalid params file: the message names the file, section and key."""


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


def _pattern_error(pattern: object) -> str | None:
    """Why `pattern` is not a usable camera regex (needs one capturing group), or None if it is."""
    if not isinstance(pattern, str) or not pattern:
        return None
    try:
        groups = re.compile(pattern).groups
    except re.error as exc:
        return f"'{pattern}' is not a valid regular expression ({exc}); e.g. 'c(\\d+)'"
    if groups < 1:
        return f"'{pattern}' has no capturing group; put the camera in parentheses, e.g. 'c(\\d+)'"
    return None


@dataclass(frozen=True)
class DataConfig:
    """How raw datasets are parsed and prepared (the preprocess stage).

    The per-dataset keys stay flat here (params files use them); which keys fill which dataset's
    options dataclass is declared next to its parser (`register(..., data_keys=...)`)."""

    cuhk03_labels: str = "detected"  # labeled | detected
    cuhk03_protocol: str = "new"  # new (767/700) | classic (20 splits of 1367/100)
    cuhk03_split: int = 0  # which classic split (0..19)
    cuhksysu_gallery_size: int = 100  # TestG<N>: 50, 100, 500, 1000, 2000, 4000
    stored_height: int = 288  # images are resized once to this size by preprocess
    stored_width: int = 144
    max_bad_fraction: float = 0.01  # above this fraction of skipped files, preprocess fails
    workers: int = 2  # decode/resize processes
    msmt17_train_with_val: bool = True  # MSMT17: train on list_train.txt + list_val.txt (common practice)
    camera_pattern: str = ""  # custom_folders: regex whose group 1 is the camera in a file name; "" = none

    def __post_init__(self) -> None:
        _require(self.cuhk03_labels in ("labeled", "detected"), "data.cuhk03_labels must be labeled|detected")
        _require(
            isinstance(self.msmt17_train_with_val, bool), "data.msmt17_train_with_val must be true|false"
        )
        _require(isinstance(self.camera_pattern, str), "data.camera_pattern must be a string (regex)")
        error = _pattern_error(self.camera_pattern)
        _require(error is None, f"data.camera_pattern: {error}")
        _require(self.cuhk03_protocol in ("new", "classic"), "data.cuhk03_protocol must be new|classic")
        _require(0 <= self.cuhk03_split < 20, "data.cuhk03_split must be in 0..19")
        _require(
            self.cuhksysu_gallery_size in (50, 100, 500, 1000, 2000, 4000),
            "data.cuhksysu_gallery_size must be one of 50, 100, 500, 1000, 2000, 4000",
        )
        _require(self.stored_height > 0 and self.stored_width > 0, "data.stored_* must be positive")
        _require(0.0 <= self.max_bad_fraction <= 1.0, "data.max_bad_fraction must be in [0, 1]")
        _require(self.workers >= 1, "data.workers must be >= 1")


@dataclass(frozen=True)
class SyntheticConfig:
    """The embedded synthetic ReID dataset (Market-1501 layout, or MSMT17's with layout: msmt17)."""

    seed: int = 0
    train_identities: int = 150
    test_identities: int = 150
    cameras: int = 6
    images_per_camera: int = 2  # per identity, for each camera it appears in
    min_cameras: int = 2  # every identity appears in at least this many cameras
    distractors: int = 100  # pid 0000 images in the gallery
    junk: int = 50  # pid -1 images in the gallery
    height: int = 128
    width: int = 64
    layout: str = "market1501"  # market1501 | msmt17 (MSMT17_V1 folders and lists; no distractors/junk)
    domain: str = "a"  # a | b: camera network (b: shifted looks, own identities; dataset synthetic_b)

    def __post_init__(self) -> None:
        _require(
            self.train_identities >= 1 and self.test_identities >= 1, "synthetic identities must be >= 1"
        )
        _require(self.layout in ("market1501", "msmt17"), "synthetic.layout must be market1501|msmt17")
        _require(self.domain in ("a", "b"), "synthetic.domain must be a|b")
        max_cam = 6 if self.layout == "market1501" else 15
        _require(
            1 <= self.cameras <= max_cam, f"synthetic.cameras must be in 1..{max_cam} ({self.layout} naming)"
        )
        _require(2 <= self.min_cameras <= self.cameras, "synthetic.min_cameras must be in 2..cameras")
        _require(self.images_per_camera >= 1, "synthetic.images_per_camera must be >= 1")
        _require(self.train_identities + self.test_identities <= 1500, "synthetic: at most 1500 identities")
        _require(self.distractors >= 0 and self.junk >= 0, "synthetic.distractors/junk must be >= 0")
        _require(self.height >= 16 and self.width >= 8, "synthetic image size too small")


@dataclass(frozen=True)
class TransformConfig:
    """Input pipeline sizes (paper: resize 288x144, random crop 256x128, flip)."""

    resize_height: int = 288
    resize_width: int = 144
    crop_height: int = 256
    crop_width: int = 128
    flip_prob: float = 0.5
    random_erasing: float = 0.0  # probability; 0 = off (paper recipe)
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", tuple(float(x) for x in self.mean))
        object.__setattr__(self, "std", tuple(float(x) for x in self.std))
        _require(
            self.crop_height <= self.resize_height and self.crop_width <= self.resize_width,
            "transform.crop_* must not exceed transform.resize_*",
        )
        _require(0.0 <= self.flip_prob <= 1.0, "transform.flip_prob must be in [0, 1]")
        _require(0.0 <= self.random_erasing <= 1.0, "transform.random_erasing must be in [0, 1]")
        _require(len(self.mean) == 3 and len(self.std) == 3, "transform.mean/std need 3 values")
        _require(all(s > 0 for s in self.std), "transform.std must be positive")


@dataclass(frozen=True)
class ModelConfig:
    """Network: backbone + head (paper networks A-D)."""

    backbone: str = "resnet50"  # resnet18 | resnet34 | resnet50 | tiny
    head: str = "D"  # A | B | C | D
    embedding_dim: int = 1024
    last_stride: int = 1
    dropout: float = 0.5
    pretrained: str = "imagenet"  # imagenet | none | path to a local state_dict

    def __post_init__(self) -> None:
        _require(self.head in ("A", "B", "C", "D"), "model.head must be one of A, B, C, D")
        _require(self.last_stride in (1, 2), "model.last_stride must be 1 or 2")
        _require(self.embedding_dim > 0, "model.embedding_dim must be positive")
        _require(0.0 <= self.dropout < 1.0, "model.dropout must be in [0, 1)")


@dataclass(frozen=True)
class LossConfig:
    """Sphere Softmax (paper eq. for normalised softmax) or plain softmax for ablation (a linear classifier
    with bias on the head's output before the L2 normalisation; evaluated on the normalised embedding)."""

    type: str = "sphere"  # sphere | softmax
    scale: float = 14.0  # s: not stated by the paper; 14 as the one public reimplementation
    margin: float = 0.0  # additive cosine margin; 0 reproduces the paper

    def __post_init__(self) -> None:
        _require(self.type in ("sphere", "softmax"), "loss.type must be sphere|softmax")
        _require(self.scale > 0, "loss.scale must be > 0")
        _require(0.0 <= self.margin < 1.0, "loss.margin must be in [0, 1)")


SAMPLER_TYPES = ("balanced", "random")


@dataclass(frozen=True)
class SamplerConfig:
    """Batch sampling: balanced P x K (the paper's) or random batches of batch_size (its ablation)."""

    p: int = 16
    k: int = 4
    batch_size: int = 64
    type: str = "balanced"  # balanced (P identities x K images) | random (uniform, no identity balance)

    def __post_init__(self) -> None:
        _require(
            self.type in SAMPLER_TYPES,
            f"sampler.type must be one of {'|'.join(SAMPLER_TYPES)}, got {self.type!r}",
        )
        _require(self.p >= 1 and self.k >= 1, "sampler.p and sampler.k must be >= 1")
        _require(
            self.p * self.k == self.batch_size,
            f"sampler.p * sampler.k must equal sampler.batch_size ({self.p}*{self.k} != {self.batch_size})",
        )


@dataclass(frozen=True)
class OptimConfig:
    """Adam. The paper states lr 1e-3, betas (0.9, 0.99) and eps 1e-8; it states no weight decay (5e-4 is
    ours, the usual ReID value: coupled L2, as torch's Adam applies it)."""

    lr: float = 1e-3
    weight_decay: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.99)
    eps: float = 1e-8

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        object.__setattr__(self, "eps", float(self.eps))
        _require(self.lr > 0, "optim.lr must be > 0")
        _require(self.weight_decay >= 0, "optim.weight_decay must be >= 0")
        _require(
            len(self.betas) == 2 and all(0.0 <= b < 1.0 for b in self.betas),
            f"optim.betas must be two values in [0, 1), e.g. [0.9, 0.99], got {list(self.betas)}",
        )
        _require(self.eps > 0, f"optim.eps must be > 0 (e.g. 1.0e-8), got {self.eps}")


@dataclass(frozen=True)
class ScheduleConfig:
    """Warm-up then step decay (paper: 5e-5 -> 1e-3 over 20 epochs, x0.1 at 80 and 100)."""

    warmup_start_lr: float = 5e-5
    warmup_epochs: int = 20
    milestones: tuple[int, ...] = (80, 100)
    gamma: float = 0.1
    step_per: str = "epoch"  # epoch | iteration

    def __post_init__(self) -> None:
        object.__setattr__(self, "milestones", tuple(int(m) for m in self.milestones))
        _require(self.warmup_start_lr > 0, "schedule.warmup_start_lr must be > 0")
        _require(self.warmup_epochs >= 0, "schedule.warmup_epochs must be >= 0")
        _require(
            all(a < b for a, b in zip(self.milestones, self.milestones[1:], strict=False)),
            f"schedule.milestones must be strictly increasing, got {list(self.milestones)}",
        )
        _require(
            not self.milestones or self.milestones[0] >= self.warmup_epochs,
            "schedule.milestones must come after the warm-up",
        )
        _require(0 < self.gamma <= 1, "schedule.gamma must be in (0, 1]")
        _require(self.step_per in ("epoch", "iteration"), "schedule.step_per must be epoch|iteration")


PRECISIONS = ("auto", "fp32", "bf16", "fp16")
CUDA_GRAPHS_SETTINGS = (True, False, "auto")
# train.checkpoint_every as a duration: a number and one of these units (seconds per unit)
DURATION_UNITS = {"s": 1.0, "min": 60.0, "h": 3600.0}
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(s|min|h)\s*")


def checkpoint_cadence(every: int | str) -> tuple[int, float]:
    """`train.checkpoint_every` as (epochs, seconds), one of them 0: an integer is a number of epochs
    (`2` -> (2, 0.0)); a duration with a unit s, min or h is a time (`5min` -> (0, 300.0))."""
    if isinstance(every, int) and not isinstance(every, bool):
        _require(every >= 1, "train.checkpoint_every must be >= 1 (epochs)")
        return every, 0.0
    match = _DURATION.fullmatch(every) if isinstance(every, str) else None
    if match is None or float(match.group(1)) <= 0:
        raise ConfigError(
            "train.checkpoint_every must be a number of epochs (an integer >= 1) or a duration such as "
            f"300s, 5min or 1h, got {every!r}"
        )
    return 0, float(match.group(1)) * DURATION_UNITS[match.group(2)]


@dataclass(frozen=True)
class TrainConfig:
    """Training loop."""

    epochs: int = 140
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N (cuda without a usable GPU is an error)
    # auto (bf16 on CUDA with compute capability >= 8.0 and on native-bf16 CPUs, else fp32) | fp32 | bf16 |
    # fp16 (CUDA)
    precision: str = "auto"
    # capture the whole training step in a CUDA graph (CUDA only): true | false | auto (on for one GPU, off
    # under DDP, where true is refused)
    cuda_graphs: bool | str = False
    # epochs between checkpoints (an integer), or a duration between them (300s, 5min, 1h: measured from the
    # last checkpoint or the start); the last epoch is always saved
    checkpoint_every: int | str = 1
    sync_batchnorm: bool = False  # several GPUs: BatchNorm statistics over the global batch (CUDA only)
    on_corrupt_checkpoint: str = "fail"  # fail | restart (move a damaged last.pt aside, train fresh)

    def __post_init__(self) -> None:
        _require(self.epochs >= 1, "train.epochs must be >= 1")
        _require(
            self.on_corrupt_checkpoint in ("fail", "restart"),
            "train.on_corrupt_checkpoint must be fail|restart",
        )
        _require(self.precision in PRECISIONS, "train.precision must be auto|fp32|bf16|fp16")
        _require(
            self.cuda_graphs in CUDA_GRAPHS_SETTINGS and isinstance(self.cuda_graphs, bool | str),
            f"train.cuda_graphs must be true|false|auto, got {self.cuda_graphs!r}",
        )
        _require(
            not (self.cuda_graphs is True and self.precision == "fp16"),
            "train.cuda_graphs needs precision fp32 or bf16 (fp16's GradScaler syncs every step); set it to "
            "auto or false",
        )
        checkpoint_cadence(self.checkpoint_every)


@dataclass(frozen=True)
class EvaluateConfig:
    """Feature extraction and ranking metrics."""

    metric: str = "cosine"  # cosine | euclidean
    flip: bool = True  # average features of the image and its mirror
    precision: str = (
        "auto"  # extraction: auto (as train.precision: bf16 where native, else fp32) | fp32 | bf16
    )
    max_rank: int = 50
    batch_size: int = 128
    query_chunk: int = 1024  # queries per chunk of the distance matrix
    rerank: bool = False  # also report k-reciprocal re-ranked metrics (prefix rerank_)
    rerank_k1: int = 20  # re-ranking: reciprocal neighbours
    rerank_k2: int = 6  # re-ranking: rows averaged in query expansion
    rerank_lambda: float = 0.3  # re-ranking: weight of the original distance

    def __post_init__(self) -> None:
        _require(self.metric in ("cosine", "euclidean"), "evaluate.metric must be cosine|euclidean")
        _require(self.precision in ("auto", "fp32", "bf16"), "evaluate.precision must be auto|fp32|bf16")
        _require(self.max_rank >= 1, "evaluate.max_rank must be >= 1")
        _require(self.batch_size >= 1 and self.query_chunk >= 1, "evaluate sizes must be >= 1")
        keys = ("evaluate.rerank_k1", "evaluate.rerank_k2", "evaluate.rerank_lambda")
        problem = rerank_param_problem(self.rerank_k1, self.rerank_k2, self.rerank_lambda, names=keys)
        _require(problem is None, str(problem))


def rerank_param_problem(
    k1: float, k2: float, lambda_: float, names: tuple[str, str, str] = ("k1", "k2", "lambda")
) -> str | None:
    """Why (k1, k2, lambda_) are not valid re-ranking parameters, naming each as ``names`` spells it (a key
    or a flag); None when k1 >= 1 and k2 in 1..k1 are integers and lambda is in [0, 1]. The one home of
    these checks: EvaluateConfig and ``evaluation.rerank.check_rerank_params`` both call it."""
    n1, n2, nl = names
    if int(k1) != k1 or k1 < 1:
        return f"{n1} must be an integer >= 1, got {k1}"
    if int(k2) != k2 or not 1 <= k2 <= k1:
        return f"{n2} must be an integer in 1..{k1} (at most {n1}), got {k2}"
    if not 0.0 <= float(lambda_) <= 1.0:
        return f"{nl} must be in [0, 1], got {lambda_}"
    return None


PROMOTION_POLICIES = ("same-data", "best", "manual")
ONNX_QUANTIZE_CHOICES = ("none", "int8")  # register.onnx_quantize: the ONNX model alone, or also int8
INT8_BUDGET_POINTS = 0.5  # the most int8 rank-1 or mAP may differ from fp32 ONNX's, in points


@dataclass(frozen=True)
class RegisterConfig:
    """MLflow registry quality gate."""

    model_prefix: str = "spherereid"  # registered model name: <prefix>-<dataset>
    min_rank1: float = 0.5
    min_map: float = 0.3
    # who moves `champion`: same-data (a better mAP on the same dataset version), best (a better mAP on
    # any dataset version), manual (only `spherereid promote`)
    promotion: str = "same-data"
    # export the model to ONNX (uint8 images in, unit embeddings out), prove parity with PyTorch on the
    # prepared query/gallery, log it with MLflow's onnx flavor next to the pyfunc (needs --prepared)
    export_onnx: bool = False
    # with export_onnx: "int8" also logs a statically quantized ONNX model for CPUs (calibrated on the
    # prepared train split); "none" does not
    onnx_quantize: str = "none"
    # int8's rank-1 and mAP on the prepared query/gallery must be within this many points of fp32 ONNX's,
    # or the stage fails before it registers anything
    onnx_int8_budget: float = INT8_BUDGET_POINTS

    def __post_init__(self) -> None:
        _require(
            self.onnx_quantize in ONNX_QUANTIZE_CHOICES,
            f"register.onnx_quantize must be one of {'|'.join(ONNX_QUANTIZE_CHOICES)}, "
            f"got {self.onnx_quantize!r}",
        )
        _require(
            self.onnx_quantize == "none" or self.export_onnx,
            "register.onnx_quantize int8 needs register.export_onnx: true (it quantizes the fp32 ONNX model)",
        )
        _require(self.onnx_int8_budget >= 0.0, "register.onnx_int8_budget must be >= 0 (points)")
        _require(
            self.promotion in PROMOTION_POLICIES,
            f"register.promotion must be one of {'|'.join(PROMOTION_POLICIES)}, got {self.promotion!r}",
        )
        _require(0.0 <= self.min_rank1 <= 1.0, "register.min_rank1 must be in [0, 1]")
        _require(0.0 <= self.min_map <= 1.0, "register.min_map must be in [0, 1]")


SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "synthetic": SyntheticConfig,
    "transform": TransformConfig,
    "model": ModelConfig,
    "loss": LossConfig,
    "sampler": SamplerConfig,
    "optim": OptimConfig,
    "schedule": ScheduleConfig,
    "train": TrainConfig,
    "evaluate": EvaluateConfig,
    "register": RegisterConfig,
}

# Top-level keys of params.yaml that are not sections.
TOP_LEVEL_KEYS = ("datasets",)


@dataclass(frozen=True)
class Params:
    """All sections of a params file."""

    datasets: tuple[str, ...]
    data: DataConfig
    synthetic: SyntheticConfig
    transform: TransformConfig
    model: ModelConfig
    loss: LossConfig
    sampler: SamplerConfig
    optim: OptimConfig
    schedule: ScheduleConfig
    train: TrainConfig
    evaluate: EvaluateConfig
    register: RegisterConfig
    source: str = field(default="<dict>", compare=False)

    def flat(self) -> dict[str, Any]:
        """`section.key -> value` for every parameter (the ablation's MLflow params and cell hash)."""
        out: dict[str, Any] = {"datasets": ",".join(self.datasets)}
        for name in SECTIONS:
            for key, value in dataclasses.asdict(getattr(self, name)).items():
                out[f"{name}.{key}"] = list(value) if isinstance(value, tuple) else value
        return out


@dataclass(frozen=True)
class FitConfig:
    """The params sections a training reads. Its fields are their one list (TRAIN_SECTIONS): the train
    stage, the KFP train component and the ablation runner build it here, and dvc.yaml's train `params:`
    equals it (tests/unit/test_dvc_yaml.py)."""

    model: ModelConfig
    loss: LossConfig
    sampler: SamplerConfig
    optim: OptimConfig
    schedule: ScheduleConfig
    train: TrainConfig
    transform: TransformConfig

    @classmethod
    def from_params(cls, params: Params) -> FitConfig:
        """The training's sections of a whole params file."""
        return cls(**{name: getattr(params, name) for name in TRAIN_SECTIONS})

    def sections(self) -> dict[str, Any]:
        """`section name -> section dataclass`, in TRAIN_SECTIONS order."""
        return {name: getattr(self, name) for name in TRAIN_SECTIONS}


# The params sections a training reads, in order: FitConfig's fields.
TRAIN_SECTIONS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(FitConfig))


def build_section(name: str, values: dict[str, Any] | None, source: str = "<dict>") -> Any:
    """Build one section's dataclass, naming the key and the file on error. Missing keys fail."""
    cls = SECTIONS.get(name)
    if cls is None:
        raise ConfigError(f"{source}: unknown section '{name}' (known: {', '.join(SECTIONS)})")
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: section '{name}' must be a mapping, got {type(values).__name__}")
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in values if k not in names]
    if unknown:
        raise ConfigError(f"{source}: unknown key '{name}.{unknown[0]}' (known keys: {', '.join(names)})")
    missing = [k for k in names if k not in values]
    if missing:
        raise ConfigError(f"{source}: missing key '{name}.{missing[0]}'")
    try:
        return cls(**values)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: section '{name}': {exc}") from None


def params_from_dict(raw: dict[str, Any], source: str = "<dict>") -> Params:
    """Build `Params` from an already-parsed params mapping."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: top level must be a mapping")
    unknown = [k for k in raw if k not in SECTIONS and k not in TOP_LEVEL_KEYS]
    if unknown:
        raise ConfigError(
            f"{source}: unknown section '{unknown[0]}' (known: {', '.join((*TOP_LEVEL_KEYS, *SECTIONS))})"
        )
    missing = [k for k in (*TOP_LEVEL_KEYS, *SECTIONS) if k not in raw]
    if missing:
        raise ConfigError(f"{source}: missing section '{missing[0]}'")
    datasets = raw["datasets"]
    check_datasets(datasets, source)
    sections = {name: build_section(name, raw[name], source) for name in SECTIONS}
    return Params(datasets=tuple(datasets), source=source, **sections)


def check_datasets(datasets: Any, source: str) -> None:
    """A non-empty list of dataset names, each once (each is one chain: one output folder, one training;
    'a+b' and 'b+a' are one union); ConfigError naming `source` otherwise."""
    if not isinstance(datasets, list) or not datasets or not all(isinstance(d, str) for d in datasets):
        raise ConfigError(f"{source}: 'datasets' must be a non-empty list of dataset names")
    seen: dict[frozenset[str], str] = {}
    for entry in datasets:
        _check_combined_entry(entry, source)
        key = frozenset(entry.split("+"))
        if key in seen:
            first = seen[key]
            twice = f"'{entry}' twice" if first == entry else f"'{first}' and '{entry}' (one union)"
            raise ConfigError(
                f"{source}: datasets lists {twice}; each entry is one chain writing its own output "
                "folders, so list each dataset once"
            )
        seen[key] = entry


def _check_combined_entry(entry: str, source: str) -> None:
    """An entry joining datasets with '+' ('market1501+msmt17': one model on their union) names each
    source once, without blanks; ConfigError otherwise. Single names are checked by preprocess."""
    if "+" not in entry:
        return
    parts = entry.split("+")
    if any(not p or p != p.strip() for p in parts) or len(set(parts)) != len(parts):
        raise ConfigError(
            f"{source}: datasets entry '{entry}': join distinct dataset names with '+' and no spaces, "
            "e.g. 'market1501+msmt17'"
        )


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate a params.yaml file."""
    import yaml  # here, not at import: the dataclasses serve a bare training image without PyYAML

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found (pass --params PATH)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return params_from_dict(raw, source=str(path))
