"""What one request to the served model may cost: rows, decoded pixels, decode threads.

Read from the server's environment when the model loads:

    SPHEREREID_SERVE_MAX_ROWS    rows per request (default 1024)
    SPHEREREID_SERVE_MAX_PIXELS  decoded pixels per request: width x height summed over the rows, read
                                 from the image headers before anything is decoded (default 48,000,000)

Decode threads: the CPUs the server may use (data.cpu_quota: affinity, cgroup v2 quota), not the host's.

Memory bound of the server process (RSS):

    model loaded, one batch of PREDICT_BATCH rows  (the network's working set: fixed, not per row;
                                                    1.07 GiB for the tiny test model: mlflow + uvicorn)
  + rows cap x stored_h x stored_w x 3             (the stored uint8 array; 32 MB at 1024 x 144 x 72)
  + pixel budget x DECODE_PEAK_BYTES_PER_PIXEL     (48 M x 24 B = 1.15 GB; 4 B/px for RGB JPEG)
  + about 14 x the request body                    (MLflow's JSON parse, DataFrame, base64 decode)

The decode term: each row is decoded from its already opened header and closed once resized, only the
rows in flight are decoded at once, and their pixels are part of the budget. The served model decodes and
embeds one request at a time (pyfunc_flavor.ONE_REQUEST_AT_A_TIME), so the bound holds per server
process whatever the clients do. The body term is MLflow's, before the model sees the request: bound it
in front of the server (an ingress body-size limit). `memory_bound` is the middle two terms;
tests/integration/test_serving_errors.py measures the whole against a real `mlflow models serve`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..contracts import SERVE_MAX_PIXELS_ENV as PIXELS_ENV
from ..contracts import SERVE_MAX_ROWS_ENV as ROWS_ENV
from ..data.cpu_quota import CGROUP_CPU_MAX, usable_cpus
from ..data.imageio import DECODE_PEAK_BYTES_PER_PIXEL

DEFAULT_MAX_ROWS = 1024  # the serving benchmark posts 1000 rows per request
DEFAULT_MAX_PIXELS = 48_000_000  # 1024 crops of 288x144 (42.5 M); one 7000x6800 photo
RAISE_HINT = "the server's environment variable {env} (read when the model loads)"


class RequestTooLarge(ValueError):
    """A request over a limit; the message names the limit and how to raise it (an HTTP 400)."""


class ServeLimitError(ValueError):
    """A limit variable of the server's environment is not a whole number >= 1."""


def _env_int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        value = 0
    if value < 1:
        raise ServeLimitError(f"{name}={raw!r}: expected a whole number >= 1 (unset: {default})")
    return value


@dataclass(frozen=True)
class ServeLimits:
    """Rows and decoded pixels allowed per request, and the decode threads."""

    max_rows: int = DEFAULT_MAX_ROWS
    max_pixels: int = DEFAULT_MAX_PIXELS
    decode_threads: int = 1

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, cgroup_cpu_max: Path = CGROUP_CPU_MAX
    ) -> ServeLimits:
        """The limits of SPHEREREID_SERVE_MAX_ROWS / _MAX_PIXELS (defaults when unset) and the usable CPUs."""
        environ = os.environ if environ is None else environ
        return cls(
            max_rows=_env_int(environ, ROWS_ENV, DEFAULT_MAX_ROWS),
            max_pixels=_env_int(environ, PIXELS_ENV, DEFAULT_MAX_PIXELS),
            decode_threads=usable_cpus(cgroup_cpu_max),
        )

    def check_rows(self, rows: int) -> None:
        """RequestTooLarge when `rows` is over max_rows (checked before any row is read)."""
        if rows > self.max_rows:
            raise RequestTooLarge(
                f"request has {rows} rows, over the limit of {self.max_rows} rows per request: send at "
                f"most {self.max_rows} rows per request, or raise the limit with "
                + RAISE_HINT.format(env=ROWS_ENV)
            )

    def check_pixels(self, pixels: Sequence[int]) -> None:
        """RequestTooLarge when the rows' pixels (width x height from their headers; see
        pyfunc_flavor.opened_rows) sum to more than max_pixels. Called before anything is decoded."""
        total = sum(pixels)
        if total > self.max_pixels:
            raise RequestTooLarge(
                f"request images hold {total} pixels (width x height from their headers, summed over "
                f"{len(pixels)} rows), over the budget of {self.max_pixels} decoded pixels per request: "
                "send fewer or smaller images per request, or raise the budget with "
                + RAISE_HINT.format(env=PIXELS_ENV)
            )

    def memory_bound(self, stored_size: tuple[int, int]) -> int:
        """Bytes one admitted request may add to the loaded model: the stored array at full rows plus
        the decode peak of the full pixel budget."""
        height, width = stored_size
        return self.max_rows * height * width * 3 + self.max_pixels * DECODE_PEAK_BYTES_PER_PIXEL
