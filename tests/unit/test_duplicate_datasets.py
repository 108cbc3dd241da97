"""A dataset listed twice (two chains on one output folder) is refused in one line when the params are
loaded, so DVC's stages, the KFP pipeline's arguments and the CLI all refuse it."""

import pytest
from fixtures.tiny_params import tiny_params

from pipeline.__main__ import main as pipeline_main
from pipeline.settings import pipeline_arguments
from spherereid.config import ConfigError, load_params
from spherereid.stages import train


@pytest.mark.parametrize(
    ("datasets", "named"),
    [
        (["synthetic", "market1501", "synthetic"], "'synthetic' twice"),
        (
            ["market1501+msmt17", "msmt17+market1501"],
            "'market1501+msmt17' and 'msmt17+market1501' (one union)",
        ),
    ],
)
def test_a_dataset_listed_twice_is_refused_at_load_naming_the_file_and_the_entry(tmp_path, datasets, named):
    params = tiny_params(tmp_path, datasets=datasets)
    with pytest.raises(ConfigError) as err:
        load_params(params)
    assert str(err.value).startswith(f"{params}: datasets lists {named}") and "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="datasets lists"):  # what KFP submit, schedule and run-local pass
        pipeline_arguments(params)


def test_the_train_stage_and_the_pipeline_cli_refuse_it_in_one_line(tmp_path, capsys):
    params = tiny_params(tmp_path, datasets=["synthetic", "synthetic"])
    args = ["--params", str(params), "--prepared", str(tmp_path / "prepared"), "--out", str(tmp_path / "out")]
    assert train.main(args) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(f"error: {params}: datasets lists")
    assert not (tmp_path / "out").exists()  # refused before anything is written
    ok = tiny_params(tmp_path)
    code = pipeline_main(
        ["run-local", "--params", str(ok), "--out", str(tmp_path / "kfp"), "--datasets", "a", "a"]
    )
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        "error: --datasets: datasets lists 'a' twice; each entry is one chain writing its own output "
        "folders, so list each dataset once"
    )
    assert not (tmp_path / "kfp").exists()
