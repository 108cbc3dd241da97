"""Image decoding / validation / crop / resize (spherereid.data.imageio)."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spherereid.data.imageio import (
    BadImage,
    DecodeTask,
    clip_box,
    content_hash,
    decode_many,
    decode_task,
    load_image,
)


def _noise_image(path: Path, w: int, h: int, seed: int = 0, fmt: str = "PNG") -> Path:
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path, fmt)
    return path


def _jpeg(w: int = 40, h: int = 80, seed: int = 0) -> bytes:
    buf = io.BytesIO()
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(arr).save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("box", "size", "expected"),
    [
        ((2, 3, 4, 5), (10, 10), (2, 3, 6, 8)),
        ((-2, -3, 4, 5), (10, 10), (0, 0, 2, 2)),  # clipped at the top-left corner
        ((8, 7, 10, 10), (10, 10), (8, 7, 10, 10)),  # clipped at the bottom-right corner
        ((10, 0, 3, 3), (10, 10), None),  # entirely right of the image
        ((0, 0, 0, 5), (10, 10), None),  # zero width
    ],
)
def test_clip_box(box, size, expected):
    assert clip_box(box, size) == expected


def test_resize_equals_pillow_bilinear(tmp_path):
    path = _noise_image(tmp_path / "a.png", 30, 70)
    img, digest = load_image(path, 16, 8)
    expected = np.asarray(Image.open(path).convert("RGB").resize((8, 16), Image.Resampling.BILINEAR))
    assert img.dtype == np.uint8 and img.shape == (16, 8, 3)
    np.testing.assert_array_equal(img, expected)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()


def test_crop_is_clipped_then_resized_and_hashed_with_box(tmp_path):
    path = _noise_image(tmp_path / "scene.png", 50, 40, seed=1)
    img, digest = load_image(path, 12, 6, crop=(40, -5, 20, 30))  # sticks out right and top
    region = Image.open(path).convert("RGB").crop((40, 0, 50, 25))
    np.testing.assert_array_equal(img, np.asarray(region.resize((6, 12), Image.Resampling.BILINEAR)))
    assert digest == hashlib.sha256(path.read_bytes() + b"#crop=40,-5,20,30").hexdigest()
    assert content_hash(b"abc") == hashlib.sha256(b"abc").hexdigest()


def test_grey_and_palette_images_become_rgb(tmp_path):
    Image.new("L", (4, 4), 77).save(tmp_path / "g.png")
    Image.new("P", (4, 4), 3).save(tmp_path / "p.png")
    grey, _ = load_image(tmp_path / "g.png", 4, 4)
    assert grey.shape == (4, 4, 3) and (grey == 77).all()
    pal, _ = load_image(tmp_path / "p.png", 4, 4)
    assert pal.shape == (4, 4, 3)


def test_sixteen_bit_grey_png_is_scaled_to_eight_bits_not_clipped(tmp_path):
    # the high byte, v // 256, as Pillow does for 16-bit RGB PNGs: 25700 -> 100, 65535 -> 255, 255 -> 0,
    # 9509 -> 37, 1000 -> 3; Pillow's own convert("RGB") of mode I;16 would clip 25700 and 65535 to 255
    # and keep 255 as 255
    values = np.array([[0, 25700], [65535, 255], [256, 9509], [1000, 2000]], dtype=np.uint16)
    values = np.repeat(np.repeat(values, 2, axis=0), 2, axis=1)  # (8, 4): above the minimum side
    Image.fromarray(values).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode == "I;16"
    img, _ = load_image(tmp_path / "g16.png", 8, 4)
    expected = np.array([[0, 100], [255, 0], [1, 37], [3, 7]], dtype=np.uint8)
    expected = np.repeat(np.repeat(expected, 2, axis=0), 2, axis=1)
    assert img.shape == (8, 4, 3)
    for c in range(3):
        np.testing.assert_array_equal(img[..., c], expected)


@pytest.mark.parametrize(
    ("size", "crop", "reason"),
    [
        ((1, 1), None, "image is 1x1 pixels, under the 4-pixel minimum side"),
        ((3, 40), None, "image is 3x40 pixels"),
        ((20, 20), (18, 0, 5, 10), r"crop box \(18, 0, 5, 10\) clipped to the image is 2x10 pixels"),
    ],
)
def test_images_under_the_minimum_side_are_bad(tmp_path, size, crop, reason):
    path = _noise_image(tmp_path / "tiny.jpg", *size, fmt="JPEG")
    with pytest.raises(BadImage, match=reason):
        load_image(path, 8, 4, crop=crop)


def test_images_at_the_minimum_side_are_kept(tmp_path):
    path = _noise_image(tmp_path / "four.png", 4, 4)
    assert load_image(path, 8, 4)[0].shape == (8, 4, 3)
    scene = _noise_image(tmp_path / "s.png", 20, 20)
    assert load_image(scene, 8, 4, crop=(16, 0, 5, 10))[0].shape == (8, 4, 3)  # clipped to 4x10


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", r"empty file \(0 bytes\)"),
        (b"this is a text file, not a JPEG\n", "not an image"),
        (_jpeg()[:300], "truncated or corrupt"),
    ],
)
def test_bad_files_raise_with_reason(tmp_path, data, reason):
    path = tmp_path / "0001_c1s1_000001_01.jpg"
    path.write_bytes(data)
    with pytest.raises(BadImage, match=reason):
        load_image(path, 8, 4)
    res = decode_task(DecodeTask(str(path), None, 8, 4))
    assert res.image is None and res.reason.startswith(reason.replace("\\", ""))


def test_pixel_cap_refuses_decompression_bombs(tmp_path):
    path = _noise_image(tmp_path / "big.png", 100, 60)
    with pytest.raises(BadImage, match="6000 pixels, over the 5999-pixel cap"):
        load_image(path, 8, 4, max_pixels=5999)
    assert load_image(path, 8, 4, max_pixels=6000)[0].shape == (8, 4, 3)


def test_crop_outside_image_is_a_bad_image(tmp_path):
    path = _noise_image(tmp_path / "s.png", 20, 20)
    with pytest.raises(BadImage, match="outside the 20x20 image"):
        load_image(path, 8, 4, crop=(25, 0, 5, 5))


def test_missing_file_is_a_bad_image(tmp_path):
    with pytest.raises(BadImage, match="cannot read the file"):
        load_image(tmp_path / "nope.jpg", 8, 4)


def test_pool_keeps_task_order(tmp_path):
    paths = [_noise_image(tmp_path / f"{i}.png", 10 + i, 20, seed=i) for i in range(9)]
    (tmp_path / "bad.jpg").write_bytes(b"")
    tasks = [DecodeTask(str(p), None, 6, 3) for p in paths[:4]]
    tasks += [DecodeTask(str(tmp_path / "bad.jpg"), None, 6, 3)]
    tasks += [DecodeTask(str(p), None, 6, 3) for p in paths[4:]]
    serial = list(decode_many(iter(tasks), workers=1, total=len(tasks)))
    seen: list[int] = []
    pooled = list(decode_many(iter(tasks), workers=2, total=len(tasks), progress=seen.append))
    assert len(pooled) == len(tasks) == sum(seen)
    for a, b, t in zip(serial, pooled, tasks, strict=True):
        assert a.reason == b.reason and a.sha256 == b.sha256
        if a.image is None:
            assert b.image is None and t.path.endswith("bad.jpg")
        else:
            np.testing.assert_array_equal(a.image, b.image)
            np.testing.assert_array_equal(a.image, load_image(t.path, 6, 3)[0])


def test_pool_writes_rows_into_the_output_array(tmp_path):
    paths = [_noise_image(tmp_path / f"{i}.png", 20, 10 + i, seed=i) for i in range(7)]
    out = tmp_path / "out.npy"
    np.lib.format.open_memmap(out, "w+", np.uint8, (7, 6, 3, 3)).flush()
    order = [3, 0, 6, 1, 5, 2, 4]  # rows need not follow the task order
    tasks = [DecodeTask(str(paths[i]), None, 6, 3, out=str(out), row=r) for r, i in enumerate(order)]
    results = list(decode_many(iter(tasks), workers=2, total=len(tasks)))
    assert all(r.ok and r.image is None for r in results)
    arr = np.load(out)
    for r, i in enumerate(order):
        np.testing.assert_array_equal(arr[r], load_image(paths[i], 6, 3)[0])
        assert results[r].sha256 == hashlib.sha256(paths[i].read_bytes()).hexdigest()
