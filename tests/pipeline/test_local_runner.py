"""The whole pipeline on a tiny configuration: kfp.local with caching, in-process mode, blessing and push."""

import glob
import os

import numpy as np
import pytest

from tlpipe.models.plumbing.artifacts import read_json
from tlpipe.models.plumbing import example_format as fmt
from tlpipe.pipeline.cli import main
from tlpipe.pipeline.local_runner import Paths, publish_source_module, run_local

STEPS = {"examples", "transformed", "feature_extraction", "baseline", "evaluation", "pushed"}


def _test_examples(transformed_dir: str) -> tuple[list[bytes], np.ndarray]:
    import tensorflow as tf

    records = [r.numpy() for r in tf.data.TFRecordDataset(fmt.split_files(transformed_dir, "test"))]
    labels = np.array([tf.train.Example.FromString(r).features.feature[fmt.LABEL_KEY].int64_list.value[0]
                       for r in records])
    return records, labels


def _png(transformed_record: bytes) -> bytes:
    import tensorflow as tf

    feature = tf.train.Example.FromString(transformed_record).features.feature
    shape = list(feature[fmt.IMAGE_SHAPE_KEY].int64_list.value)
    pixels = np.frombuffer(feature[fmt.IMAGE_RAW_KEY].bytes_list.value[0], np.uint8).reshape(shape)
    return tf.io.encode_png(pixels).numpy()


def test_kfp_local_runs_every_step_then_reuses_every_step_from_the_cache(make_tiny_config):
    import tensorflow as tf

    config = make_tiny_config(pipeline={"enable_caching": True, "mode": "kfp_local"},
                              evaluator={"min_accuracy": 0.5, "min_improvement": 0.0})
    first = run_local(config)

    assert set(first.artifacts) == STEPS
    assert not any(first.cached.values())
    for step, path in first.artifacts.items():
        assert os.path.isdir(path) and os.listdir(path), step
    record = read_json(os.path.join(first.record_dir, "run.json"))
    assert record["status"] == "succeeded" and set(record["steps"]) == STEPS
    assert record["environment"]["packages"]["tensorflow"] and "cpu_kernel_flags" in record["environment"]
    assert os.path.isfile(os.path.join(first.record_dir, "config.yaml"))

    evaluation = first.artifacts["evaluation"]
    report = os.path.join(evaluation, "report", "index.html")
    html = open(report, encoding="utf-8").read()
    for image in glob.glob(os.path.join(evaluation, "report", "*.png")):
        assert os.path.basename(image) in html
    summary = first.read("evaluation", "summary.json")
    candidate = summary["models"]["feature_extraction"]["accuracy"]["value"]
    baseline = summary["models"]["baseline"]["accuracy"]["value"]
    should_bless = candidate >= 0.5 - 1e-6 and candidate - baseline >= -1e-6
    assert summary["blessing"]["blessed"] == should_bless

    push = first.read("pushed", "push.json")
    assert push["pushed"] == should_bless
    if should_bless:
        served = tf.saved_model.load(push["serving_model_dir"])
        records, labels = _test_examples(first.artifacts["transformed"])
        by_example = served.signatures["serving_default"](examples=tf.constant(records))
        accuracy = float(np.mean(by_example["class_ids"].numpy() == labels))
        assert accuracy == pytest.approx(candidate, abs=1e-6)
        by_image = served.signatures["serving_image_bytes"](images=tf.constant([_png(r) for r in records[:4]]))
        np.testing.assert_allclose(by_image["probabilities"].numpy(), by_example["probabilities"].numpy()[:4],
                                   atol=1e-5)
        assert by_image["class_names"].numpy()[0].decode() in ("dark", "grey", "light")

    versions_before = sorted(os.listdir(Paths.from_config(config).serving_dir))
    second = run_local(config)
    assert all(second.cached.values()), second.cached
    assert second.artifacts == first.artifacts
    assert sorted(os.listdir(Paths.from_config(config).serving_dir)) == versions_before

    # Each step's cache key is its own sections: an evaluator change re-runs evaluate and push only ...
    evaluator_changed = run_local(make_tiny_config(pipeline={"enable_caching": True, "mode": "kfp_local"},
                                                   evaluator={"min_accuracy": 0.99, "min_improvement": 0.0}))
    assert {step for step, cached in evaluator_changed.cached.items() if not cached} == {"evaluation", "pushed"}
    record = read_json(os.path.join(evaluator_changed.record_dir, "run.json"))
    assert {step for step, info in record["steps"].items() if info["cached"]} == {
        "examples", "transformed", "feature_extraction", "baseline"}
    # ... and a trainer change re-runs the trainers and what follows, never ingest and transform.
    trainer_changed = run_local(make_tiny_config(pipeline={"enable_caching": True, "mode": "kfp_local"},
                                                 evaluator={"min_accuracy": 0.99, "min_improvement": 0.0},
                                                 trainer={"head_epochs": 19}))
    assert {step for step, cached in trainer_changed.cached.items() if cached} == {"examples", "transformed"}


def test_a_baseline_that_beats_the_candidate_is_not_blessed_and_nothing_is_pushed(make_tiny_config, blind_module):
    # The blind module sees nothing; the baseline gets enough steps (and a high rate) to learn the easy classes.
    config = make_tiny_config(pipeline={"mode": "in_process"},
                              trainer={"handle": blind_module, "baseline": {"architecture": "small_cnn",
                                                                            "cnn_filters": [4], "epochs": 240,
                                                                            "learning_rate": 0.01}})
    result = run_local(config)

    blessing = result.read("evaluation", "blessing.json")
    assert blessing["blessed"] is False
    assert "negative transfer" in blessing["reason"]
    assert result.read("pushed", "push.json") == {"pushed": False, "reason": blessing["reason"]}
    serving_dir = Paths.from_config(config).serving_dir
    assert not os.path.isdir(serving_dir) or not [v for v in os.listdir(serving_dir) if v.isdigit()]


def test_cli_run_publishes_the_source_module_once_and_prints_the_headline(make_tiny_config, tiny_data, tmp_path,
                                                                          capsys):
    source_ingest = {"source": f"idx:{tiny_data}", "splits": {"train": "train[:75%]", "eval": "train[75%:]"},
                     "label_names": ["dark", "grey", "light"], "classes": ["dark", "light"], "shots": {}}
    config = make_tiny_config(
        "with_source",
        pipeline={"mode": "in_process"},
        trainer={"handle": "", "preset": None, "baseline": {"architecture": "same", "epochs": 20}},
        source={"ingest": source_ingest, "image_size": [12, 12], "channels": 1, "conv_filters": [4],
                "epochs": 2, "batch_size": 8},
    )
    assert main(["run", "--config", str(tmp_path / "with_source.yaml")]) == 0
    out = capsys.readouterr().out
    assert "test accuracy on 18 examples" in out
    assert "feature_extraction" in out and "baseline" in out
    assert "report: " in out and out.count("\n") >= 6

    paths = Paths.from_config(config)
    module_pb = os.path.join(paths.module_dir, "saved_model.pb")
    published_at = os.path.getmtime(module_pb)
    assert publish_source_module(config, paths, "in_process") == paths.module_dir
    assert os.path.getmtime(module_pb) == published_at  # reused, not trained again


def test_a_user_error_inside_a_kfp_local_step_reaches_the_cli_without_a_traceback(make_tiny_config, tmp_path,
                                                                                 capsys):
    # 100 labels per class are asked of classes that have 15 training examples: ingest refuses.
    make_tiny_config("too_many_shots", pipeline={"mode": "kfp_local"},
                     ingest={"shots": {"train": 100, "eval": 2}})
    assert main(["-q", "run", "--config", str(tmp_path / "too_many_shots.yaml")]) == 1
    err = capsys.readouterr().err
    assert "tlpipe: error: step 'ingest-target' failed: DataError:" in err
    assert "100" in err and "Traceback" not in err
    record_dir = glob.glob(str(tmp_path / "too_many_shots" / "root" / "runs" / "*"))[0]
    assert read_json(os.path.join(record_dir, "run.json"))["status"] == "failed"
    with open(os.path.join(record_dir, "kfp.log"), encoding="utf-8") as log:  # -q: kfp's task logs went here
        assert "DataError" in log.read()
