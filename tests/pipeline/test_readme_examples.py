"""Every ```yaml example of the documentation, taken from the documents themselves, does what they say with it.

The examples are read from README.md, then from docs/*.md in name order
(today: the own-data example in README.md, the cluster example in
docs/kubeflow.md). Absolute paths in an example are moved under a temporary
folder (and the data they name is made there, small); nothing else in the
example changes. Its preset resolves offline through a TF-Hub cache holding a
tiny module. The run itself is shrunk by `--set` values (image size, epochs)
that leave every key of the example in place: the config is also loaded
unchanged.
"""

import os
import pathlib
import re

import yaml

from tlpipe.components.ingest.config import SPAN_TOKEN
from tlpipe.models.plumbing.artifacts import read_json
from tlpipe.pipeline.cli import main
from tlpipe.pipeline.config import load_config

ROOT = pathlib.Path(__file__).resolve().parents[2]
# `scheme:/abs/path` or `/abs/path` (not URLs: `http://...`).
_ABSOLUTE = re.compile(r"^((?:[a-z_]+:)?)(/[^/].*)$")
SMALL_RUN = ["--mode", "in_process", "--set", "transform.image_size=[32, 32]", "--set", "trainer.batch_size=32",
             "--set", "trainer.head_epochs=2", "--set", "trainer.fine_tune_epochs=2",
             "--set", "trainer.baseline.epochs=2"]


def documents() -> list[pathlib.Path]:
    """The documents whose ```yaml examples run here, in a fixed order: README.md, then docs/*.md by name."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def yaml_examples() -> list[str]:
    return [example for document in documents()
            for example in re.findall(r"^```yaml\n(.*?)^```", document.read_text(encoding="utf-8"), flags=re.S | re.M)]


def _under(tmp_path: pathlib.Path, value):
    """`value` with its absolute paths moved under `tmp_path`."""
    if isinstance(value, dict):
        return {key: _under(tmp_path, item) for key, item in value.items()}
    if isinstance(value, list):
        return [_under(tmp_path, item) for item in value]
    if isinstance(value, str) and (match := _ABSOLUTE.match(value)):
        return match.group(1) + str(tmp_path) + match.group(2)
    return value


def test_the_readme_has_the_examples_these_tests_run():
    examples = [yaml.safe_load(text) for text in yaml_examples()]
    # A new ```yaml example in README.md or docs/*.md needs its test here (and a moved one, its index below).
    assert len(examples) == 2, f"{len(examples)} yaml examples in README.md and docs/*.md; this file runs 2"
    assert [("kubeflow" in example) for example in examples] == [False, True]


def _example(index: int, tmp_path) -> tuple[dict, pathlib.Path]:
    example = _under(tmp_path, yaml.safe_load(yaml_examples()[index]))
    path = tmp_path / "example.yaml"
    path.write_text(yaml.safe_dump(example))
    return example, path


def test_the_own_data_example_runs_on_a_small_image_folder(tmp_path, monkeypatch, capsys, preset_hub_cache,
                                                           image_folder_writer):
    example, path = _example(0, tmp_path)
    source = example["ingest"]["source"]
    scheme, location = source.split(":", 1)
    assert scheme == "image_folder" and SPAN_TOKEN in location
    # Two spans: the latest is read. 180 images per class leave 100 labels per class for training.
    image_folder_writer(pathlib.Path(location.replace(SPAN_TOKEN, "1")), {"roses": 4, "tulips": 4})
    image_folder_writer(pathlib.Path(location.replace(SPAN_TOKEN, "2")), {"roses": 180, "tulips": 180}, seed=1)
    monkeypatch.setenv("TFHUB_CACHE_DIR", preset_hub_cache(example["trainer"]["preset"]))

    config = load_config(str(path))  # the example as written: nothing of the embedded Fashion-MNIST is left
    assert config.ingest.label_names == [] and config.ingest.classes == []
    assert config.ingest.splits == example["ingest"]["splits"] and config.ingest.shots == {"train": 100}

    assert main(["run", "--config", str(path), *SMALL_RUN]) == 0
    out = capsys.readouterr().out
    assert "test accuracy on" in out and "baseline" in out
    for strategy in example["trainer"]["strategies"]:
        assert strategy in out
    record_dir = out.split("run record: ")[1].split()[0]
    record = read_json(os.path.join(record_dir, "run.json"))
    assert record["status"] == "succeeded"
    metadata = read_json(os.path.join(record["steps"]["examples"]["artifact"], "metadata.json"))
    assert metadata["span"] == 2 and metadata["label_names"] == ["roses", "tulips"]
    assert {name: sum(counts.values()) for name, counts in metadata["counts"].items()}["train"] == 200
    if record["outcome"]["pushed_version"] is not None:
        assert os.path.isdir(os.path.join(example["pusher"]["serving_dir"], str(record["outcome"]["pushed_version"])))


def test_the_cluster_example_compiles(tmp_path, capsys):
    example, path = _example(1, tmp_path)
    package = tmp_path / "pipeline.yaml"
    assert main(["compile", "--config", str(path), "-o", str(package)]) == 0, capsys.readouterr().err
    compiled = yaml.safe_load(package.read_text())
    assert example["kubeflow"]["image"] in package.read_text()
    assert compiled["pipelineInfo"]["name"]
