"""`tlpipe compile`: the Kubeflow YAML carries what the config asked for, read back from the YAML itself."""

import json
import os

import pytest
import yaml

from tlpipe.pipeline.cli import main
from tlpipe.pipeline.config import load_config
from tlpipe.models.plumbing.errors import ConfigError, TlpipeError
from tlpipe.pipeline.kubeflow_runner import ClusterPaths, build_cluster_pipeline, compile_pipeline

CLUSTER_CONFIG = {
    "pipeline": {"name": "shoes", "root": "/mnt/tlpipe"},
    "ingest": {"source": "idx:/data/shoes/{SPAN}", "shots": {"train": 7}, "span": 2},
    "trainer": {"strategies": ["feature_extraction", "fine_tune_top"]},
    "kubeflow": {
        "image": "registry.example/tlpipe:1.2-gpu",
        "retries": 3,
        "resources": {
            "default": {"cpu_request": "500m", "memory_request": "1Gi"},
            "train": {"cpu_request": "2", "cpu_limit": "4", "memory_request": "4Gi", "memory_limit": "8Gi",
                      "accelerator_type": "nvidia.com/gpu", "accelerator_count": 1},
            "evaluate": {"cpu_request": "3", "memory_limit": "6G"},
        },
        "caching": {"train": False, "push": False},
    },
}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compile")
    config_path = folder / "cluster.yaml"
    config_path.write_text(yaml.safe_dump(CLUSTER_CONFIG))
    package = folder / "pipeline.yaml"
    assert main(["-q", "compile", "--config", str(config_path), "-o", str(package)]) == 0
    with open(package) as handle:
        return yaml.safe_load(handle)


def tasks_by_step(spec: dict) -> dict[str, dict]:
    """Each task of the root DAG by its display name (ingest-target, train-baseline, ...)."""
    return {task["taskInfo"]["name"]: task for task in spec["root"]["dag"]["tasks"].values()}


def container_of(spec: dict, task: dict) -> dict:
    executor = spec["components"][task["componentRef"]["name"]]["executorLabel"]
    return spec["deploymentSpec"]["executors"][executor]["container"]


def test_every_step_of_the_transfer_pipeline_is_there(compiled):
    assert compiled["pipelineInfo"]["name"] == "shoes"
    assert set(tasks_by_step(compiled)) == {
        "ingest-target", "transform-target", "train-feature_extraction", "train-fine_tune_top", "train-baseline",
        "resolve", "evaluate", "push",
    }


def test_every_step_runs_the_configured_image(compiled):
    for task in tasks_by_step(compiled).values():
        assert container_of(compiled, task)["image"] == "registry.example/tlpipe:1.2-gpu"


def test_resources_and_accelerator_per_step(compiled):
    steps = tasks_by_step(compiled)
    for name in ("train-feature_extraction", "train-fine_tune_top", "train-baseline"):
        resources = container_of(compiled, steps[name])["resources"]
        assert (resources["resourceCpuRequest"], resources["resourceCpuLimit"]) == ("2", "4")
        assert (resources["resourceMemoryRequest"], resources["resourceMemoryLimit"]) == ("4Gi", "8Gi")
        assert resources["accelerator"]["resourceType"] == "nvidia.com/gpu"
        assert resources["accelerator"]["resourceCount"] == "1"
    evaluate = container_of(compiled, steps["evaluate"])["resources"]
    assert (evaluate["resourceCpuRequest"], evaluate["resourceMemoryLimit"]) == ("3", "6G")
    assert "accelerator" not in evaluate and "resourceCpuLimit" not in evaluate
    for name in ("ingest-target", "transform-target", "push"):  # the `default` entry
        resources = container_of(compiled, steps[name])["resources"]
        assert (resources["resourceCpuRequest"], resources["resourceMemoryRequest"]) == ("500m", "1Gi")
        assert not {"accelerator", "resourceCpuLimit", "resourceMemoryLimit"} & set(resources)


def test_caching_per_step_and_retries(compiled):
    for name, task in tasks_by_step(compiled).items():
        cached = task.get("cachingOptions", {}).get("enableCache", False)
        assert cached == (not name.startswith(("train-", "push", "resolve"))), name
        assert task["retryPolicy"]["maxRetryCount"] == 3, name


def test_run_time_inputs_and_their_defaults(compiled):
    inputs = compiled["root"]["inputDefinitions"]["parameters"]
    assert {name: (spec["parameterType"], spec["defaultValue"]) for name, spec in inputs.items()} == {
        "source_uri": ("STRING", "idx:/data/shoes/{SPAN}"),
        "hub_handle": ("STRING", "efficientnet_lite0"),  # the embedded default's preset
        "shots_per_class": ("NUMBER_INTEGER", 7),
        "span": ("NUMBER_INTEGER", 2),
    }
    steps = tasks_by_step(compiled)
    # Each step is wired to the run-time inputs it declares, and to no other (its cache key is its own).
    declared = {"ingest-target": {"source_uri", "shots_per_class", "span"}, "transform-target": {"hub_handle"},
                "train-baseline": {"hub_handle"}, "evaluate": set(), "push": set()}
    for name, wanted in declared.items():
        wired = steps[name]["inputs"]["parameters"]
        assert {p for p in inputs if p in wired} == wanted, name
        for parameter in wanted:
            assert wired[parameter] == {"componentInputParameter": parameter}, (name, parameter)
    for name in ("resolve", "push"):
        options = json.loads(steps[name]["inputs"]["parameters"]["options_json"]["runtimeValue"]["constant"])
        assert options["serving_dir"] == "/mnt/tlpipe/serving"


def test_source_pipeline_compiles_with_its_pretraining_step(tmp_path, capsys):
    package = tmp_path / "source.yaml"
    assert main(["compile", "--source", "--set", "kubeflow.image=registry.example/tlpipe:1.2",
                 "--set", "pipeline.root=/mnt/tlpipe", "-o", str(package)]) == 0
    assert f"into {package}" in capsys.readouterr().out
    spec = yaml.safe_load(package.read_text())
    assert spec["pipelineInfo"]["name"] == "fashion-mnist-transfer-source"
    assert set(tasks_by_step(spec)) == {"ingest-source", "transform-source", "pretrain"}
    assert "inputDefinitions" not in spec["root"]


def test_cluster_paths_follow_the_config():
    config = load_config(None, ["pipeline.root=gs://bucket/tlpipe", "pusher.serving_dir=/gcs/bucket/serving",
                                "trainer.preset=null"])
    assert ClusterPaths.from_config(config) == ClusterPaths(
        serving_dir="/gcs/bucket/serving", hub_handle="gs://bucket/tlpipe/modules/fashion-source",
        module_dir="gs://bucket/tlpipe/modules/fashion-source")
    assert ClusterPaths.from_config(load_config(None, ["pipeline.root=/mnt/x"])).hub_handle == ""  # the preset
    with_handle = load_config(None, ["pipeline.root=/mnt/x", "trainer.handle=https://tfhub.dev/some/module/1"])
    assert ClusterPaths.from_config(with_handle) == ClusterPaths(
        serving_dir="/mnt/x/serving", hub_handle="", module_dir="/mnt/x/modules/fashion-source")


def test_source_pipeline_publishes_into_the_module_dir(tmp_path):
    package = tmp_path / "source.yaml"
    assert main(["compile", "--source", "--set", "pipeline.root=/mnt/tlpipe", "-o", str(package)]) == 0
    pretrain = tasks_by_step(yaml.safe_load(package.read_text()))["pretrain"]
    options = json.loads(pretrain["inputs"]["parameters"]["options_json"]["runtimeValue"]["constant"])
    publish_dir = options["publish_dir"]
    assert publish_dir == "/mnt/tlpipe/modules/fashion-source"
    with pytest.raises(ConfigError, match="source.module_dir"):
        build_cluster_pipeline(load_config(None, ["pipeline.root=gs://b/t", "pusher.serving_dir=/gcs/b/s"]),
                               source=True)


@pytest.mark.parametrize("overrides, key", [
    ([], "pipeline.root"),  # the default root is relative
    (["pipeline.root=gs://bucket/tlpipe"], "pusher.serving_dir"),  # the pusher writes local files
])
def test_paths_a_pod_could_not_use_are_refused(overrides, key, tmp_path):
    config = load_config(None, overrides)
    with pytest.raises(ConfigError) as caught:
        compile_pipeline(config, str(tmp_path / "pipeline.yaml"))
    assert caught.value.key == key
    assert not os.listdir(tmp_path)


def test_output_must_be_yaml(tmp_path):
    config = load_config(None, ["pipeline.root=/mnt/x"])
    with pytest.raises(TlpipeError, match=r"--output '.*pipeline\.json': allowed: a file name ending in \.yaml"):
        compile_pipeline(config, str(tmp_path / "pipeline.json"))
    assert not os.listdir(tmp_path)


# --- The compiled YAML, loaded back and executed with kfp.local, agrees with the local runner. ---

def test_compiled_yaml_runs_with_kfp_local_like_the_local_runner(tiny_config, tmp_path):
    from kfp import components, local

    from tlpipe.models.plumbing.artifacts import read_json
    from tlpipe.pipeline.local_runner import run_local

    reference = run_local(tiny_config, mode="in_process")

    package = compile_pipeline(tiny_config, str(tmp_path / "pipeline.yaml"))
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "kfp"),
               enable_caching=False)
    run = components.load_component_from_file(package)()
    artifacts = {name: artifact.path for name, artifact in run.outputs.items()}

    assert set(artifacts) == set(reference.artifacts)
    for name, path in artifacts.items():
        assert os.path.isdir(path) and os.listdir(path), name
        assert path.startswith(str(tmp_path / "kfp")), name  # executed here, not reused from the reference
    blessing = read_json(os.path.join(artifacts["evaluation"], "blessing.json"))
    expected = reference.read("evaluation", "blessing.json")
    assert (blessing["blessed"], blessing.get("candidate")) == (expected["blessed"], expected.get("candidate"))
    pushed = read_json(os.path.join(artifacts["pushed"], "push.json"))
    assert pushed["pushed"] == reference.read("pushed", "push.json")["pushed"] == expected["blessed"]
