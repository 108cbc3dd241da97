"""Compile the pipeline to a KFP YAML package for one immutable image reference."""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from .settings import ClusterSettings, PipelineError, pipeline_arguments

# Tags that are moved on purpose: the KFP cache keys on the image string, so these serve stale results.
MUTABLE_TAGS = frozenset({"latest", "main", "master", "stable", "edge", "nightly", "dev"})
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_COMPONENT_MODULES = (
    "components.preprocess",
    "components.train",
    "components.evaluate",
    "components.register",
    "components.gate_report",
    "components.cleanup",
    "components.cross_evaluate",
    "components.matrix",
    "components.ablation_summary",
)

_PIPELINE_MODULES = ("pipeline.spherereid_pipeline", "pipeline.ablation_pipeline")


def check_image(ref: str) -> str:
    """Return `ref` if it pins an immutable image (a digest or a non-moving tag), else raise PipelineError."""
    ref = ref.strip()
    fix = "use an immutable tag (e.g. :1.0.0 or a git sha) or a digest (@sha256:...)"
    if not ref or any(c.isspace() for c in ref):
        raise PipelineError(f"image '{ref}': not an image reference; {fix}")
    from components import PLACEHOLDER_IMAGE

    if ref == PLACEHOLDER_IMAGE:
        raise PipelineError(f"image '{ref}' is the placeholder: pass --image or set SPHEREREID_IMAGE")
    name, _, digest = ref.partition("@")
    if digest:
        if not _DIGEST.match(digest):
            raise PipelineError(f"image '{ref}': malformed digest (expected @sha256:<64 hex>)")
        return ref
    last = name.rsplit("/", 1)[-1]
    if ":" not in last:
        raise PipelineError(f"image '{ref}' has no tag or digest (it means :latest); {fix}")
    tag = last.rsplit(":", 1)[1]
    if not _TAG.match(tag):
        raise PipelineError(f"image '{ref}': malformed tag '{tag}'; {fix}")
    if tag.lower() in MUTABLE_TAGS:
        raise PipelineError(f"image '{ref}' uses the mutable tag ':{tag}' (the KFP cache keys on it); {fix}")
    return ref


def load_pipeline_module(image: str | None, name: str = "pipeline.spherereid_pipeline") -> ModuleType:
    """Import the pipeline module `name` with components bound to `image` (the components and every
    pipeline module re-imported if bound to another)."""
    from components import IMAGE_ENV
    from components import image as current_image

    previous = os.environ.get(IMAGE_ENV)
    if image:
        os.environ[IMAGE_ENV] = image
    try:
        wanted = current_image()
        stale = any(
            module in sys.modules
            and getattr(
                sys.modules[module], module.rsplit(".", 1)[1]
            ).component_spec.implementation.container.image
            != wanted
            for module in _COMPONENT_MODULES
        )
        for module in (*_COMPONENT_MODULES, *_PIPELINE_MODULES):  # in import order
            loaded = importlib.import_module(module)
            if stale:
                importlib.reload(loaded)
        return sys.modules[name]
    finally:
        if previous is None:
            os.environ.pop(IMAGE_ENV, None)
        else:
            os.environ[IMAGE_ENV] = previous


def compile_pipeline(
    *,
    image: str,
    out: str | Path,
    params_path: str | Path = "params.yaml",
    settings: ClusterSettings | None = None,
) -> Path:
    """Write the compiled pipeline YAML to `out`, with params.yaml's values as the parameters' defaults."""
    from kfp import compiler

    image = check_image(image)
    defaults = pipeline_arguments(params_path)
    module = load_pipeline_module(image)
    out = Path(out)
    if out.parent and not out.parent.is_dir():
        raise PipelineError(f"{out}: output directory {out.parent} does not exist")
    compiler.Compiler().compile(module.build_pipeline(settings), str(out), pipeline_parameters=defaults)
    return out


def compile_ablation(
    *,
    image: str,
    out: str | Path,
    params_path: str | Path = "params.yaml",
    settings: ClusterSettings | None = None,
    overrides: Sequence[str] = (),
    filters: Sequence[str] = (),
) -> Path:
    """Write the ablation pipeline's YAML to `out`: the grid's cells (narrowed by `filters`, `--grid`
    AXIS=V1,V2) and params.yaml with `overrides` (`--set` section.key=value) as the parameters' defaults."""
    from kfp import compiler

    from .ablation_pipeline import ablation_arguments

    image = check_image(image)
    defaults = ablation_arguments(params_path, overrides, filters)
    module = load_pipeline_module(image, "pipeline.ablation_pipeline")
    out = Path(out)
    if out.parent and not out.parent.is_dir():
        raise PipelineError(f"{out}: output directory {out.parent} does not exist")
    pipeline_fn = module.build_ablation_pipeline(settings)
    compiler.Compiler().compile(pipeline_fn, str(out), pipeline_parameters=defaults)
    return out
