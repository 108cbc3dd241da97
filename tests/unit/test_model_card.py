"""The model card (a registered version's Markdown description): tables, gate verdict, chain, serving."""

from pathlib import Path

from spherereid.reporting.model_card import Lineage, model_card

CHAIN = {"stored_size": [288, 144], "input_size": [256, 128], "mean": [0.5, 0.5, 0.5], "std": [0.25] * 3}


def _card(**over):
    kwargs = dict(
        name="spherereid-market1501",
        version=7,
        dataset="market1501",
        dataset_hash="abcd",
        params={"model.backbone": "resnet50", "train.epochs": "140", "model.embedding_dim": "2048"},
        metrics={
            "rank1": 0.9412,
            "rank5": 0.97,
            "rank10": 0.98,
            "mAP": 0.8333,
            "mAP_official": 0.83,
            "mINP": 0.5,
            "num_valid_queries": 3368,
            "num_queries": 3368,
        },
        passed_gate=True,
        gate_text="quality gate passed (rank1 0.9412 >= 0.5000, mAP 0.8333 >= 0.3000)",
        lineage=Lineage(git_commit="c0ffee", dvc_data_hash="d1.dir", image="reg/spherereid@sha256:1"),
        chain={**CHAIN, "flip": True},
    )
    kwargs.update(over)
    return model_card(**kwargs)


def test_card_holds_data_params_metrics_gate_lineage_chain_use_and_serving():
    card = _card()
    assert card.startswith("# spherereid-market1501 version 7\n")
    assert "one unit-norm 2048-d embedding" in card
    assert "| market1501 | `abcd` | `d1.dir` |" in card
    assert "| backbone | resnet50 |" in card and "| epochs | 140 |" in card and "| head | n/a |" in card
    assert "| 0.9412 | 0.9700 | 0.9800 | 0.8333 | 0.8300 | 0.5000 | 3368/3368 |" in card
    assert "Quality gate: **passed** (rank1 0.9412 >= 0.5000, mAP 0.8333 >= 0.3000)." in card
    assert "| `c0ffee` | `abcd` | `reg/spherereid@sha256:1` | `unknown` |" in card
    assert "stored size 288x144 -> resize to the input size 256x128" in card
    assert "averaged with the mirror image" in card
    assert "## Intended use and limits" in card
    assert "mlflow models serve -m models:/spherereid-market1501/7 --env-manager local" in card
    assert '\\"columns\\": [\\"image\\"]' in card


def test_the_training_precision_used_is_in_the_params_table():
    params = {"model.backbone": "resnet50", "train.precision": "auto", "train.precision_used": "bf16"}
    assert "| training precision (used) | bf16 |" in _card(params=params)


def test_a_failed_gate_and_a_chain_without_flip_are_stated():
    card = _card(
        passed_gate=False,
        gate_text="quality gate failed: rank1 0.1000 < min_rank1 0.5000",
        chain={**CHAIN, "flip": False},
        lineage=Lineage(),
    )
    assert "Quality gate: **failed**: rank1 0.1000 < min_rank1 0.5000." in card
    assert "mirror" not in card and "`local (no container image)`" in card


def test_the_card_is_byte_identical_to_the_one_the_single_function_wrote():
    """tests/fixtures/model_card_market1501_v7.md was written by model_card before it was split into
    section builders (commit ea32a01), from _card()'s inputs: the split must not move a byte."""
    golden = Path(__file__).resolve().parents[1] / "fixtures" / "model_card_market1501_v7.md"
    assert _card() == golden.read_text()


def test_the_extraction_precision_table_gives_both_precisions_and_the_difference_in_points():
    check = {
        "precision": "bf16",
        "bf16": {"rank1": 0.9412, "mAP": 0.8333},
        "fp32": {"rank1": 0.9400, "mAP": 0.8345},
        "difference": {"rank1": 0.0012, "mAP": -0.0012},
    }
    card = _card(precision_check=check)
    assert "| extraction precision | rank-1 | mAP |" in card
    assert "| bf16 (served) | 0.9412 | 0.8333 |" in card
    assert "| fp32 (reference) | 0.9400 | 0.8345 |" in card
    assert "| bf16 - fp32 (points) | +0.12 | -0.12 |" in card
    assert card.index("Quality gate:") < card.index("| bf16 (served)") < card.index("## Lineage")
    fp32 = {"precision": "fp32", "fp32": check["fp32"], "difference": {"rank1": 0.0, "mAP": 0.0}}
    card = _card(precision_check=fp32)
    assert "| fp32 (served) | 0.9400 | 0.8345 |" in card and "(points)" not in card
    assert "extraction precision" not in _card()  # an evaluation from before the check: no table
