"""deploy/serve_limits.py and its use in the served model's predict: rows per request, a budget of
decoded pixels per request summed from the image headers before anything is decoded, decode threads
from the CPUs the server may use, one request decoded at a time; each refusal a one-line HTTP 400
naming the limit and the variable that raises it (the served path end to end is
tests/integration/test_serving_errors.py)."""

from __future__ import annotations

import io
import os
import threading

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from spherereid.data.image_chain import ImageChain
from spherereid.deploy import pyfunc_flavor
from spherereid.deploy.pyfunc_flavor import ReIDEmbeddingModel
from spherereid.deploy.serve_limits import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_ROWS,
    PIXELS_ENV,
    ROWS_ENV,
    RequestTooLarge,
    ServeLimitError,
    ServeLimits,
)

CHAIN = ImageChain(stored_size=(36, 18), input_size=(32, 16), flip=True)


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """A 1-bit 7000x7000 PNG: about 6 kB that decode to 49 M pixels (about 190 MiB in RGB)."""
    buf = io.BytesIO()
    Image.new("1", (7000, 7000), 1).save(buf, format="PNG")
    return buf.getvalue()


def _served() -> ReIDEmbeddingModel:
    """The served model as load_context builds it (a tiny network), without an MLflow store; the
    environment is read when it is built, as when MLflow loads the model."""
    import torch

    from spherereid.modeling.net import ReIDNet

    torch.manual_seed(0)
    served = ReIDEmbeddingModel()
    served.net = ReIDNet(backbone="tiny", head="D", embedding_dim=16).eval()
    served.chain, served.device, served.embedding_dim = CHAIN, torch.device("cpu"), 16
    return served


def _refusal(served, frame):
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException) as info:
        served.predict(None, frame)
    exc = info.value
    assert exc.get_http_status_code() == 400 and exc.error_code == "INVALID_PARAMETER_VALUE"
    assert "\n" not in exc.message
    return exc.message


def test_a_request_over_the_row_limit_is_refused_before_any_row_is_read(monkeypatch):
    monkeypatch.setenv(ROWS_ENV, "3")
    served = _served()
    png = _png(np.zeros((36, 18, 3), dtype=np.uint8))
    message = _refusal(served, pd.DataFrame({"image": [b"not an image"] * 4}))  # no row is looked at
    assert message == (
        "request has 4 rows, over the limit of 3 rows per request: send at most 3 rows per request, "
        f"or raise the limit with the server's environment variable {ROWS_ENV} (read when the model loads)"
    )
    assert served.predict(None, pd.DataFrame({"image": [png] * 3})).shape == (3, 16)


def test_the_pixel_budget_sums_the_header_sizes_and_refuses_before_decoding(monkeypatch, bomb):
    monkeypatch.setenv(PIXELS_ENV, "60000000")
    served = _served()
    header_only = bomb[: len(bomb) // 2]  # the header says 7000x7000; the pixel data is cut short
    message = _refusal(served, pd.DataFrame({"image": [header_only, header_only]}))
    assert message == (
        "request images hold 98000000 pixels (width x height from their headers, summed over 2 rows), "
        "over the budget of 60000000 decoded pixels per request: send fewer or smaller images per "
        f"request, or raise the budget with the server's environment variable {PIXELS_ENV} "
        "(read when the model loads)"
    )
    # one such row is within the budget: only then is it decoded, and its cut data found
    assert _refusal(served, pd.DataFrame({"image": [header_only]})).startswith("row 0: truncated")
    # arrays (a Python caller's rows) count their height x width
    served.limits = ServeLimits(max_rows=8, max_pixels=36 * 18 * 2, decode_threads=1)
    rows = [np.zeros((36, 18, 3), dtype=np.uint8)] * 3
    assert "1944 pixels" in _refusal(served, pd.DataFrame({"image": rows}))
    assert served.predict(None, pd.DataFrame({"image": rows[:2]})).shape == (2, 16)


def test_unreadable_headers_count_nothing_and_the_first_bad_row_is_still_named(bomb):
    served = _served()
    served.limits = ServeLimits(max_rows=8, max_pixels=1000, decode_threads=1)
    png = _png(np.zeros((20, 10, 3), dtype=np.uint8))  # 200 pixels
    frame = pd.DataFrame({"image": [png, b"not an image", png]})
    assert _refusal(served, frame).startswith("row 1: not an image")
    assert _refusal(served, pd.DataFrame({"image": [png] * 4 + [bomb]})).startswith(
        "request images hold 49000800 pixels"
    )


def test_64_rows_of_the_7000x7000_png_are_refused_with_the_default_limits(bomb):
    served = _served()
    assert served.limits == ServeLimits(DEFAULT_MAX_ROWS, DEFAULT_MAX_PIXELS, served.limits.decode_threads)
    message = _refusal(served, pd.DataFrame({"image": [bomb] * 64}))
    assert message.startswith(f"request images hold {64 * 49_000_000} pixels")


def test_the_default_limits_admit_the_serving_benchmarks_requests():
    """benchmarks/train_throughput.py --only serving posts 1000 rows of 288x144 crops (PAPER recipe)."""
    limits = ServeLimits()
    limits.check_rows(1000)
    limits.check_pixels([288 * 144] * 1000)
    with pytest.raises(RequestTooLarge):
        limits.check_rows(DEFAULT_MAX_ROWS + 1)


@pytest.mark.parametrize("value", ["0", "-5", "abc", "1.5", ""])
def test_limits_from_the_environment_name_the_variable_when_invalid(monkeypatch, value):
    monkeypatch.setenv(ROWS_ENV, value)
    with pytest.raises(ServeLimitError, match=f"^{ROWS_ENV}={value!r}: expected a whole number >= 1"):
        ServeLimits.from_env()


def test_limits_read_both_variables_and_the_decode_threads_follow_the_cgroup_quota(monkeypatch, tmp_path):
    monkeypatch.setenv(ROWS_ENV, "17")
    monkeypatch.setenv(PIXELS_ENV, "123456")
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("100000 100000\n")
    assert ServeLimits.from_env(cgroup_cpu_max=cpu_max) == ServeLimits(17, 123456, 1)
    cpu_max.write_text("max 100000\n")
    assert ServeLimits.from_env(cgroup_cpu_max=cpu_max).decode_threads == len(os.sched_getaffinity(0))


def test_a_second_request_waits_while_one_is_being_decoded_and_embedded():
    """One request at a time per server process: the memory bound holds for concurrent clients."""
    served = _served()
    png = _png(np.zeros((36, 18, 3), dtype=np.uint8))
    done, answers = threading.Event(), []

    def second_request() -> None:
        answers.append(served.predict(None, pd.DataFrame({"image": [png]})))
        done.set()

    worker = threading.Thread(target=second_request)
    with pyfunc_flavor.ONE_REQUEST_AT_A_TIME:  # as if another request were being decoded and embedded
        worker.start()
        assert not done.wait(timeout=2.0)  # without the lock it answers in milliseconds
    worker.join(timeout=60)
    assert done.is_set() and answers[0].shape == (1, 16)
