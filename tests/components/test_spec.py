"""Component declarations: run-time parameters land where declared; resumable work folders are stable."""

import json

import pytest

from tlpipe.components.beam import BeamConfig
from tlpipe.components.ingest.config import IngestConfig
from tlpipe.components.ingest.spec import INGEST
from tlpipe.components.spec import WORK_KEY_FILE, build_args, group_input_name, sections_to_json
from tlpipe.components.trainer.config import TrainerConfig
from tlpipe.components.strategies.train_step import TRAIN
from tlpipe.components.trainer.spec import TEACHERS
from tlpipe.models.plumbing.example_format import METADATA_FILE
from tlpipe.models.plumbing.errors import ConfigError

pytestmark = pytest.mark.quick

INGEST_SECTIONS = sections_to_json({"ingest": IngestConfig(source="idx:/data", shots={"train": 5}),
                                    "beam": BeamConfig()})


def _ingest_args(**parameters):
    return build_args(INGEST, step="ingest", sections_json=INGEST_SECTIONS, options={}, parameters=parameters,
                      inputs={}, outputs={"examples": "/tmp/out"})


def test_unset_run_time_parameters_keep_the_config():
    section = _ingest_args(source_uri="", shots_per_class=0, span=-1).sections["ingest"]
    assert (section.source, section.shots, section.span) == ("idx:/data", {"train": 5}, None)


def test_set_run_time_parameters_replace_their_declared_targets():
    section = _ingest_args(source_uri="idx:/other/{SPAN}", shots_per_class=7, span=0).sections["ingest"]
    assert (section.source, section.shots, section.span) == ("idx:/other/{SPAN}", {"train": 7}, 0)


def test_a_bad_run_time_value_is_a_config_error_naming_the_section_key():
    with pytest.raises(ConfigError, match="ingest.shots"):
        _ingest_args(shots_per_class=-3)


def _train_args(work_root, options, inputs):
    return build_args(TRAIN, step="train-fine_tune_all", sections_json=sections_to_json({"trainer": TrainerConfig()}),
                      options=options, parameters={"hub_handle": ""}, inputs=inputs,
                      outputs={"model": "/tmp/m"}, work_root=str(work_root))


def test_resumable_steps_get_a_work_folder_keyed_by_their_inputs(tmp_path):
    options = {"strategy": "fine_tune_all", "handle": "/modules/a"}
    first = _train_args(tmp_path, options, {"transformed": "/t/1"})
    assert first.work_dir.startswith(str(tmp_path / "train-fine_tune_all-"))
    assert _train_args(tmp_path, options, {"transformed": "/t/1"}).work_dir == first.work_dir
    assert _train_args(tmp_path, options, {"transformed": "/t/2"}).work_dir != first.work_dir
    assert _train_args(tmp_path, {**options, "handle": "/modules/b"}, {"transformed": "/t/1"}).work_dir != first.work_dir
    assert first.options["handle"] == "/modules/a"


def test_inputs_count_by_what_they_hold_not_by_their_folder(tmp_path):
    # In-process runs write the same transformed data into a new run folder each time: same work, same folder.
    options = {"strategy": "fine_tune_all", "handle": "/modules/a"}
    for run, counts in (("run-1", 10), ("run-2", 10), ("run-3", 11)):
        (tmp_path / run).mkdir()
        (tmp_path / run / METADATA_FILE).write_text(json.dumps({"counts": {"train": {"a": counts}}}))
    work = {run: _train_args(tmp_path / "work", options, {"transformed": str(tmp_path / run)}).work_dir
            for run in ("run-1", "run-2", "run-3")}
    assert work["run-1"] == work["run-2"] != work["run-3"]
    # A teacher's model counts by the work it came from (its WORK_KEY_FILE), not its folder either.
    for run in ("run-1", "run-2"):
        (tmp_path / run / "teacher").mkdir()
        (tmp_path / run / "teacher" / WORK_KEY_FILE).write_text("train-feature_extraction-0123456789abcdef")
    students = {run: _train_args(tmp_path / "work", {**options, "strategy": "self_training"},
                                 {"transformed": str(tmp_path / "run-1"),
                                  group_input_name(TEACHERS, "feature_extraction"): str(tmp_path / run / "teacher")}
                                 ).work_dir for run in ("run-1", "run-2")}
    assert students["run-1"] == students["run-2"]


def test_many_inputs_are_grouped_back_by_name(tmp_path):
    args = _train_args(tmp_path, {"strategy": "fine_tune_all", "handle": "h"},
                       {"transformed": "/t", group_input_name(TEACHERS, "fine_tune_all"): "/m/ft"})
    assert args.group(TEACHERS) == {"fine_tune_all": "/m/ft"}
    assert args.group("models") == {}


def test_options_are_declared_and_typed():
    from tlpipe.components.pusher.spec import RESOLVE_PRODUCTION
    from tlpipe.components.steps import STEPS

    RESOLVE_PRODUCTION.check_options({"serving_dir": "/srv", "compare_with_production": False})
    RESOLVE_PRODUCTION.check_options({"serving_dir": None})
    with pytest.raises(ValueError, match=r"step 'resolve' declares no option 'serving_folder'.*'serving_dir'"):
        RESOLVE_PRODUCTION.check_options({"serving_folder": "/srv"})
    with pytest.raises(ValueError, match=r"option 'compare_with_production' must be bool; Received: 'no' \(str\)"):
        RESOLVE_PRODUCTION.check_options({"compare_with_production": "no"})
    with pytest.raises(ValueError, match="declares no option 'strategy'"):
        build_args(INGEST, step="ingest", sections_json=INGEST_SECTIONS, options={"strategy": "x"}, parameters={},
                   inputs={}, outputs={"examples": "/tmp/out"})
    # every run-time parameter that lands in an option lands in a declared one
    for spec in STEPS:
        for parameter in spec.parameters:
            if parameter.target.startswith("option:"):
                assert parameter.target.split(":", 1)[1] in spec.options, (spec.name, parameter.name)


def test_a_parameter_aimed_at_an_undeclared_option_is_refused_at_declaration():
    from tlpipe.components.spec import ComponentSpec, ParameterSpec

    with pytest.raises(ValueError, match="targets the option 'handle', which the step does not declare"):
        ComponentSpec(name="x", executor="m:f", parameters=(ParameterSpec("hub_handle", str, "option:handle", ""),))
