"""The configuration: defaults < file < overrides, and errors that name key, value and what is allowed."""

import dataclasses
from typing import Literal, Optional

import pytest
import yaml

from tlpipe.pipeline.config import (
    FASHION_MNIST_LABELS,
    PipelineConfig,
    config_to_yaml,
    load_config,
    parse_override,
    save_config,
)
from tlpipe.components.config_schema import from_dict, merge, to_dict
from tlpipe.models.plumbing.errors import ConfigError

pytestmark = pytest.mark.quick


def test_defaults_are_the_embedded_fashion_mnist_transfer():
    config = load_config()
    assert config.ingest.source == "idx:/usr/share/datasets/fashion-mnist"
    assert config.ingest.classes == FASHION_MNIST_LABELS[5:]
    assert config.source.ingest.classes == FASHION_MNIST_LABELS[:5]
    assert config.ingest.shots == {"train": 10, "eval": 10}
    assert config.ingest.unlabeled and config.trainer.self_training.labeler == "propagation"
    assert config.trainer.strategies == ["feature_extraction", "self_training"]
    assert config.trainer.preset == "efficientnet_lite0" and config.transform.image_size == [64, 64]
    assert config.trainer.self_training.teacher == config.trainer.self_training.student == "feature_extraction"
    assert not config.uses_source_module
    assert config.beam.runner == "in_process"


def test_home_made_source_module_is_one_setting_away():
    config = load_config(overrides=["trainer.preset=null"])
    assert config.uses_source_module and config.source.ingest.classes == FASHION_MNIST_LABELS[:5]
    # The input size and the frozen teacher were chosen for the embedded module, not for this one.
    assert config.transform.image_size is None and config.trainer.self_training.teacher == "fine_tune_all"


def test_own_module_replaces_the_embedded_preset():
    config = load_config(overrides=["trainer.handle=/modules/mine"])
    assert config.trainer.preset is None and config.trainer.handle == "/modules/mine"
    assert config.transform.image_size is None
    kept = load_config(overrides=["trainer.preset=efficientnet_lite0", "trainer.strategies=[fine_tune_all]"])
    assert kept.transform.image_size == [64, 64]


def test_other_target_data_starts_without_self_training(tmp_path):
    config = load_config(overrides=["ingest.source=image_folder:/data/flowers"])
    assert config.trainer.strategies == ["feature_extraction", "fine_tune_all"] and not config.ingest.unlabeled
    assert config.transform.image_size is None and config.trainer.self_training.teacher == "fine_tune_all"
    chosen = load_config(overrides=["ingest.source=image_folder:/data/flowers", "ingest.unlabeled=true",
                                    "ingest.shots.train=5", "trainer.strategies=[self_training]"])
    assert chosen.trainer.strategies == ["self_training"]


def test_file_overrides_defaults_and_set_overrides_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"trainer": {"head_epochs": 7, "head": {"dropout": 0.5}}, "ingest": {"seed": 3}}))
    config = load_config(str(path), ["trainer.head_epochs=2", "ingest.shots.train=100"])
    assert config.trainer.head_epochs == 2
    assert config.trainer.head.dropout == 0.5
    assert config.ingest.seed == 3
    assert config.ingest.shots == {"train": 100, "eval": 10}
    assert config.trainer.fine_tune_top_n == 1  # untouched default


def test_saved_config_loads_back_identically(tmp_path):
    config = load_config(overrides=["trainer.strategies=[fine_tune_top]", "evaluator.min_improvement=0.05"])
    path = save_config(config, str(tmp_path / "run"))
    assert load_config(path) == config
    assert yaml.safe_load(config_to_yaml(config))["evaluator"]["min_improvement"] == 0.05


@pytest.mark.parametrize(
    "override, key, received, allowed",
    [
        ("trainer.epochz=3", "trainer.epochz", 3, "keys of 'trainer'"),
        ("trainer.head_epochs=three", "trainer.head_epochs", "three", "an integer or null"),
        ("trainer.head.dropout=true", "trainer.head.dropout", True, "a number"),
        ("trainer.strategies=[fine_tune_everything]", "trainer.strategies", "fine_tune_everything", "fine_tune_all"),
        ("pipeline.mode=cloud", "pipeline.mode", "cloud", "'kfp_local', 'in_process'"),
        ("ingest.source=ftp:/x", "ingest.source", "ftp:/x", "tfds, image_folder, idx, tfrecord, csv"),
        ("ingest.shots.test=0", "ingest.shots.test", 0, ">= 1"),
        ("evaluator.min_accuracy=1.5", "evaluator.min_accuracy", 1.5, "[0, 1]"),
        ("transform.channels=2", "transform.channels", 2, "1"),
        ("beam.options=[direct]", "beam.options", "direct", "--name=value"),
        ("source.ingest.num_shards=0", "source.ingest.num_shards", 0, ">= 1"),
        ("pipeline.root=''", "pipeline.root", "", "would write into the current folder"),
        ("ingest.splits.test=train[50%:]", "ingest.splits.test", "train[50%:]",
         "it shares 30% of source split 'train' with splits.train ('train[:80%]')"),
        ("kubeflow.caching.trian=false", "kubeflow.caching.trian", False, "steps ingest, transform, pretrain, rank"),
        ("pusher.formats=[tflite]", "pusher.formats", ["tflite"], "that includes 'saved_model'"),
        ("pusher.formats=[saved_model,onnx]", "pusher.formats", "onnx", "'tflite_int8'"),
        ("evaluator.edge_max_drop=-0.1", "evaluator.edge_max_drop", -0.1, "[0, 1]"),
    ],
)
def test_bad_values_name_key_value_and_what_is_allowed(override, key, received, allowed):
    with pytest.raises(ConfigError) as caught:
        load_config(overrides=[override])
    assert caught.value.key == key
    assert caught.value.received == received
    assert allowed in str(caught.value)


def test_edge_formats_are_refused_with_the_multi_task_strategy():
    with pytest.raises(ConfigError, match=r"\['saved_model'\] with strategy 'multi_task': the evaluator checks"):
        load_config(overrides=["trainer.strategies=[multi_task]", "pusher.formats=[saved_model,tflite]",
                               "ingest.label_tasks={group: {mapping: {Bag: carried, Sandal: worn}}}",
                               "trainer.tasks=[{name: item, label: label}, {name: group, label: group}]"])
    assert load_config(overrides=["pusher.formats=[saved_model,tflite_int8]"]).pusher.edge_formats == ["tflite_int8"]


def test_overlapping_splits_are_accepted_only_when_allowed():
    config = load_config(overrides=["ingest.splits.test=train[50%:]", "ingest.allow_overlapping_splits=true"])
    assert config.ingest.splits["test"] == "train[50%:]"
    # touching ranges do not overlap: [a, b) and [b, c)
    assert load_config(overrides=["ingest.splits.test=train[80%:]", "ingest.splits.eval=train[90%:]",
                                  "ingest.splits.train=train[:80%]", "ingest.allow_overlapping_splits=false",
                                  "ingest.splits.eval=train[80%:90%]", "ingest.splits.test=train[90%:]"])


def test_every_declared_step_kind_takes_resources_and_caching():
    from tlpipe.components.steps import STEPS

    kinds = [spec.name for spec in STEPS]
    assert {"rank", "sweep-point", "sweep-gather"} <= set(kinds)
    overrides = [f"kubeflow.resources.{kind}={{cpu_request: '2'}}" for kind in kinds]
    config = load_config(overrides=[*overrides, *(f"kubeflow.caching.{kind}=false" for kind in kinds)])
    assert all(config.kubeflow.resources_for(kind).cpu_request == "2" for kind in kinds)
    assert config.kubeflow.caching == {kind: False for kind in kinds}


def test_handle_and_preset_together_are_rejected():
    with pytest.raises(ConfigError, match="trainer.preset"):
        load_config(overrides=["trainer.handle=/m", "trainer.preset=mobilenet_v2_100_224"])


@pytest.mark.parametrize("override", ["noequals", "=3", "a..b=1"])
def test_malformed_override(override):
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_override(override)


def test_override_values_are_parsed_as_yaml():
    assert parse_override("a.b=[1, 2]") == (["a", "b"], [1, 2])
    assert parse_override("a=null") == (["a"], None)
    assert parse_override("a=text with spaces") == (["a"], "text with spaces")


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="existing YAML file"):
        load_config(str(tmp_path / "absent.yaml"))
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping of sections"):
        load_config(str(listing))
    for text in ("", "# only a comment\n"):
        empty = tmp_path / "empty.yaml"
        empty.write_text(text)
        with pytest.raises(ConfigError, match="the file is empty: to run the embedded default, leave out --config"):
            load_config(str(empty))


@dataclasses.dataclass
class _Inner:
    size: int = 1

    def validate(self):
        if self.size > 10:
            raise ConfigError("size", self.size, "at most 10")


@dataclasses.dataclass
class _Outer:
    inner: _Inner = dataclasses.field(default_factory=_Inner)
    mode: Literal["a", "b"] = "a"
    maybe: Optional[float] = None
    table: dict[str, list[int]] = dataclasses.field(default_factory=dict)


def test_schema_converts_nested_types_and_prefixes_nested_validation_keys():
    section = from_dict(_Outer, {"inner": {"size": 3}, "maybe": 2, "table": {"x": [1, 2]}})
    assert section == _Outer(_Inner(3), "a", 2.0, {"x": [1, 2]})
    assert isinstance(section.maybe, float)
    with pytest.raises(ConfigError) as caught:
        from_dict(_Outer, {"inner": {"size": 11}})
    assert caught.value.key == "inner.size"
    with pytest.raises(ConfigError) as caught:
        from_dict(_Outer, {"table": {"x": [1, "two"]}})
    assert caught.value.key == "table.x[1]"
    assert to_dict(section)["inner"] == {"size": 3}


def test_merge_is_deep_and_does_not_mutate():
    base = {"a": {"b": 1, "c": 2}, "d": [1]}
    merged = merge(base, {"a": {"b": 5}, "d": [2]})
    assert merged == {"a": {"b": 5, "c": 2}, "d": [2]}
    assert base == {"a": {"b": 1, "c": 2}, "d": [1]}


def test_every_section_default_validates():
    from tlpipe.components.config_schema import validate_tree

    validate_tree(PipelineConfig())


def test_the_embedded_default_trains_the_frozen_teacher_once():
    from tlpipe.components.strategies.registry import train_steps

    assert train_steps(load_config().trainer) == ["feature_extraction", "self_training", "baseline", "baseline_self_training"]
    chosen = load_config(overrides=["trainer.self_training.teacher=fine_tune_all", "trainer.baseline.self_training=true"])
    assert train_steps(chosen.trainer) == ["feature_extraction", "fine_tune_all", "self_training", "baseline",
                                   "baseline_self_training"]
