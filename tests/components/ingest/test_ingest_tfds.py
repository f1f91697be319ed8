"""tfds: the real tfds.builder over `tfds.testing.mock_data` (no download is possible here)."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from tlpipe.models.plumbing.errors import ConfigError, DataError

pytestmark = pytest.mark.quick

MOCK_EXAMPLES = 20


def _write_metadata(data_dir: str, name: str, splits: dict[str, int]) -> None:
    """The dataset_info.json a prepared dataset has, so that the mocked builder knows its splits."""
    builder = tfds.builder(name, data_dir=data_dir)
    template = tfds.core.ShardedFileTemplate(
        data_dir=builder.data_dir, template="{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}",
        dataset_name=builder.name, filetype_suffix="tfrecord",
    )
    builder.info.set_splits(tfds.core.SplitDict([
        tfds.core.SplitInfo(name=split, shard_lengths=[n], num_bytes=0, filename_template=template)
        for split, n in splits.items()
    ]))
    os.makedirs(builder.data_dir)
    builder.info.write_to_directory(builder.data_dir)


@pytest.fixture
def mocked_tfds(tmp_path):
    """mock_data over a data_dir that holds the metadata of mnist and imdb_reviews."""
    data_dir = str(tmp_path / "tfds")
    _write_metadata(data_dir, "mnist", {"train": MOCK_EXAMPLES, "test": MOCK_EXAMPLES})
    _write_metadata(data_dir, "imdb_reviews", {"train": MOCK_EXAMPLES, "test": MOCK_EXAMPLES})
    with tfds.testing.mock_data(num_examples=MOCK_EXAMPLES, data_dir=data_dir, policy=tfds.testing.MockPolicy.USE_FILES):
        yield data_dir


def test_tfds_image_dataset_with_hash_splits(kit, mocked_tfds):
    names = [f"digit-{i}" for i in range(10)]
    metadata, out = kit.run(
        "tfds:mnist", data_dir=mocked_tfds, label_names=names,
        splits={"train": "train[:50%]", "eval": "train[50%:]", "test": "test"},
        allow_missing_classes=True,  # a few mocked examples of ten classes: some splits lack a digit
        allow_overlapping_splits=True,  # mock_data generates the same images for the train and test splits
    )
    expected = list(tfds.as_numpy(tfds.load("mnist", split="train", data_dir=mocked_tfds)))

    assert metadata["modality"] == "image" and metadata["label_names"] == names
    assert metadata["source_counts"] == {"train": MOCK_EXAMPLES, "test": MOCK_EXAMPLES}
    train, evaluation, test = (kit.read(out, split) for split in ("train", "eval", "test"))
    ids = [row["id"] for row in train + evaluation]
    assert len(ids) == len(set(ids)) == MOCK_EXAMPLES
    assert {row["id"] for row in test} == {f"mnist-test.tfrecord-00000-of-00001__{i}" for i in range(MOCK_EXAMPLES)}
    for row in train + evaluation:
        index = int(row["id"].rsplit("__", 1)[1])
        assert row["label"] == expected[index]["label"] and row["name"] == names[row["label"]]
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(row["content"]))), expected[index]["image"][..., 0])
    assert metadata["fingerprint"].startswith("sha256:")


def test_tfds_text_dataset_uses_class_names(kit, mocked_tfds):
    metadata, out = kit.run("tfds:imdb_reviews", data_dir=mocked_tfds, splits={"test": "test"}, classes=["pos", "neg"])
    assert metadata["modality"] == "text" and metadata["label_names"] == ["pos", "neg"]
    rows = kit.read(out, "test")
    assert len(rows) == metadata["num_examples"]["test"] == MOCK_EXAMPLES
    assert all("text" in row["keys"] and "image/encoded" not in row["keys"] and row["content"].decode() for row in rows)
    assert {row["name"] for row in rows} <= {"pos", "neg"}


def test_tfds_config_errors(kit, mocked_tfds):
    with pytest.raises(ConfigError, match=r"splits.eval': received 'validation'; allowed: a split of tfds:mnist: train, test"):
        kit.run("tfds:mnist", data_dir=mocked_tfds, splits={"eval": "validation"})
    with pytest.raises(ConfigError, match=r"image_feature': received 'picture'.*features: image \(Image\), label \(ClassLabel\)"):
        kit.run("tfds:mnist", data_dir=mocked_tfds, splits={"test": "test"}, image_feature="picture")
    with pytest.raises(ConfigError, match=r"label_names': received \['a', 'b'\]; allowed: 10 names"):
        kit.run("tfds:mnist", data_dir=mocked_tfds, splits={"test": "test"}, label_names=["a", "b"])


def test_unprepared_and_unknown_tfds_datasets(kit):
    data_dir = kit.path("empty_tfds")
    with pytest.raises(DataError, match=rf"'mnist' is not prepared in data_dir '{data_dir}/mnist/.*tlpipe does not download"):
        kit.run("tfds:mnist", data_dir=data_dir, splits={"train": "train"})
    with pytest.raises(ConfigError, match="'source': received 'tfds:no_such_dataset'; allowed: tfds:NAME.*not found"):
        kit.run("tfds:no_such_dataset", data_dir=data_dir, splits={"train": "train"})
    assert not os.path.exists(kit.path("out"))
