"""tfrecord and csv sources: named features / columns, images and text, label errors."""

from __future__ import annotations

import csv
import os

import pytest

from tlpipe.models.plumbing import example_format as fmt
from tlpipe.models.plumbing.errors import ConfigError, DataError

pytestmark = pytest.mark.quick


def test_tfrecord_images_with_name_labels_and_optional_ids(kit):
    examples = [{"picture": kit.png(i), "kind": ["cat", "dog"][i % 2]} for i in range(6)]
    examples[0]["key"] = "first-one"
    kit.tfrecord("records/a.tfrecord", examples[:4])
    kit.tfrecord("records/b.tfrecord", examples[4:])

    metadata, out = kit.run(
        f"tfrecord:{kit.path('records', '*.tfrecord')}", splits={"all": "all"},
        image_feature="picture", label_feature="kind", id_feature="key", classes=["dog", "cat"],
    )

    assert metadata["label_names"] == ["dog", "cat"] and metadata["counts"] == {"all": {"dog": 3, "cat": 3}}
    rows = {row["id"]: row for row in kit.read(out, "all")}
    assert "first-one" in rows and rows["first-one"]["content"] == kit.png(0) and rows["first-one"]["label"] == 1
    assert all(row["id"] == "first-one" or row["id"].startswith("sha256:") for row in rows.values())
    by_content = {row["content"]: row for row in rows.values()}
    for i, example in enumerate(examples):
        assert by_content[kit.png(i)]["name"] == example["kind"]


def test_tfrecord_integer_labels_named_by_label_names_and_unknown_labels(kit):
    kit.tfrecord("records/data.tfrecord", [{"image": kit.png(i), "label": i % 3} for i in range(6)])
    folder = kit.path("records")

    metadata, out = kit.run(f"tfrecord:{folder}", splits={"all": "all"}, label_names=["zero", "one", "two"])
    assert metadata["label_names"] == ["zero", "one", "two"]
    assert {row["content"]: row["name"] for row in kit.read(out, "all")} == {
        kit.png(i): ["zero", "one", "two"][i % 3] for i in range(6)
    }
    with pytest.raises(DataError, match=r"labels outside the label set .*received 2 \(2 examples\); allowed: class names 'zero', 'one'"):
        kit.run(f"tfrecord:{folder}", "bad", splits={"all": "all"}, label_names=["zero", "one"])
    with pytest.raises(ConfigError, match=r"'classes': received 'three'; allowed: class names '0', '1', '2'"):
        kit.run(f"tfrecord:{folder}", "bad", splits={"all": "all"}, classes=["three"])
    with pytest.raises(ConfigError, match=r"image_feature': received 'jpeg'.*the first record has: image, label"):
        kit.run(f"tfrecord:{folder}", "bad", splits={"all": "all"}, image_feature="jpeg", text_feature="words")
    with pytest.raises(DataError, match="no TFRecord files match"):
        kit.run(f"tfrecord:{kit.path('records', '*.tfr')}", "bad", splits={"all": "all"})
    assert not os.path.exists(kit.path("bad"))


def test_tfrecord_ids_are_content_hashes_without_an_id_feature(kit):
    kit.tfrecord("one.tfrecord", [{"text": "hello", "label": 0}, {"text": "bye", "label": 1}])
    _, out = kit.run(f"tfrecord:{kit.path('one.tfrecord')}", splits={"all": "all"})
    (row,) = [row for row in kit.read(out, "all") if row["content"] == b"hello"]
    assert row["content"] == b"hello" and fmt.TEXT_KEY in row["keys"]
    assert len(row["id"]) == len("sha256:") + 32


def _write_csv(path: str, header: list[str], rows: list[list[str]]) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_csv_with_relative_image_paths(kit):
    os.makedirs(kit.path("shop", "img"))
    rows = []
    for i in range(6):
        with open(kit.path("shop", "img", f"{i}.png"), "wb") as handle:
            handle.write(kit.png(10 * i))
        rows.append([f"img/{i}.png", ["shoe", "bag", "hat"][i % 3]])
    csv_path = _write_csv(kit.path("shop", "labels.csv"), ["path", "category"], rows)

    metadata, out = kit.run(
        f"csv:{csv_path}", splits={"train": "all[:50%]", "test": "all[50%:]"},
        image_feature="path", label_feature="category", allow_missing_classes=True,  # 6 rows, 3 classes
    )
    assert metadata["label_names"] == ["bag", "hat", "shoe"] and metadata["modality"] == "image"
    written = kit.read(out, "train") + kit.read(out, "test")
    assert sorted(row["id"] for row in written) == [f"img/{i}.png" for i in range(6)]
    for row in written:
        i = int(row["id"][4])
        assert row["content"] == kit.png(10 * i) and row["name"] == ["shoe", "bag", "hat"][i % 3]

    _write_csv(csv_path, ["path", "category"], rows + [["img/missing.png", "hat"]])
    with pytest.raises(DataError, match=r"1 image path\(s\) in CSV file .* do not exist .*row 7: 'img/missing.png'"):
        kit.run(f"csv:{csv_path}", "bad", splits={"all": "all"}, image_feature="path", label_feature="category")
    with pytest.raises(ConfigError, match=r"label_feature': received 'label'; allowed: a column of .*: path, category"):
        kit.run(f"csv:{csv_path}", "bad", splits={"all": "all"}, image_feature="path")
    with pytest.raises(DataError, match=r"source path '.*nothing.csv' does not exist"):
        kit.run(f"csv:{kit.path('nothing.csv')}", "bad", splits={"all": "all"})


def test_csv_text_with_integer_labels_and_label_names(kit):
    texts = ["great, really", 'said "no"', "multi\nline", "fine", "awful", "ok"]
    csv_path = _write_csv(kit.path("reviews.csv"), ["text", "label", "id"], [
        [text, str(i % 2), f"r{i}" if i else ""] for i, text in enumerate(texts)
    ])

    metadata, out = kit.run(f"csv:{csv_path}", splits={"all": "all"}, label_names=["negative", "positive"], shots={"all": 2})
    assert metadata["modality"] == "text"
    assert metadata["counts"] == {"all": {"negative": 2, "positive": 2}}
    assert metadata["available"] == {"all": {"negative": 3, "positive": 3}}
    by_id = {f"r{i}" if i else "row-1": (text, i % 2) for i, text in enumerate(texts)}
    for row in kit.read(out, "all"):
        assert (row["content"].decode("utf-8"), row["label"]) == by_id[row["id"]]

    again, _ = kit.run(f"csv:{csv_path}", "again", splits={"all": "all"}, label_names=["negative", "positive"])
    assert again["fingerprint"] == metadata["fingerprint"]
    _write_csv(csv_path, ["text", "label"], [["x", "1"], ["y", ""]])
    with pytest.raises(DataError, match="data row 2: empty 'label' cell"):
        kit.run(f"csv:{csv_path}", "bad", splits={"all": "all"})
    _write_csv(csv_path, ["text", "label"], [["x", "1"], ["y", "0"]])
    changed, _ = kit.run(f"csv:{csv_path}", "changed", splits={"all": "all"})
    assert changed["fingerprint"] != metadata["fingerprint"]
    assert changed["label_names"] == ["0", "1"]
