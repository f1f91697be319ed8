"""image_folder: classes from sub-folders, original bytes, corrupt files, spans, atomic output."""

from __future__ import annotations

import csv
import os
import re
import shutil

import pytest

from tlpipe.components.ingest.config import IngestConfig
from tlpipe.components.ingest.coverage import COVERAGE_FILE
from tlpipe.components.ingest.split_spec import parse_split_spec
from tlpipe.models.plumbing.progress import NORMAL, VERBOSE, set_quiet, set_verbosity
from tlpipe.models.plumbing import example_format as fmt
from tlpipe.models.plumbing.errors import ConfigError, DataError

pytestmark = pytest.mark.quick


def test_image_folder_keeps_original_bytes_and_carries_corrupt_files(kit):
    folder = kit.image_folder("pets", {"dog": 4, "cat": 3, "bird": 2})
    with open(os.path.join(folder, "cat", "broken.png"), "wb") as handle:
        handle.write(b"not a png at all")
    with open(os.path.join(folder, "cat", "notes.txt"), "w") as handle:
        handle.write("not an image file: ignored")

    metadata, out = kit.run(f"image_folder:{folder}", splits={"all": "all"}, num_shards=2)

    assert metadata["label_names"] == ["bird", "cat", "dog"]
    assert metadata["counts"] == {"all": {"bird": 2, "cat": 4, "dog": 4}}
    assert len(fmt.split_files(out, "all")) == 2
    assert sorted(os.listdir(out)) == ["all", COVERAGE_FILE, fmt.METADATA_FILE]
    rows = {row["id"]: row for row in kit.read(out, "all")}
    assert len(rows) == 10 and "cat/notes.txt" not in rows
    for example_id, row in rows.items():
        with open(os.path.join(folder, example_id), "rb") as handle:
            assert row["content"] == handle.read()
        assert row["name"] == example_id.split("/")[0]
        assert row["label"] == metadata["label_names"].index(row["name"])
        assert row["keys"] == sorted([fmt.IMAGE_ENCODED_KEY, fmt.LABEL_KEY, fmt.LABEL_NAME_KEY, fmt.ID_KEY])
    assert rows["cat/broken.png"]["content"] == b"not a png at all"  # transform sets it aside
    assert metadata["span"] is None and metadata["fingerprint"].startswith("sha256:")


def test_class_folder_without_images_is_an_error_unless_not_selected(kit):
    folder = kit.image_folder("pets", {"dog": 2, "cat": 2})
    os.makedirs(os.path.join(folder, "fish"))
    with open(os.path.join(folder, "fish", "readme.txt"), "w") as handle:
        handle.write("no fish yet")
    with pytest.raises(DataError, match=r"class folder '.*/fish' has no image files \(1 other files\); allowed extensions: .png"):
        kit.run(f"image_folder:{folder}", splits={"all": "all"})
    assert not os.path.exists(kit.path("out"))

    metadata, out = kit.run(f"image_folder:{folder}", splits={"all": "all"}, classes=["dog", "cat"])
    assert metadata["label_names"] == ["dog", "cat"]
    assert {row["name"]: row["label"] for row in kit.read(out, "all")} == {"dog": 0, "cat": 1}


def test_unknown_class_and_label_names_are_config_errors(kit):
    folder = kit.image_folder("pets", {"dog": 2, "cat": 2})
    with pytest.raises(ConfigError, match=r"'classes': received 'cow'; allowed: class names 'cat', 'dog'"):
        kit.run(f"image_folder:{folder}", splits={"all": "all"}, classes=["dog", "cow"])
    with pytest.raises(ConfigError, match=r"'classes': received '1'; allowed: each class once \('1' and 'dog'"):
        kit.run(f"image_folder:{folder}", splits={"all": "all"}, classes=["dog", "1"])
    with pytest.raises(ConfigError, match="label_names.*sub-folder names"):
        kit.run(f"image_folder:{folder}", splits={"all": "all"}, label_names=["a", "b"])


def test_missing_folder_and_empty_folder_are_data_errors(kit):
    with pytest.raises(DataError, match=r"source path '.*/absent' does not exist; image_folder sources need an existing folder"):
        kit.run(f"image_folder:{kit.path('absent')}", splits={"all": "all"})
    os.makedirs(kit.path("bare"))
    with pytest.raises(DataError, match="empty dataset: image folder .* has no class sub-folders"):
        kit.run(f"image_folder:{kit.path('bare')}", splits={"all": "all"})


def test_output_split_without_examples_is_an_error(kit):
    folder = kit.image_folder("pets", {"dog": 1, "cat": 1})
    with pytest.raises(DataError, match=r"output split '(train|eval)' \('all\[.*%\]'\) has no examples"):
        kit.run(f"image_folder:{folder}", splits={"train": "all[:1%]", "eval": "all[1%:2%]"})


def test_latest_span_is_used_by_default_and_a_span_can_be_chosen(kit):
    for span, per_class in ((1, {"a": 1, "b": 1}), (2, {"a": 2, "b": 2}), (10, {"a": 3, "b": 3})):
        kit.image_folder(os.path.join("data", f"span-{span}"), per_class)
    source = f"image_folder:{kit.path('data', 'span-{SPAN}')}"

    latest, _ = kit.run(source, "latest", splits={"all": "all"})
    assert latest["span"] == 10 and latest["available_spans"] == [1, 2, 10]  # numeric, not alphabetical
    assert latest["counts"]["all"] == {"a": 3, "b": 3}
    assert latest["resolved_source"] == f"image_folder:{kit.path('data', 'span-10')}"
    assert latest["source"] == source

    chosen, _ = kit.run(source, "chosen", splits={"all": "all"}, span=2)
    assert chosen["span"] == 2 and chosen["counts"]["all"] == {"a": 2, "b": 2}
    assert chosen["fingerprint"] != latest["fingerprint"]

    with pytest.raises(DataError, match="span 5 does not exist .* available spans: 1, 2, 10"):
        kit.run(source, "missing", splits={"all": "all"}, span=5)
    with pytest.raises(DataError, match="no span found .*nothing matches"):
        kit.run(f"image_folder:{kit.path('data', 'v{SPAN}')}", "none", splits={"all": "all"})


def test_a_failing_run_leaves_an_earlier_artifact_untouched_and_no_temporary_folder(kit):
    folder = kit.image_folder("pets", {"dog": 3, "cat": 3})
    first, out = kit.run(f"image_folder:{folder}", splits={"all": "all"})
    before = kit.read(out, "all")
    with pytest.raises(DataError, match="k=4"):
        kit.run(f"image_folder:{folder}", splits={"all": "all"}, shots={"all": 4})
    assert kit.read(out, "all") == before
    assert sorted(os.listdir(kit.root)) == ["out", "pets"]


def test_unknown_scheme_and_wrong_split_source_fail_validation():
    with pytest.raises(ConfigError, match="'source': received 'ftp:/data'; allowed: SCHEME:LOCATION"):
        IngestConfig(source="ftp:/data").validate()
    with pytest.raises(ConfigError, match=r"'splits.train': received 'train\[:80%\]'; allowed: source split 'all'"):
        IngestConfig(source="image_folder:/data", splits={"train": "train[:80%]"}).validate()


def test_progress_lines_name_stage_count_and_rate_and_quiet_silences_them(kit, capsys):
    folder = kit.image_folder("pets", {"dog": 2, "cat": 3})
    set_verbosity(VERBOSE)  # detail lines: `tlpipe -v`
    try:
        kit.run(f"image_folder:{folder}", "loud", splits={"all": "all"})
    finally:
        set_verbosity(NORMAL)
    err = capsys.readouterr().err
    assert "[tlpipe] ingest: read: started" in err
    assert re.search(r"\[tlpipe\] ingest: done, 5 examples in [\d.]+s \([\d.]+/s\); wrote all: 5 examples of 2 classes", err)
    set_quiet(True)
    try:
        kit.run(f"image_folder:{folder}", "quiet", splits={"all": "all"})
    finally:
        set_quiet(False)
    assert "[tlpipe]" not in capsys.readouterr().err


def test_one_class_is_refused_naming_the_source(kit):
    folder = kit.image_folder("only-roses", {"roses": 3})
    with pytest.raises(DataError, match=r"only-roses' has 1 class \('roses'\): a classifier needs at least 2"):
        kit.run(f"image_folder:{folder}", splits={"all": "all"})
    assert not os.path.exists(kit.path("out"))


def test_a_class_missing_from_the_training_or_test_split_is_refused_unless_allowed(kit):
    folder = kit.image_folder("flowers", {"roses": 6, "tulips": 6, "daisy": 1})  # one daisy: one split only
    splits = {"train": "all[:50%]", "test": "all[50%:]"}
    with pytest.raises(DataError, match=r"class 'daisy' has no example in split '(train|test)' \('all\[.*\]'\).*"
                                        r"ingest.allow_missing_classes: true"):
        kit.run(f"image_folder:{folder}", splits=splits)
    assert not os.path.exists(kit.path("out"))
    metadata, _ = kit.run(f"image_folder:{folder}", splits=splits, allow_missing_classes=True)
    assert metadata["counts"]["train"]["daisy"] + metadata["counts"]["test"]["daisy"] == 1


def _copy_into_other_split(folder: str, original: str, splits: dict[str, str]) -> str:
    """Copy `original` (a path relative to `folder`) under a new name that hashes into another split; returns it."""
    specs = {name: parse_split_spec(spec, name) for name, spec in splits.items()}
    home = next(name for name, spec in specs.items() if spec.contains(original))
    for index in range(100):
        copy = f"{os.path.dirname(original)}/copy-{index}.png"
        if not specs[home].contains(copy):
            shutil.copyfile(os.path.join(folder, original), os.path.join(folder, copy))
            return copy
    raise AssertionError("no name hashes into another split")


def test_the_same_content_in_train_and_test_under_other_ids_is_refused_unless_allowed(kit):
    folder = kit.image_folder("pets", {"dog": 6, "cat": 6})
    splits = {"train": "all[:50%]", "test": "all[50%:]"}
    train_image = next(f"dog/{name}" for name in sorted(os.listdir(os.path.join(folder, "dog")))
                       if parse_split_spec(splits["train"], "train").contains(f"dog/{name}"))
    copy = _copy_into_other_split(folder, train_image, splits)
    with pytest.raises(DataError, match=rf"leakage: .* 1 example\(s\) of split 'test' \(e.g. '{copy}' = train "
                                        rf"'{train_image}'\).*ingest.allow_overlapping_splits: true"):
        kit.run(f"image_folder:{folder}", splits=splits)
    assert not os.path.exists(kit.path("out"))
    metadata, _ = kit.run(f"image_folder:{folder}", splits=splits, allow_overlapping_splits=True)
    assert metadata["shared_content"] == {"test": 1}


def test_ingest_writes_the_coverage_table_of_examples_per_class_and_split(kit):
    folder = kit.image_folder("pets", {"dog": 6, "cat": 4})
    metadata, out = kit.run(f"image_folder:{folder}", splits={"train": "all[:50%]", "test": "all[50%:]"})
    with open(os.path.join(out, COVERAGE_FILE), encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    counts = metadata["counts"]
    assert rows[0] == ["class", "train", "test", "total"]
    assert rows[1:] == [
        ["cat", str(counts["train"]["cat"]), str(counts["test"]["cat"]), "4"],
        ["dog", str(counts["train"]["dog"]), str(counts["test"]["dog"]), "6"],
        ["total", str(sum(counts["train"].values())), str(sum(counts["test"].values())), "10"],
    ]
