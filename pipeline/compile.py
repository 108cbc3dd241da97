"""Compile the pipeline to a KFP YAML package for one immutable image reference."""

from __future__ import annotations

import importlib
import os
import re
import sys
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
)


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


def load_pipeline_module(image: str | None) -> ModuleType:
    """Import the pipeline module with components bound to `image` (re-imported if bound to another)."""
    from components import IMAGE_ENV
    from components import image as current_image

    previous = os.environ.get(IMAGE_ENV)
    if image:
        os.environ[IMAGE_ENV] = image
    try:
        wanted = current_image()
        stale = any(
            name in sys.modules
            and getattr(
                sys.modules[name], name.rsplit(".", 1)[1]
            ).component_spec.implementation.container.image
            != wanted
            for name in _COMPONENT_MODULES
        )
        for name in _COMPONENT_MODULES:
            module = importlib.import_module(name)
            if stale:
                importlib.reload(module)
        module = importlib.import_module("pipeline.spherereid_pipeline")
        return importlib.reload(module) if stale else module
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
