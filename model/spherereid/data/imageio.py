"""Decode, validate, crop and resize dataset images, in parallel and in a deterministic order.

`load_image` reads one file (one read: the bytes are hashed and decoded from memory), refuses what
cannot be used with a `BadImage` whose message is the reason shown in the preprocess report (empty
file, not an image, truncated data, more pixels than the explicit cap, crop box outside the image,
a side under MIN_SIDE pixels), converts any mode to RGB (16-bit grey to its high byte, not clipped),
applies an optional (x, y, w, h) crop clipped to the image and resizes with Pillow's bilinear filter
to the stored size. `decode_many` maps it over a process pool with an ordered, chunked `imap`;
a task with an output array (`out`, `row`) writes the image straight into that .npy file (opened as
a memory map in each worker), so only the hash and the failure reason travel between processes.
`open_header` opens an image with its header alone read (serving sums the pixels of a request's images
with it before anything is decoded, then decodes those same opened images).
"""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

# Explicit decompression-bomb cap: far above any ReID image (CUHK-SYSU scenes are < 1 MP, a 4K frame
# is 8.3 MP), far below what would exhaust memory when decoded (50 MP RGB = 150 MB).
MAX_PIXELS = 50_000_000
# An image (or clipped crop) narrower or lower than this holds no person: a broken crop or thumbnail.
MIN_SIDE = 4
# Peak memory of `decode_resized` per pixel of the image (width x height): the decoded image in its own
# mode, the codec's buffers and the RGB conversion. Measured with VmHWM, one process per format
# (tests/unit/test_imageio.py::test_decoding_peaks_under_the_stated_bytes_per_pixel): 4 for RGB JPEG,
# PNG, TIFF, BMP; 5 for 1-bit PNG; 8 for RGBA PNG; 10 for 16-bit grey PNG; 16 / 19.6 for RGB / RGBA WebP
# (libwebp's canvases + Pillow's copy); 14 / 17.8 for RGB / RGBA JPEG 2000. The serving bound uses it.
DECODE_PEAK_BYTES_PER_PIXEL = 24


class BadImage(ValueError):
    """A file that cannot be used as an image; the message is the reason for the report."""


@dataclass(frozen=True)
class DecodeTask:
    """One image to load: file, optional (x, y, w, h) crop, stored size, pixel cap and destination.

    With `out` (a .npy file of shape (N, height, width, 3) uint8) the image is written to row `row`
    of it and not returned.
    """

    path: str
    crop: tuple[int, int, int, int] | None
    height: int
    width: int
    max_pixels: int = MAX_PIXELS
    out: str = ""
    row: int = -1


@dataclass(frozen=True)
class Decoded:
    """The result of one task: sha256 and the image (height, width, 3) uint8 (None when written to the
    task's `out` array), or the reason it failed."""

    image: np.ndarray | None
    sha256: str
    reason: str | None

    @property
    def ok(self) -> bool:
        return self.reason is None


def clip_box(box: tuple[int, int, int, int], size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """(x, y, w, h) clipped to an image of `size` (width, height): a PIL box (l, t, r, b), None if empty."""
    x, y, w, h = box
    left, top = max(0, x), max(0, y)
    right, bottom = min(size[0], x + w), min(size[1], y + h)
    if right <= left or bottom <= top:
        return None
    return left, top, right, bottom


def content_hash(data: bytes, crop: tuple[int, int, int, int] | None = None) -> str:
    """sha256 of a file's bytes; for a crop, of the bytes followed by `#crop=x,y,w,h`."""
    h = hashlib.sha256(data)
    if crop is not None:
        h.update(("#crop=" + ",".join(str(int(v)) for v in crop)).encode())
    return h.hexdigest()


def open_header(data: bytes) -> Image.Image:
    """An image opened from its bytes with only its header read (Pillow reads lazily: size and mode are
    known, nothing is decoded), or BadImage with the reason."""
    if not data:
        raise BadImage("empty file (0 bytes)")
    try:
        return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise BadImage(f"decompression bomb refused by Pillow ({exc})") from None
    except UnidentifiedImageError:
        raise BadImage("not an image (Pillow cannot identify the format)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadImage(f"truncated or corrupt image header ({exc})") from None


def open_checked(source: bytes | Image.Image, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode image bytes (or an image from `open_header`) fully into an RGB image, or raise BadImage."""
    img = open_header(source) if isinstance(source, bytes) else source
    w, h = img.size
    if w * h > max_pixels:
        raise BadImage(f"{w}x{h} = {w * h} pixels, over the {max_pixels}-pixel cap (decompression bomb?)")
    try:
        img.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadImage(f"truncated or corrupt image data ({exc})") from None
    if img.mode.startswith("I;16"):
        # 16-bit grey: Pillow's convert would clip at 255; keep the high byte, as Pillow does for 16-bit RGB
        return Image.fromarray((np.asarray(img, dtype=np.uint16) >> 8).astype(np.uint8)).convert("RGB")
    return img if img.mode == "RGB" else img.convert("RGB")  # convert("RGB") of RGB is a full copy


def check_size(size: tuple[int, int], what: str = "image") -> None:
    """BadImage if a (width, height) is under MIN_SIDE pixels on either side."""
    if min(size) < MIN_SIDE:
        raise BadImage(f"{what} is {size[0]}x{size[1]} pixels, under the {MIN_SIDE}-pixel minimum side")


def load_image(
    path: str | os.PathLike,
    height: int,
    width: int,
    crop: tuple[int, int, int, int] | None = None,
    max_pixels: int = MAX_PIXELS,
) -> tuple[np.ndarray, str]:
    """(height, width, 3) uint8 image of `path` (cropped, then bilinear-resized) and its content hash."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise BadImage(f"cannot read the file ({exc.strerror or exc})") from None
    return decode_resized(data, height, width, crop, max_pixels), content_hash(data, crop)


def decode_resized(
    source: bytes | Image.Image,
    height: int,
    width: int,
    crop: tuple[int, int, int, int] | None = None,
    max_pixels: int = MAX_PIXELS,
) -> np.ndarray:
    """Image bytes (or an image from `open_header`, closed here once used) -> (height, width, 3) uint8:
    decode, validate, crop, bilinear resize (preprocess's own step, shared with serving, export and search
    through data.image_chain)."""
    opened = open_header(source) if isinstance(source, bytes) else source
    try:
        return _resized(open_checked(opened, max_pixels), height, width, crop)
    finally:
        opened.close()  # its decoded pixels are released now, not when the caller drops the image


def _resized(img: Image.Image, height: int, width: int, crop: tuple[int, int, int, int] | None) -> np.ndarray:
    check_size(img.size)
    if crop is not None:
        box = clip_box(crop, img.size)
        if box is None:
            raise BadImage(f"crop box {tuple(crop)} lies outside the {img.size[0]}x{img.size[1]} image")
        img = img.crop(box)
        check_size(img.size, f"crop box {tuple(crop)} clipped to the image")
    return resize_rgb(img, height, width)


def resize_rgb(img: Image.Image, height: int, width: int) -> np.ndarray:
    """An RGB PIL image -> (height, width, 3) uint8, bilinear (the stored-size resize)."""
    return np.asarray(img.resize((width, height), Image.Resampling.BILINEAR), dtype=np.uint8)


def pool_context() -> multiprocessing.context.BaseContext:
    """'fork' where available (Linux, macOS), else 'spawn'."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


_OUTPUTS: dict[str, np.ndarray] = {}  # per process: output .npy files opened as writable memory maps


def _output(path: str) -> np.ndarray:
    if path not in _OUTPUTS:
        _OUTPUTS[path] = np.load(path, mmap_mode="r+")
    return _OUTPUTS[path]


def decode_task(task: DecodeTask) -> Decoded:
    """Run one task; a BadImage becomes a `Decoded` with the reason (worker entry point)."""
    try:
        image, digest = load_image(task.path, task.height, task.width, task.crop, task.max_pixels)
    except BadImage as exc:
        return Decoded(None, "", str(exc))
    if task.out:
        _output(task.out)[task.row] = image
        return Decoded(None, digest, None)
    return Decoded(image, digest, None)


def release_outputs() -> None:
    """Flush and close the memory maps this process opened for task outputs."""
    for arr in _OUTPUTS.values():
        if isinstance(arr, np.memmap):
            arr.flush()
    _OUTPUTS.clear()


def decode_many(
    tasks: Iterable[DecodeTask],
    *,
    workers: int,
    total: int,
    progress: Callable[[int], None] | None = None,
) -> Iterator[Decoded]:
    """Results of `decode_task` in task order; `workers` > 1 uses a process pool with a chunked imap.

    Workers are forked where the platform can (start-up ~20 ms instead of ~0.6 s for spawned ones,
    which re-import numpy and Pillow; they run only Pillow / numpy code), spawned elsewhere.
    """
    if workers <= 1:
        try:
            for task in tasks:
                yield decode_task(task)
                if progress is not None:
                    progress(1)
        finally:
            release_outputs()
        return
    chunksize = max(1, min(64, total // (workers * 8)))
    with pool_context().Pool(workers) as pool:
        for result in pool.imap(decode_task, tasks, chunksize=chunksize):
            yield result
            if progress is not None:
                progress(1)
