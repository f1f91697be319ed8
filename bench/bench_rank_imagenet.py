"""Benchmark: ranking real candidates on the embedded default, and L2-SP / BSS vs plain fine-tuning on Lite0.

Candidates (each published as a hub module that takes the default's 64x64 RGB images):
- `efficientnet_lite0/1/2`: the ImageNet modules tlpipe builds offline (`offline_modules`);
- `lite0-random`: EfficientNet-Lite0's architecture with random weights (batch-norm statistics re-estimated
  on Fashion-MNIST source images, as for the home-made module);
- `src5-small-cnn`: the home-made module (`bench_transferability.py`'s src5-wide-3ep: a small CNN pre-trained
  on the five source classes) behind an input adapter (antialiased resize to 28x28, mean of the channels).

On the default's transformed target (10 labels per class; `--transformed`, e.g. a folder that
`bench_default_strategies.py` wrote), `rank_candidates` scores all five, then each is fine-tuned
(`fine_tune_all`, the fine-tuning phase capped at `--fine-tune-epochs`) with `--seeds`, and Kendall's tau
between each score and the mean fine-tuned test accuracy is reported. Then plain, L2-SP and BSS
fine-tuning of Lite0 with the same seeds.

    .venv/bin/python bench/bench_rank_imagenet.py --transformed /tmp/bench/seed-0/transform --work /tmp/rank \
        --output bench/results/rank_imagenet.json [--fine-tune-epochs 40] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from typing import Any

import keras
import numpy as np

from bench_transferability import CANDIDATES, correlations, publish, read_idx, settle_batch_norm, test_accuracy
from tlpipe.components.rank.executor import SCORES, rank_candidates
from tlpipe.components.trainer.config import RegularizationConfig
from tlpipe.components.trainer.executor import train_transfer
from tlpipe.models.plumbing.artifacts import read_json, write_json
from tlpipe.models.efficientnet_lite import build_efficientnet_lite
from tlpipe.models.hub_layer import HubFeatureVector
from tlpipe.models.offline_modules import offline_module
from tlpipe.models.publish import export_hub_module
from tlpipe.pipeline.config import load_config

SIZE = (64, 64, 3)
IMAGENET = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


def _random_lite0(folder: str, source_images: np.ndarray) -> str:
    keras.utils.set_random_seed(0)
    network = build_efficientnet_lite("efficientnet_lite0")
    rgb = np.repeat(keras.ops.convert_to_numpy(keras.ops.image.resize(source_images, SIZE[:2])), 3, axis=-1)
    settle_batch_norm(network, rgb)
    return export_hub_module(network, folder, input_size=SIZE[:2])


def _adapted_small_cnn(folder: str, source_images: np.ndarray, source_labels: np.ndarray) -> str:
    """The home-made module behind an adapter that takes 64x64 RGB: area resize to 28x28, channel mean."""
    published = publish(CANDIDATES[0], source_images, source_labels, 2000, os.path.join(folder, "raw"))
    inner = HubFeatureVector(published["module"], trainable=True, name="small_cnn")
    inputs = keras.Input(SIZE, name="image")
    # bilinear with antialiasing: an area resize has no gradient, and fine-tuning differentiates through the module
    small = keras.layers.Resizing(28, 28, interpolation="bilinear", antialias=True, name="resize")(inputs)
    grey = keras.layers.Conv2D(1, 1, use_bias=False, kernel_initializer=keras.initializers.Constant(1 / 3),
                               trainable=False, name="channel_mean")(small)
    return export_hub_module(keras.Model(inputs, inner(grey), name="src5_adapted"), os.path.join(folder, "module"))


def _modules(work: str) -> dict[str, str]:
    images, labels = read_idx("train")
    source = images[np.isin(labels, [0, 1, 2, 3, 4])][:2000].astype("float32") / 255.0
    modules = {name: offline_module(name) for name in IMAGENET}
    random_dir = os.path.join(work, "modules", "lite0-random")
    modules["lite0-random"] = random_dir if os.path.isdir(random_dir) else _random_lite0(random_dir, source)
    adapted_dir = os.path.join(work, "modules", "src5-small-cnn")
    modules["src5-small-cnn"] = (os.path.join(adapted_dir, "module") if os.path.isdir(os.path.join(adapted_dir, "module"))
                                 else _adapted_small_cnn(adapted_dir, images, labels))
    return modules


def _fine_tune(trainer: Any, transformed: str, folder: str, handle: str) -> dict[str, Any]:
    summary_file = os.path.join(folder, "summary.json")
    summary = read_json(summary_file) if os.path.exists(summary_file) else train_transfer(
        trainer, transformed, folder, strategy="fine_tune_all", handle=handle)
    return {"test_accuracy": round(test_accuracy(summary["model_dir"], transformed), 4),
            "eval_accuracy": summary["eval_accuracy"], "train_s": summary["timings"]["train_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transformed", required=True, help="the default's transformed target (64x64 RGB)")
    parser.add_argument("--work", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--fine-tune-epochs", type=int, default=40)
    args = parser.parse_args()
    started = time.monotonic()
    results: dict[str, Any] = {"settings": vars(args)}

    def save() -> None:
        results["total_s"] = round(time.monotonic() - started, 1)
        write_json(args.output, results)

    modules = _modules(args.work)
    ranking = rank_candidates(list(modules.values()), args.transformed, os.path.join(args.work, "rank"))
    by_module = {entry["candidate"]: entry for entry in ranking["candidates"]}
    config = load_config(None, [f"trainer.fine_tune_epochs={args.fine_tune_epochs}"])
    per_candidate = []
    for name, module in modules.items():
        runs = [{"seed": seed, **_fine_tune(dataclasses.replace(config.trainer, seed=seed), args.transformed,
                                            os.path.join(args.work, "fine_tune", f"{name}-{seed}"), module)}
                for seed in args.seeds]
        accuracy = float(np.mean([run["test_accuracy"] for run in runs]))
        per_candidate.append({"name": name, "test_accuracy": round(accuracy, 4), "runs": runs,
                              "scores": by_module[module]["scores"]})
        print(f"[bench] {name}: fine-tuned {accuracy:.4f} {[r['test_accuracy'] for r in runs]}; "
              f"scores {by_module[module]['scores']}", flush=True)
        results["per_candidate"] = per_candidate
        save()
    accuracies = [entry["test_accuracy"] for entry in per_candidate]
    results["recommended"] = os.path.basename(os.path.normpath(ranking["recommended"]))
    results["correlation_with_fine_tuned_test_accuracy"] = {
        score: correlations([entry["scores"][score] for entry in per_candidate], accuracies)
        for score in SCORES if all(score in entry["scores"] for entry in per_candidate)}
    save()
    print(f"[bench] correlations {results['correlation_with_fine_tuned_test_accuracy']}", flush=True)
    regularized: dict[str, list] = {}
    for kind in ("none", "l2_sp", "bss"):
        trainer = dataclasses.replace(config.trainer, regularization=RegularizationConfig(kind=kind))
        regularized[kind] = [
            {"seed": seed, **_fine_tune(dataclasses.replace(trainer, seed=seed), args.transformed,
                                        os.path.join(args.work, "fine_tune", f"efficientnet_lite0-{seed}")
                                        if kind == "none" else os.path.join(args.work, kind, str(seed)),
                                        modules["efficientnet_lite0"])}
            for seed in args.seeds]
        print(f"[bench] {kind}: {[r['test_accuracy'] for r in regularized[kind]]}", flush=True)
        results["regularization_on_lite0"] = regularized
        save()


if __name__ == "__main__":
    main()
