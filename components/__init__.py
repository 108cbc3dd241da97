"""KFP glue: one thin lightweight component per stage, each calling `spherereid.stages.<stage>.run`.

Components run on our image (see the Dockerfile), named at compile time by the SPHEREREID_IMAGE
environment variable; `python -m pipeline compile --image REF` sets it. Without it the components carry
PLACEHOLDER_IMAGE, which `compile` and `submit` refuse (local runs ignore the image).
"""

import os

from spherereid.contracts import IMAGE_ENV

PLACEHOLDER_IMAGE = "spherereid-image-unset:set-SPHEREREID_IMAGE"


def image() -> str:
    """The container image the components are compiled with."""
    return os.environ.get(IMAGE_ENV) or PLACEHOLDER_IMAGE
