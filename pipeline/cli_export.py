"""`tlpipe export`: an edge (LiteRT / TFLite) file of a model already trained or pushed.

    tlpipe export --model DIR --format FORMAT -o FILE [--calibration DIR] [--examples DIR]
                  [--max-drop X] [--calibration-examples N] [--seed N] [--confidence-level X]

`--model`: a tlpipe serving export (a pushed version `<serving_dir>/<N>`, or
a train step's `model/` folder; the train step's folder itself is accepted
too). `--calibration`: a transformed dataset whose train / unlabelled splits
calibrate `tflite_int8` (default: `--examples`). `--examples`: a transformed
dataset whose test split checks the file as the evaluator does
(components/evaluator/edge_check.py): its accuracy, the paired difference to
the SavedModel and the latency are printed, and a drop surely above
`--max-drop` is an error and writes nothing. Without `--examples` the file is
written unchecked.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from typing import Any, Callable, Optional

from tlpipe.models.plumbing.errors import ConfigError

MODEL_SUBDIR = "model"


def register(commands: Any, add_config_arguments: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add `export` to the `tlpipe` sub-command parsers (it reads no pipeline config)."""
    from tlpipe.components.evaluator.config import EvaluatorConfig
    from tlpipe.models.edge import EDGE_FORMATS

    defaults = EvaluatorConfig()
    export = commands.add_parser("export", help="convert a trained or pushed model to an edge (LiteRT) file")
    export.add_argument("--model", required=True, metavar="DIR", help="a tlpipe serving export or pushed version")
    export.add_argument("--format", required=True, choices=EDGE_FORMATS, help="the edge format")
    export.add_argument("--output", "-o", required=True, metavar="FILE", help="the .tflite file to write")
    export.add_argument("--calibration", metavar="DIR",
                        help="transformed dataset whose train/unlabeled splits calibrate tflite_int8 "
                             "(default: --examples)")
    export.add_argument("--examples", metavar="DIR",
                        help="transformed dataset whose test split checks the file against the SavedModel")
    export.add_argument("--max-drop", type=float, default=defaults.edge_max_drop,
                        help="accuracy the file may surely lose against the SavedModel (evaluator.edge_max_drop)")
    export.add_argument("--calibration-examples", type=int, default=defaults.edge_calibration_examples,
                        help="images that calibrate tflite_int8")
    export.add_argument("--confidence-level", type=float, default=defaults.confidence_level,
                        help="level of the paired difference's interval")
    export.add_argument("--seed", type=int, default=defaults.seed, help="seeds the calibration sample and bootstrap")
    export.set_defaults(handler=_cmd_export)


def _cmd_export(args: argparse.Namespace) -> int:
    result = export_model(args.model, args.format, args.output, calibration_dir=args.calibration,
                          examples_dir=args.examples, max_drop=args.max_drop,
                          calibration_examples=args.calibration_examples,
                          confidence_level=args.confidence_level, seed=args.seed)
    line = f"wrote {result['file']} ({args.format}, {result['size_bytes'] / 1e6:.2f} MB)"
    if "accuracy" in result:
        difference = result["difference"]
        line += (f"; test accuracy {result['accuracy']:.4f} (SavedModel {result['saved_model_accuracy']:.4f}), "
                 f"difference {difference['value']:+.4f} [{difference['lower']:+.4f}, {difference['upper']:+.4f}], "
                 f"{result['latency_ms']:.2f} ms per image")
    else:
        line += "; not checked (no --examples)"
    print(line)
    return 0


def export_model(model: str, edge_format: str, output: str, *, calibration_dir: Optional[str] = None,
                 examples_dir: Optional[str] = None, max_drop: float = 0.01, calibration_examples: int = 200,
                 confidence_level: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Write `model` as `edge_format` into `output`, checked on `examples_dir`'s test split when given."""
    from tlpipe.components.evaluator.config import EvaluatorConfig
    from tlpipe.components.evaluator.edge_check import EdgeCheckSettings, check_edge_formats
    from tlpipe.models.edge import CALIBRATED_FORMATS, edge_file_name
    from tlpipe.models.plumbing.errors import ModelError

    model_dir = _serving_export(model)
    EvaluatorConfig(edge_max_drop=max_drop, edge_calibration_examples=calibration_examples,
                    confidence_level=confidence_level).validate()
    calibration_dir = calibration_dir or examples_dir
    if edge_format in CALIBRATED_FORMATS and not calibration_dir:
        raise ConfigError("--calibration", None, f"a transformed dataset folder: {edge_format} is calibrated on a "
                          "sample of its train / unlabeled splits")
    if not examples_dir:
        return _export_unchecked(model_dir, edge_format, output, calibration_dir, calibration_examples, seed)
    _check_fits(model_dir, examples_dir)
    settings = EdgeCheckSettings(max_drop=max_drop, confidence_level=confidence_level, seed=seed,
                                 calibration_examples=calibration_examples)
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(output))) as scratch:
        record = check_edge_formats(model_dir, [edge_format], examples_dir, scratch, settings,
                                    calibration_dir=calibration_dir)
        if record["refused"]:
            raise ModelError(f"cannot export {model_dir!r} as {edge_format}: {record['refused'][edge_format]}")
        if not record["passed"]:
            raise ModelError(" ".join(record["reasons"]) + " Nothing was written.")
        os.replace(os.path.join(scratch, edge_file_name(edge_format)), output)
    return {**record["results"][edge_format], "file": os.path.abspath(output),
            "saved_model_accuracy": record["saved_model"]["accuracy"]}


def _export_unchecked(model_dir: str, edge_format: str, output: str, calibration_dir: Optional[str],
                      calibration_examples: int, seed: int) -> dict[str, Any]:
    from tlpipe.components.evaluator.edge_check import calibration_sample
    from tlpipe.models.edge import CALIBRATED_FORMATS, export_edge
    from tlpipe.models.serving import load_serving_metadata

    calibration = None
    if edge_format in CALIBRATED_FORMATS:
        serving = load_serving_metadata(model_dir)
        calibration = calibration_sample(calibration_dir, calibration_examples, seed,
                                         [*serving["image_size"], serving["channels"]]).images
    return export_edge(model_dir, edge_format, output, calibration=calibration)


def _serving_export(model: str) -> str:
    """The serving export under `model`: the folder itself, or a train step's `model/` inside it."""
    from tlpipe.models.plumbing.layout import SAVED_MODEL_FILE, SERVING_METADATA_FILE

    for folder in (model, os.path.join(model, MODEL_SUBDIR)):
        if os.path.isfile(os.path.join(folder, SAVED_MODEL_FILE)) and \
                os.path.isfile(os.path.join(folder, SERVING_METADATA_FILE)):
            return os.path.abspath(folder)
    raise ConfigError("--model", model, f"a tlpipe serving export (a folder with {SAVED_MODEL_FILE} and "
                      f"{SERVING_METADATA_FILE}: a pushed version, or a train step's output)")


def _check_fits(model_dir: str, examples_dir: str) -> None:
    """The model must predict the dataset's classes from its images (as the evaluator checks)."""
    from tlpipe.components.evaluator.inputs import checked_model, evaluation_data

    checked_model("model", model_dir, evaluation_data(examples_dir, "test"))

