"""ablation.png's layout: heads grouped in A-D order, the random-batch cell in its own group, a bar per
loss and warm-up setting, values in percent, the paper's figure on the one cell it reports."""

from __future__ import annotations

from spherereid.experiments.ablation_plot import PaperMarker, plot_ablation, plot_layout
from spherereid.experiments.grid import default_grid


def _records(cells):
    return [
        {
            "cell": c.cell_id,
            "head": c.head,
            "loss": c.loss,
            "warmup": c.warmup,
            "sampler": c.sampler,
            "rank1": i / 100,
            "mAP": i / 200,
        }
        for i, c in enumerate(cells)
    ]


def test_the_full_grid_is_four_heads_and_the_random_cell_with_four_settings_each():
    records = _records(default_grid())
    layout = plot_layout(records)
    assert layout.groups == ["network A", "network B", "network C", "network D", "network D, random batches"]
    assert layout.series == [
        "softmax, no warm-up",
        "softmax, warm-up",
        "sphere, no warm-up",
        "sphere, warm-up",
    ]
    for r in records:
        g = layout.groups.index(
            f"network {r['head']}" + (", random batches" if r["sampler"] == "random" else "")
        )
        s = layout.series.index(f"{r['loss']}, {'warm-up' if r['warmup'] == 'on' else 'no warm-up'}")
        assert layout.values["rank1"][s][g] == 100 * r["rank1"]
        assert layout.values["mAP"][s][g] == 100 * r["mAP"]
    # the random group holds only the full method's bar
    assert [v[4] is None for v in layout.values["rank1"]] == [True, True, True, False]


def test_the_paper_star_sits_on_the_full_method_only():
    layout = plot_layout(_records(default_grid()))
    d, sphere_warm = layout.groups.index("network D"), layout.series.index("sphere, warm-up")
    assert layout.markers == [
        PaperMarker("rank1", d, sphere_warm, 94.4),
        PaperMarker("mAP", d, sphere_warm, 83.6),
    ]


def test_a_narrowed_grid_shows_only_its_cells(tmp_path):
    cells = [c for c in default_grid() if c.head in "AD" and c.loss == "sphere" and c.sampler == "balanced"]
    layout = plot_layout(_records(cells))
    assert layout.groups == ["network A", "network D"]
    assert layout.series == ["sphere, no warm-up", "sphere, warm-up"]
    assert plot_ablation(_records(cells), tmp_path / "a.png").stat().st_size > 1000
