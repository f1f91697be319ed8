"""beam.runner 'dask': ingest and transform on a local Dask cluster of 2 workers write what the in-process runner
writes: the same records in the same shard files, every other file (metadata, statistics, bad records) byte for byte."""

from __future__ import annotations

import os

import pytest

from tlpipe.components.beam import BeamConfig
from tlpipe.components.ingest.config import IngestConfig
from tlpipe.components.ingest.executor import run_ingest
from tlpipe.components.sharded_writes import artifact_contents
from tlpipe.components.transform.config import TransformConfig
from tlpipe.components.transform.executor import run_transform
from tlpipe.models.plumbing import example_format as fmt

LABELS = ["T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
RUNNERS = {"in_process": BeamConfig(), "dask": BeamConfig(runner="dask", num_workers=2)}


@pytest.fixture(scope="module")
def runs(fashion_subset, tmp_path_factory) -> dict[str, dict[str, str]]:
    """Ingest (k shots, an unlabelled split, 2 shards) and transform of the same data on each runner."""
    root = tmp_path_factory.mktemp("dask")
    ingest = IngestConfig(source=f"idx:{fashion_subset['gz']}", label_names=LABELS,
                          splits={"train": "train[:80%]", "eval": "train[80%:]", "test": "test"},
                          classes=["Sandal", "Shirt", "Bag"], shots={"train": 4}, unlabeled=True, num_shards=2, seed=3)
    folders = {}
    for name, beam_config in RUNNERS.items():
        ingested, transformed = str(root / name / "ingest"), str(root / name / "transform")
        run_ingest(ingest, beam_config, ingested)
        run_transform(TransformConfig(), beam_config, ingested, transformed, image_size=(16, 16), channels=3)
        folders[name] = {"ingest": ingested, "transform": transformed}
    return folders


@pytest.mark.parametrize("step", ["ingest", "transform"])
def test_dask_writes_the_in_process_artifact(runs, step):
    on_dask = artifact_contents(runs["dask"][step], fmt.SHARD_SUFFIX)
    in_process = artifact_contents(runs["in_process"][step], fmt.SHARD_SUFFIX)
    assert sorted(on_dask) == sorted(in_process)
    assert [path for path in in_process if on_dask[path] != in_process[path]] == []


def test_the_compared_artifacts_hold_every_split_in_its_shards(runs):
    metadata = fmt.read_metadata(runs["dask"]["transform"], expected="a transform artifact")
    assert metadata["num_examples"]["train"] == 12 and metadata["num_examples"][fmt.UNLABELED_SPLIT] > 0
    assert metadata["transform"]["examples"] == metadata["num_examples"]
    for split in metadata["num_examples"]:
        assert [os.path.basename(path) for path in fmt.split_files(runs["dask"]["transform"], split)] == [
            "part-00000-of-00002.tfrecord", "part-00001-of-00002.tfrecord"]
