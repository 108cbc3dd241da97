"""The ranked-list figure's mosaic: each tile where it belongs, framed by whether it is the same identity."""

import numpy as np

from spherereid.reporting.plots import FRAME, GAP, GREEN, RED, plot_ranked_lists, ranked_mosaic


def test_tiles_and_frames_are_placed_by_rank():
    h, w = 4, 2
    query = np.stack([np.full((h, w, 3), 10 + i, np.uint8) for i in range(2)])
    gallery = np.stack([np.full((h, w, 3), 100 + g, np.uint8) for g in range(5)])
    ranked = np.array([[3, 0], [4, 1]])
    correct = np.array([[True, False], [False, True]])
    canvas = ranked_mosaic(query, gallery, ranked, correct)
    th, tw = h + 2 * FRAME + GAP, w + 2 * FRAME + GAP
    assert canvas.shape == (2 * th, 3 * tw, 3)

    def tile(i, j):
        return canvas[i * th + FRAME : i * th + FRAME + h, j * tw + FRAME : j * tw + FRAME + w]

    def frame(i, j):
        return tuple(canvas[i * th, j * tw])

    assert (tile(0, 0) == 10).all() and (tile(1, 0) == 11).all()  # the queries
    assert (tile(0, 1) == 103).all() and (tile(0, 2) == 100).all() and (tile(1, 1) == 104).all()
    assert frame(0, 1) == GREEN and frame(0, 2) == RED and frame(1, 1) == RED and frame(1, 2) == GREEN
    assert (canvas[th - 1, :] == 255).all()  # the gap below each row is white


def test_the_figure_is_written(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 16, 8, 3), dtype=np.uint8)
    path = plot_ranked_lists(
        images[:6], images, rng.integers(0, 12, (6, 10)), rng.random((6, 10)) < 0.5, tmp_path / "ranked.png"
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 2000
