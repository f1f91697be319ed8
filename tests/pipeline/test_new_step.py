"""A new step is its declaration plus one line in a graph: a step declared here (its executor beside it) runs in
process after ingest and transform, and the same graph compiles to a Kubeflow pipeline with its component."""

from __future__ import annotations

import os
from typing import Any

import pytest
import yaml

from tlpipe.components.ingest.spec import EXAMPLES, INGEST
from tlpipe.components.spec import ArtifactSpec, ComponentSpec, StepArgs
from tlpipe.components.transform.spec import TRANSFORM, TRANSFORMED
from tlpipe.models.plumbing import example_format as fmt
from tlpipe.models.plumbing.artifacts import read_json, write_json
from tlpipe.pipeline.adapters import InProcessOps, KfpOps

pytestmark = pytest.mark.quick

COUNTS = "counts"
COUNTS_FILE = "counts.json"

COUNT = ComponentSpec(
    name="count",
    executor=f"{__name__}:run_count",
    options={"splits": list},
    inputs=(ArtifactSpec(TRANSFORMED, "dataset"),),
    outputs=(ArtifactSpec(COUNTS, "artifact"),),
)


def run_count(args: StepArgs) -> dict[str, Any]:
    """How many records each asked split of the transform artifact holds (read from its files)."""
    import tensorflow as tf

    counts = {split: sum(1 for _ in tf.data.TFRecordDataset(fmt.split_files(args.inputs[TRANSFORMED], split)))
              for split in args.options["splits"]}
    os.makedirs(args.output, exist_ok=True)
    write_json(os.path.join(args.output, COUNTS_FILE), counts)
    return counts


def graph(ops: Any, handle: str) -> dict[str, Any]:
    examples = ops.run(INGEST, "ingest-target")
    transformed = ops.run(TRANSFORM, "transform-target", inputs={EXAMPLES: examples}, options={"handle": handle})
    counted = ops.run(COUNT, "count", inputs={TRANSFORMED: transformed}, options={"splits": ["train", "test"]})
    return {TRANSFORMED: transformed, COUNTS: counted}


def test_a_step_declared_here_runs_in_process_and_compiles_for_kubeflow(tiny_config, tmp_path):
    ops = InProcessOps(tiny_config, {}, str(tmp_path / "run"))
    outputs = graph(ops, tiny_config.trainer.handle)
    metadata = read_json(os.path.join(outputs[TRANSFORMED], "metadata.json"))
    counts = read_json(os.path.join(outputs[COUNTS], COUNTS_FILE))
    assert counts == {"train": metadata["num_examples"]["train"], "test": metadata["num_examples"]["test"]} == \
        ops.results["count"]
    assert counts["train"] == 15  # 5 shots x 3 classes

    from kfp import compiler, dsl

    @dsl.pipeline(name="with-count")
    def pipeline():
        graph(KfpOps(tiny_config, {}), tiny_config.trainer.handle)

    path = tmp_path / "pipeline.yaml"
    compiler.Compiler().compile(pipeline, str(path))
    compiled = yaml.safe_load(path.read_text())
    tasks = compiled["root"]["dag"]["tasks"]  # kfp names a task by its component: the step kind
    assert set(tasks) == {"ingest", "transform", "count"}
    assert tasks["count"]["inputs"]["artifacts"][TRANSFORMED]["taskOutputArtifact"]["producerTask"] == "transform"
    assert f"{__name__}:COUNT" in str(compiled["deploymentSpec"])  # the component finds the declaration here


def test_an_option_the_new_step_does_not_declare_is_refused(tiny_config, tmp_path):
    ops = InProcessOps(tiny_config, {}, str(tmp_path / "run"))
    with pytest.raises(ValueError, match=r"step 'count' declares no option 'split'"):
        ops.run(COUNT, "count", inputs={TRANSFORMED: str(tmp_path)}, options={"split": "train"})
