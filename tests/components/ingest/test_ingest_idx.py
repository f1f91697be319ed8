"""idx: a subset of the real Fashion-MNIST IDX files, relabelling, hash splits, k-shot sampling."""

from __future__ import annotations

import io
import os
import shutil
import struct
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from tlpipe.pipeline.config import FASHION_MNIST_LABELS
from tlpipe.models.plumbing.errors import ConfigError, DataError

pytestmark = pytest.mark.quick

SPLITS = {"train": "train[:80%]", "eval": "train[80%:]", "test": "test"}
CLASSES = ["Sandal", "Bag", "0"]  # by name, and T-shirt by its source integer label


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)))


def test_idx_relabels_splits_and_stores_the_real_pixels(kit, fashion_subset):
    metadata, out = kit.run(f"idx:{fashion_subset['gz']}", splits=SPLITS, label_names=FASHION_MNIST_LABELS, classes=CLASSES)

    assert metadata["label_names"] == ["Sandal", "Bag", "T-shirt"]
    assert metadata["num_classes"] == 3 and metadata["modality"] == "image"
    assert metadata["source_counts"] == {"train": 200, "test": 50}
    images, labels = fashion_subset["train"]
    selected = {5: 0, 8: 1, 0: 2}  # source label -> new label
    train, evaluation = kit.read(out, "train"), kit.read(out, "eval")
    train_ids, eval_ids = {r["id"] for r in train}, {r["id"] for r in evaluation}
    assert not train_ids & eval_ids
    assert train_ids | eval_ids == {f"train:{i}" for i in range(200) if labels[i] in selected}
    assert 0.6 < len(train_ids) / (len(train_ids) + len(eval_ids)) < 0.95
    for row in train + evaluation:
        index = int(row["id"].split(":")[1])
        assert row["label"] == selected[labels[index]]
        assert row["name"] == metadata["label_names"][row["label"]]
        np.testing.assert_array_equal(_pixels(row["content"]), images[index])
    for split, rows in (("train", train), ("eval", evaluation)):
        per_class = Counter(row["name"] for row in rows)
        assert metadata["counts"][split] == {name: per_class[name] for name in metadata["label_names"]}
        assert metadata["num_examples"][split] == len(rows)
    test_labels = fashion_subset["test"][1]
    assert metadata["counts"]["test"] == {
        name: int(np.sum(test_labels == source)) for source, name in zip((5, 8, 0), metadata["label_names"])
    }


def test_gzipped_and_plain_idx_give_the_same_examples(kit, fashion_subset):
    gz, gz_out = kit.run(f"idx:{fashion_subset['gz']}", "gz", splits={"all": "train"}, classes=["7", "2"])
    plain, plain_out = kit.run(f"idx:{fashion_subset['plain']}", "plain", splits={"all": "train"}, classes=["7", "2"])

    assert gz["label_names"] == ["7", "2"]  # no label_names: integer labels are named by their value
    assert gz["source_label_names"] == [str(i) for i in range(10)]
    assert gz["counts"] == plain["counts"]
    assert [(r["id"], r["label"], r["content"]) for r in kit.read(gz_out, "all")] == [
        (r["id"], r["label"], r["content"]) for r in kit.read(plain_out, "all")
    ]
    assert gz["fingerprint"] != plain["fingerprint"]


def test_k_shot_is_exact_per_class_and_reproducible_by_seed(kit, fashion_subset):
    source = f"idx:{fashion_subset['gz']}"
    fields = dict(splits=SPLITS, label_names=FASHION_MNIST_LABELS, classes=CLASSES, shots={"train": 4, "eval": 2})
    first, first_out = kit.run(source, "a", seed=1, **fields)
    again, again_out = kit.run(source, "b", seed=1, **fields)
    other, other_out = kit.run(source, "c", seed=2, **fields)

    assert first["counts"]["train"] == {name: 4 for name in first["label_names"]}
    assert first["counts"]["eval"] == {name: 2 for name in first["label_names"]}
    assert first["counts"]["test"] == first["available"]["test"]  # no shots: the whole split
    assert first["available"]["train"]["Sandal"] > 4
    ids = {split: [r["id"] for r in kit.read(first_out, split)] for split in ("train", "eval")}
    assert ids == {split: [r["id"] for r in kit.read(again_out, split)] for split in ("train", "eval")}
    assert set(ids["train"]) != {r["id"] for r in kit.read(other_out, "train")}
    # the sample is drawn from the split's own examples
    full, full_out = kit.run(source, "full", splits=SPLITS, label_names=FASHION_MNIST_LABELS, classes=CLASSES)
    assert set(ids["train"]) <= {r["id"] for r in kit.read(full_out, "train")}


def test_k_larger_than_a_class_names_split_class_and_counts(kit, fashion_subset):
    with pytest.raises(DataError, match=r"split 'eval' class 'Bag': \d+ available, k=50"):
        kit.run(f"idx:{fashion_subset['gz']}", splits=SPLITS, label_names=FASHION_MNIST_LABELS,
                classes=CLASSES, shots={"eval": 50})
    assert not os.path.exists(kit.path("out"))


def test_labels_outside_label_names_are_an_error(kit, fashion_subset):
    with pytest.raises(DataError, match=r"labels outside the label set.*received 5 \(\d+ examples\).*'T-shirt'"):
        kit.run(f"idx:{fashion_subset['gz']}", splits={"train": "train"}, label_names=FASHION_MNIST_LABELS[:5])
    assert not os.path.exists(kit.path("out"))


def test_idx_folder_errors(kit, fashion_subset):
    with pytest.raises(DataError, match="source path .*/nowhere' does not exist"):
        kit.run(f"idx:{kit.path('nowhere')}", splits={"train": "train"})
    os.makedirs(kit.path("empty"))
    with pytest.raises(DataError, match="empty dataset: no IDX files"):
        kit.run(f"idx:{kit.path('empty')}", splits={"train": "train"})
    half = kit.path("half")
    os.makedirs(half)
    shutil.copy(os.path.join(fashion_subset["gz"], "train-images-idx3-ubyte.gz"), half)
    with pytest.raises(DataError, match="no train-labels-idx1-ubyte"):
        kit.run(f"idx:{half}", splits={"train": "train"})


def test_a_split_the_source_does_not_have_is_a_config_error(kit, fashion_subset):
    with pytest.raises(ConfigError, match=r"splits.eval': received 'validation\[:10%\]'; allowed: a split of idx:.*: train, test"):
        kit.run(f"idx:{fashion_subset['gz']}", splits={"train": "train", "eval": "validation[:10%]"})


def test_idx_files_without_records_are_an_empty_dataset(kit):
    folder = kit.path("zero")
    os.makedirs(folder)
    with open(os.path.join(folder, "train-images-idx3-ubyte"), "wb") as handle:
        handle.write(struct.pack(">IIII", 0x0803, 0, 28, 28))
    with open(os.path.join(folder, "train-labels-idx1-ubyte"), "wb") as handle:
        handle.write(struct.pack(">II", 0x0801, 0))
    with pytest.raises(DataError, match=r"empty dataset: source 'idx:.*/zero' has no examples in source split\(s\) train"):
        kit.run(f"idx:{folder}", splits={"train": "train"})
    assert not os.path.exists(kit.path("out"))


def test_a_truncated_idx_file_fails_the_run_without_output(kit, fashion_subset):
    folder = kit.path("truncated")
    shutil.copytree(fashion_subset["plain"], folder)
    images = os.path.join(folder, "train-images-idx3-ubyte")
    os.truncate(images, os.path.getsize(images) - 100)
    with pytest.raises(DataError, match=r"IDX file '.*/truncated/train-images-idx3-ubyte' is truncated"):
        kit.run(f"idx:{folder}", splits={"train": "train"})
    assert not os.path.exists(kit.path("out"))
