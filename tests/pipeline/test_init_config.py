"""`tlpipe init`: a starter config for an image folder that `tlpipe run --config` accepts."""

import pytest

from tlpipe.pipeline.cli import main
from tlpipe.pipeline.config import load_config
from tlpipe.pipeline.starter_config import SPLITS, SUGGESTED_PRESET

pytestmark = pytest.mark.quick


def test_init_writes_a_commented_config_that_loads(tmp_path, capsys, image_folder_writer):
    data = tmp_path / "my pets"
    image_folder_writer(data, {"cats": 5, "dogs": 3})
    output = tmp_path / "pets.yaml"

    assert main(["init", f"image_folder:{data}", "-o", str(output)]) == 0
    assert f"run it with: tlpipe run --config {output}" in capsys.readouterr().out
    text = output.read_text()
    assert "Classes found (2, images per class): cats (5), dogs (3)" in text
    assert "the fewest class has 3 images" in text

    config = load_config(str(output))
    assert config.pipeline.name == "my-pets"
    assert config.ingest.source == f"image_folder:{data}"
    assert config.ingest.splits == SPLITS and config.ingest.classes == [] and config.ingest.label_names == []
    assert config.trainer.preset == SUGGESTED_PRESET and config.transform.image_size == [224, 224]
    assert main(["config", "--config", str(output)]) == 0  # what `tlpipe run --config` loads first

    assert main(["init", str(data), "-o", str(output)]) == 1  # never overwrites
    assert "exists" in capsys.readouterr().err


def test_init_finds_spans_and_refuses_folders_without_classes(tmp_path, capsys, image_folder_writer):
    image_folder_writer(tmp_path / "data" / "span-1", {"a": 2, "b": 2})
    image_folder_writer(tmp_path / "data" / "span-12", {"a": 2, "b": 2, "c": 1})
    output = tmp_path / "spans.yaml"
    assert main(["init", str(tmp_path / "data"), "-o", str(output)]) == 0
    config = load_config(str(output))
    assert config.ingest.source == f"image_folder:{tmp_path / 'data'}/span-{{SPAN}}"
    assert "span-12 now" in output.read_text() and "a (2), b (2), c (1)" in output.read_text()

    (tmp_path / "empty" / "only").mkdir(parents=True)
    assert main(["init", str(tmp_path / "empty"), "-o", str(tmp_path / "x.yaml")]) == 1
    assert "at least 2 class sub-folders" in capsys.readouterr().err
    assert not (tmp_path / "x.yaml").exists()


@pytest.mark.parametrize("target", ["csv:/data/x.csv", "/no/such/folder"])
def test_init_names_what_it_accepts(tmp_path, capsys, target):
    assert main(["init", target, "-o", str(tmp_path / "x.yaml")]) == 1
    err = capsys.readouterr().err
    assert "image_folder:DIR" in err or "existing folder" in err
