"""The pure parts of ingest: split specs and hash splits, label sets, spans, config validation."""

from __future__ import annotations

import os

import pytest

from tlpipe.components.ingest.config import IngestConfig
from tlpipe.components.ingest.labels import LabelSet, select_classes
from tlpipe.components.ingest.spans import resolve_span
from tlpipe.components.ingest.split_spec import SplitSpec, parse_split_spec
from tlpipe.models.plumbing.errors import ConfigError, DataError

pytestmark = pytest.mark.quick


@pytest.mark.parametrize("text, expected", [
    ("train", SplitSpec("train", 0.0, 100.0)),
    ("train[:80%]", SplitSpec("train", 0.0, 80.0)),
    ("train[80%:]", SplitSpec("train", 80.0, 100.0)),
    ("all[12.5%:50%]", SplitSpec("all", 12.5, 50.0)),
])
def test_split_specs_parse(text, expected):
    assert parse_split_spec(text, "splits.x") == expected


@pytest.mark.parametrize("text", ["train[80:]", "train[80%:20%]", "train[:120%]", "train[]", "tr ain", ""])
def test_bad_split_specs_name_key_value_and_format(text):
    with pytest.raises(ConfigError, match=r"config key 'splits.x': received .*; allowed: SOURCE_SPLIT or SOURCE_SPLIT\[a%:b%\]"):
        parse_split_spec(text, "splits.x")


def test_hash_ranges_are_disjoint_cover_the_split_and_have_the_asked_sizes():
    ids = [f"train:{i}" for i in range(2000)]
    specs = [parse_split_spec(s, "s") for s in ("train[:30%]", "train[30%:70%]", "train[70%:]")]
    members = [[i for i in ids if spec.contains(i)] for spec in specs]
    assert sorted(sum(members, [])) == sorted(ids)  # every id in exactly one range
    for got, share in zip(members, (0.3, 0.4, 0.3)):
        assert abs(len(got) / len(ids) - share) < 0.05


def test_discovered_label_sets_order_integers_numerically_and_names_alphabetically():
    numbers = LabelSet.from_values([10, 2, 1, 2])
    assert numbers.names == ("1", "2", "10") and numbers.numbers == (1, 2, 10)
    assert numbers.index(10) == 2 and numbers.index("10") == 2 and numbers.index(3) is None
    digits = LabelSet.from_values(["3", "12"])
    assert digits.names == ("3", "12")
    names = LabelSet.from_values(["dog", "cat", "7"])
    assert names.names == ("7", "cat", "dog") and names.index(7) == names.index("7") == 0 and names.numbers == (None,) * 3


def test_select_classes_orders_by_name_or_integer_label():
    labels = LabelSet.from_names(["T-shirt", "Trouser", "Pullover", "Dress"])
    selected = select_classes(labels, ["Dress", "0"])
    assert selected.names == ("Dress", "T-shirt")
    assert [selected.output_label(i) for i in range(4)] == [1, None, None, 0]
    assert select_classes(labels, []).names == labels.names
    with pytest.raises(ConfigError, match=r"received 'Coat'; allowed: class names 'T-shirt', .* or their integer labels 0..3"):
        select_classes(labels, ["Coat"])
    with pytest.raises(ConfigError, match="received '7'"):
        select_classes(labels, ["7"])


def test_spans_in_a_file_name_and_in_a_folder(tmp_path):
    for span in (3, 11, 7):
        (tmp_path / f"labels-{span}.csv").write_text("x")
        os.makedirs(tmp_path / f"span-{span}" / "sub")
    (tmp_path / "labels-x.csv").write_text("not a span")
    in_file = resolve_span(str(tmp_path / "labels-{SPAN}.csv"), None)
    assert (in_file.span, in_file.available, in_file.location) == (11, (3, 7, 11), str(tmp_path / "labels-11.csv"))
    in_folder = resolve_span(str(tmp_path / "span-{SPAN}" / "sub"), 7)
    assert in_folder.location == str(tmp_path / "span-7" / "sub")
    assert resolve_span("/data/plain", None).span is None
    with pytest.raises(DataError, match="folder '.*/absent' does not exist"):
        resolve_span(str(tmp_path / "absent" / "span-{SPAN}"), None)


@pytest.mark.parametrize("fields, key, allowed", [
    ({"source": "tfds:mnist-{SPAN}"}, "source", "only in paths of image_folder"),
    ({"source": "idx:/data", "span": 2}, "span", "null unless source contains {SPAN}"),
    ({"source": "idx:/data", "classes": ["Bag", "Bag"]}, "classes", "each name once"),
    ({"source": "idx:/data", "shots": {"valid": 3}}, "shots.valid", "one of the configured splits"),
    ({"source": "idx:/data", "splits": {"my split": "train"}}, "splits.my split", "letters, digits"),
    ({"source": "csv:"}, "source", "SCHEME:LOCATION"),
])
def test_config_validation_names_key_and_allowed(fields, key, allowed):
    with pytest.raises(ConfigError, match="allowed: .*" + allowed.replace("{", r"\{").replace("}", r"\}")) as error:
        IngestConfig(**fields).validate()
    assert error.value.key == key


def test_split_specs_know_what_share_of_a_source_split_they_take_together():
    train, rest = parse_split_spec("train[:80%]", "a"), parse_split_spec("train[50%:]", "b")
    assert train.shared_with(rest) == rest.shared_with(train) == 30.0
    assert train.shared_with(parse_split_spec("train[80%:]", "c")) == 0.0  # [a, b) and [b, c) touch, no more
    assert train.shared_with(parse_split_spec("test", "d")) == 0.0  # another source split
