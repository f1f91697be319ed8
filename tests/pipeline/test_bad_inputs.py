"""The bad-input catalogue: every kind of bad config key, value or file gives exit status 1, one line naming
the key or file and what is allowed, and writes nothing.

`tlpipe.pipeline.cli.main` runs in this process (fast); one case runs the real command in a child process to
see the whole terminal output (TensorFlow's and Beam's logging included): no traceback.
"""

from __future__ import annotations

import gzip
import os
import struct

import numpy as np
import pytest
import yaml

from tlpipe.pipeline.cli import main

from .conftest import CLASSES, tiny_settings


@pytest.fixture
def base(tiny_data, tiny_module, tmp_path):
    """A valid tiny config file (in-process mode) whose root does not exist yet; returns (config path, root)."""
    settings = tiny_settings(tiny_data, tiny_module, tmp_path / "root")
    settings["pipeline"]["mode"] = "in_process"
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(settings))
    return str(path), tmp_path / "root"


def _fails(capsys, argv: list[str], *expected: str) -> str:
    status = main(["-q", *argv])
    err = capsys.readouterr().err.strip()
    assert status == 1, err
    assert err.startswith("tlpipe: error: ") and "\n" not in err and "Traceback" not in err, err
    for text in expected:
        assert text in err, f"{text!r} not in {err!r}"
    return err


# (id, --set overrides, texts the one-line message must contain: the key and what is allowed)
CONFIG_CASES = [
    ("epochs zero", ["trainer.head_epochs=0"], "trainer.head_epochs", "received 0"),
    ("negative batch", ["trainer.batch_size=-1"], "trainer.batch_size", "received -1"),
    ("batch not a number", ["trainer.batch_size=abc"], "trainer.batch_size", "'abc'"),
    ("unknown strategy", ["trainer.strategies=[fine_tune_everything]"], "trainer.strategies", "feature_extraction"),
    ("unknown preset", ["trainer.handle=", "trainer.preset=mobilenet_v9"], "trainer.preset", "mobilenet_v9"),
    ("handle and preset", ["trainer.preset=mobilenet_v2_100_224"], "trainer.preset", "null when trainer.handle"),
    ("misspelt key", ["trainer.head_epoch=3"], "trainer.head_epoch", "head_epochs"),
    ("unknown section", ["trainr.head_epochs=3"], "trainr", "trainer"),
    ("accuracy above 1", ["evaluator.min_accuracy=1.5"], "evaluator.min_accuracy", "[0, 1]"),
    ("unknown gate", ["evaluator.gate=maybe"], "evaluator.gate", "interval"),
    ("confidence 1", ["evaluator.confidence_level=1"], "evaluator.confidence_level", "(0, 1)"),
    ("negative keep_versions", ["pusher.keep_versions=-1"], "pusher.keep_versions", "0 (keep all)"),
    ("empty serving_dir", ["pusher.serving_dir="], "pusher.serving_dir", "a folder path"),
    ("bad pipeline name", ["pipeline.name=my pipeline!"], "pipeline.name", "letters, digits"),
    ("empty root", ["pipeline.root="], "pipeline.root", "would write into the current folder"),
    ("unknown mode", ["pipeline.mode=cloud"], "pipeline.mode", "in_process"),
    ("unknown scheme", ["ingest.source=ftp:/data"], "ingest.source", "SCHEME:LOCATION"),
    ("bad split spec", ["ingest.splits.train=train[:80"], "ingest.splits.train", "train[:80"),
    ("negative shots", ["ingest.shots.train=-3"], "ingest.shots", "-3"),
    ("beam option", ["beam.options=[runner=Flink]"], "beam.options", "--name=value"),
    ("set without =", ["trainer.batch_size"], "--set", "KEY=VALUE"),
]


@pytest.mark.parametrize("overrides,expected", [(case[1], case[2:]) for case in CONFIG_CASES],
                         ids=[case[0] for case in CONFIG_CASES])
def test_bad_config_values(capsys, base, overrides, expected):
    config, root = base
    argv = ["run", "--config", config]
    for override in overrides:
        argv += ["--set", override]
    _fails(capsys, argv, *expected)
    assert not root.exists()


def test_bad_config_files(capsys, tmp_path):
    missing = str(tmp_path / "missing.yaml")
    _fails(capsys, ["run", "--config", missing], "--config", missing, "existing YAML file")
    listed = tmp_path / "list.yaml"
    listed.write_text("- trainer\n- ingest\n")
    _fails(capsys, ["run", "--config", str(listed)], "--config", "a YAML mapping of sections")
    broken = tmp_path / "broken.yaml"
    broken.write_text("trainer: {head_epochs: 3\n")
    _fails(capsys, ["run", "--config", str(broken)], "--config", "valid YAML")
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n")
    _fails(capsys, ["run", "--config", str(empty)], "--config", "the file is empty", "leave out --config")
    assert sorted(os.listdir(tmp_path)) == ["broken.yaml", "empty.yaml", "list.yaml"]


# Preflight: before any work, folders that cannot be written and data that is not there.
def test_folders_that_cannot_be_written_are_refused_before_any_work(capsys, base, tmp_path):
    config, root = base
    blocker = tmp_path / "a_file"
    blocker.write_text("in the way")
    for key in ("pipeline.root", "pusher.serving_dir"):
        _fails(capsys, ["run", "--config", config, "--set", f"{key}={blocker}/sub"],
               key, f"{blocker}/sub", "a folder this user can write", f"{str(blocker)!r} on its path is a file")
    _fails(capsys, ["run", "--config", config, "--set", "trainer.handle=", "--set", "trainer.preset=null",
                    "--set", f"source.module_dir={blocker}"],
           "source.module_dir", "a folder this user can write; it is a file")
    assert not root.exists() and blocker.read_text() == "in the way"
    # a file where the runner keeps its records, work, kfp or in-process runs under the root
    for name in ("runs", "work", "kfp", "in_process"):
        other_root = tmp_path / f"root-with-{name}"
        other_root.mkdir()
        (other_root / name).write_text("in the way")
        _fails(capsys, ["run", "--config", config, "--set", f"pipeline.root={other_root}"],
               "pipeline.root", f"{other_root}/{name}", "a folder this user can write; it is a file")
        assert sorted(os.listdir(other_root)) == [name]


def test_a_data_source_that_is_not_there_is_refused_before_any_work(capsys, base, tmp_path):
    config, root = base
    cases = [
        (f"idx:{tmp_path}/nowhere", "does not exist"),
        (f"csv:{tmp_path}", "is not a file"),
        (f"tfrecord:{tmp_path}/*.tfrecord", "matches no file"),
        (f"image_folder:{tmp_path}/span-{{SPAN}}", "no span found"),
    ]
    all_splits = "ingest.splits={train: 'all[:60%]', eval: 'all[60%:80%]', test: 'all[80%:]'}"
    for source, reason in cases:
        splits = [] if source.startswith("idx") else ["--set", all_splits]
        _fails(capsys, ["run", "--config", config, "--set", f"ingest.source={source}", *splits], "ingest.source",
               reason)
    _fails(capsys, ["run", "--config", config, "--set", "ingest.source=tfds:mnist", "--set", "ingest.label_names=[]",
                    "--set", f"ingest.data_dir={tmp_path}/no_tfds"], "ingest.data_dir", "prepared TFDS dataset")
    assert not root.exists()


def test_a_handle_that_is_not_a_feature_vector_module_is_refused_before_any_work(capsys, base, tmp_path):
    config, root = base
    no_variables = tmp_path / "empty_module"
    no_variables.mkdir()
    serving_export = tmp_path / "serving_export"
    serving_export.mkdir()
    (serving_export / "saved_model.pb").write_bytes(b"")
    (serving_export / "tlpipe.json").write_text("{}")
    cases = [
        (tmp_path / "nowhere", "does not exist"),
        (no_variables, "has no saved_model.pb"),
        (serving_export, "is a classifier tlpipe exported for serving (tlpipe.json), not a feature vector"),
    ]
    for handle, reason in cases:
        _fails(capsys, ["run", "--config", config, "--set", f"trainer.handle={handle}"], "trainer.handle",
               str(handle), reason)
    assert not root.exists()


# Bad files, where ingest reads them: `tlpipe ingest --output DIR` leaves no DIR.
def _ingest_fails(capsys, tmp_path, source: str, *expected: str, **ingest) -> None:
    settings = {"ingest": {"source": source, "splits": {"train": "train" if source.startswith("idx") else "all"},
                           "label_names": [] if source.startswith("image_folder") else CLASSES, "classes": [],
                           "shots": {}, **ingest}}
    path = tmp_path / "ingest.yaml"
    path.write_text(yaml.safe_dump(settings))
    output = tmp_path / "out"
    _fails(capsys, ["ingest", "--config", str(path), "--output", str(output)], *expected)
    assert not output.exists() and not [n for n in os.listdir(tmp_path) if n.startswith(".out")]


def _idx(folder, count: int = 30, compress: bool = True) -> str:
    folder.mkdir()
    images = struct.pack(">IIII", 0x0803, count, 8, 8) + np.zeros((count, 8, 8), np.uint8).tobytes()
    labels = struct.pack(">II", 0x0801, count) + (np.arange(count) % 3).astype(np.uint8).tobytes()
    for kind, data in (("images-idx3", images), ("labels-idx1", labels)):
        name = folder / f"train-{kind}-ubyte{'.gz' if compress else ''}"
        name.write_bytes(gzip.compress(data) if compress else data)
    return str(folder)


def test_damaged_idx_files(capsys, tmp_path):
    gz = _idx(tmp_path / "gz")
    images = os.path.join(gz, "train-images-idx3-ubyte.gz")
    os.truncate(images, os.path.getsize(images) - 20)
    _ingest_fails(capsys, tmp_path, f"idx:{gz}", images, "corrupt or truncated", "records from 0", "gunzip -t")
    plain = _idx(tmp_path / "plain", compress=False)
    labels = os.path.join(plain, "train-labels-idx1-ubyte")
    os.truncate(labels, 8 + 12)
    _ingest_fails(capsys, tmp_path, f"idx:{plain}", labels, "is truncated", "record 12 is the first incomplete")
    bad_magic = _idx(tmp_path / "magic", compress=False)
    with open(os.path.join(bad_magic, "train-images-idx3-ubyte"), "r+b") as handle:
        handle.write(b"\x00\x00\x09\x99")
    _ingest_fails(capsys, tmp_path, f"idx:{bad_magic}", "train-images-idx3-ubyte", "magic number 0x00000803")


def test_damaged_tfrecord_files(capsys, tmp_path):
    import tensorflow as tf

    folder = tmp_path / "records"
    folder.mkdir()
    path = str(folder / "part.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for i in range(3):
            feature = {"image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"x" * 20])),
                       "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[i]))}
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    data = bytearray(open(path, "rb").read())
    data[-10] ^= 0x01  # inside the last record's data
    open(path, "wb").write(bytes(data))
    _ingest_fails(capsys, tmp_path, f"tfrecord:{folder}", path, "damaged at record 2", "bad checksum",
                  "re-copy or regenerate")


def test_bad_csv_files(capsys, tmp_path):
    rows = tmp_path / "rows.csv"
    rows.write_text("text,label\nhello,dark\nworld,grey,extra\n")
    _ingest_fails(capsys, tmp_path, f"csv:{rows}", str(rows), "line 3", "3 cells, but the header has 2 columns")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("text,label\ncaf\u00e9,dark\n".encode("latin-1"))
    _ingest_fails(capsys, tmp_path, f"csv:{latin}", str(latin), "line 2: not UTF-8")
    column = tmp_path / "column.csv"
    column.write_text("text,class\nhello,dark\n")
    _ingest_fails(capsys, tmp_path, f"csv:{column}", "'label_feature'", "a column of", "text, class")


def test_unreadable_image_files_and_unknown_classes(capsys, tmp_path):
    folder = tmp_path / "images"
    (folder / "dark").mkdir(parents=True)
    (folder / "light").mkdir()
    from PIL import Image

    for name in ("dark", "light"):
        Image.new("L", (4, 4)).save(folder / name / "a.png")
    os.symlink(str(folder / "missing.png"), folder / "light" / "b.png")
    _ingest_fails(capsys, tmp_path, f"image_folder:{folder}", "cannot be read by this user", "b.png", "chmod")
    os.remove(folder / "light" / "b.png")
    _ingest_fails(capsys, tmp_path, f"image_folder:{folder}", "'classes'", "'zebra'", "dark", classes=["zebra"])


def test_a_tfds_data_dir_without_the_prepared_dataset(capsys, tmp_path):
    data_dir = tmp_path / "tfds"
    data_dir.mkdir()
    _ingest_fails(capsys, tmp_path, "tfds:mnist", "'mnist' is not prepared in data_dir", "tfds build mnist",
                  data_dir=str(data_dir), label_names=[])


def test_the_terminal_shows_one_line_and_no_traceback_for_a_damaged_file(tmp_path, tlpipe_process):
    gz = _idx(tmp_path / "gz")
    images = os.path.join(gz, "train-images-idx3-ubyte.gz")
    os.truncate(images, os.path.getsize(images) - 20)
    path = tmp_path / "ingest.yaml"
    path.write_text(yaml.safe_dump({"ingest": {"source": f"idx:{gz}", "splits": {"train": "train"},
                                               "label_names": CLASSES, "classes": [], "shots": {}}}))
    result = tlpipe_process("-q", "ingest", "--config", str(path), "--output", str(tmp_path / "out"))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "[while running" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("tlpipe: error:")]
    assert len(errors) == 1 and images in errors[0] and "corrupt or truncated" in errors[0]
    assert not (tmp_path / "out").exists()


def test_the_same_image_in_train_and_test_under_another_name(capsys, tmp_path):
    from PIL import Image

    from tlpipe.components.ingest.split_spec import parse_split_spec

    splits = {"train": "all[:50%]", "test": "all[50%:]"}
    folder = tmp_path / "images"
    for index, name in enumerate(("dark", "light")):
        (folder / name).mkdir(parents=True)
        for i in range(8):
            Image.new("L", (4, 4), color=30 * index + i).save(folder / name / f"{i}.png")
    train = parse_split_spec(splits["train"], "train")
    original = next(f"dark/{i}.png" for i in range(8) if train.contains(f"dark/{i}.png"))
    copy = next(f"dark/copy-{i}.png" for i in range(100) if not train.contains(f"dark/copy-{i}.png"))
    (folder / copy).write_bytes((folder / original).read_bytes())
    _ingest_fails(capsys, tmp_path, f"image_folder:{folder}", "leakage", f"1 example(s) of split 'test' (e.g. "
                  f"'{copy}' = train '{original}')", "ingest.allow_overlapping_splits: true", splits=splits)
