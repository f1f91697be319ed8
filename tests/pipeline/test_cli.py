"""The `tlpipe` command line: help, config printing, and clean errors."""

import os

import pytest
import yaml

from tlpipe.models.plumbing.artifacts import read_json
from tlpipe.pipeline.cli import main

pytestmark = pytest.mark.quick


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["--help"])
    assert caught.value.code == 0
    out = capsys.readouterr().out
    for command in ("run", "publish-source", "ingest", "transform", "config", "compile", "submit", "schedule"):
        assert command in out


def test_config_prints_effective_yaml(capsys):
    assert main(["config", "--set", "trainer.head_epochs=4"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["trainer"]["head_epochs"] == 4


def test_user_errors_exit_1_with_one_line_and_no_traceback(capsys):
    assert main(["config", "--set", "trainer.nope=1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tlpipe: error: config key 'trainer.nope': received 1")
    assert "Traceback" not in err


def test_missing_config_file(capsys, tmp_path):
    assert main(["config", "--config", str(tmp_path / "none.yaml")]) == 1
    assert "none.yaml" in capsys.readouterr().err


def test_ingest_then_transform_to_the_modules_geometry(tiny_config, tmp_path, capsys):
    config_file = str(tmp_path / "tiny.yaml")
    raw, transformed = str(tmp_path / "raw"), str(tmp_path / "transformed")
    assert main(["-q", "ingest", "--config", config_file, "-o", raw]) == 0
    assert "ingested eval: 6, test: 18, train: 15 examples of 3 classes" in capsys.readouterr().out
    assert main(["-q", "transform", "--config", config_file, "-i", raw, "-o", transformed]) == 0
    assert "transformed" in capsys.readouterr().out
    metadata = read_json(os.path.join(transformed, "metadata.json"))
    assert metadata["transform"]["image_size"] == [12, 12]  # the tiny hub module's input size
    assert metadata["transform"]["channels"] == 1


def test_main_leaves_the_process_verbosity_as_it_found_it(capsys):
    from tlpipe.models.plumbing import progress

    assert progress.verbosity() == progress.NORMAL
    assert main(["-q", "config"]) == 0
    assert main(["-v", "config", "--set", "trainer.nope=1"]) == 1
    assert progress.verbosity() == progress.NORMAL  # a later caller's progress bars still show
