"""Edge exports of a tlpipe serving export: LiteRT (TFLite) conversion, label metadata, the interpreter.

Formats (`EDGE_FORMATS`), each converted from the export's `serving_pixels`
signature (raw pixel values at the transformed geometry; the resize and
decoding stay with the app, the 0..255 -> [0, 1] scaling is inside):

- `tflite`: float32 weights and arithmetic; input float32 pixels in 0..255;
- `tflite_float16`: float16 weights (half the file), float32 arithmetic on CPU;
- `tflite_dynamic`: dynamic-range quantization, int8 weights, activations
  quantized on the fly; float32 input;
- `tflite_int8`: full integer: int8 weights and activations, calibrated on
  a sample of images the caller gives (the evaluator and `tlpipe export` take
  it from the train and unlabelled splits, never eval or test); input uint8
  pixels, output uint8 probabilities (scale and zero point in the tensors'
  quantization; with calibration images spanning 0..255 the input's is
  exactly 1 and 0, so raw pixels go in unchanged).

Each file carries a metadata entry `tlpipe` (JSON: the label names, the
format, the input's shape and type, per task for a multi-task model) that
`read_edge_metadata` reads back.

Why these libraries (measured 2026-12-05 on Python 3.11, TF 2.21):
- conversion: TensorFlow 2.21's `tf.lite.TFLiteConverter` is still the
  converter for TensorFlow graphs; the `ai-edge-litert` 2.3 wheel ships only
  the converter's flag protos, no converter. `from_saved_model` on a tlpipe export leaves the Keras 3
  variables as resource variables (the converted model fails with "READ_VARIABLE
  failed" or returns NaN), so the signature is converted with
  `from_concrete_functions` on the loaded SavedModel, which freezes them.
- interpreter: `ai_edge_litert.interpreter` (`ai-edge-litert`, a cp311 wheel
  with numpy / flatbuffers / protobuf as its only heavy dependencies, no
  conflict with TF 2.21's pins). `tf.lite.Interpreter` still exists in TF 2.21
  but warns at every construction that it "is deprecated and is scheduled for
  deletion"; the LiteRT package is what a device-side Python runs.
- metadata: `ai_edge_litert`'s flatbuffer schema and `flatbuffer_utils`
  (no TensorFlow needed to read it back; the TFLite Support metadata writer
  has no release for Python 3.11).

Text models cannot be exported: their input is raw strings and the
vectorizer's string ops are not LiteRT builtins (they would need the Flex
delegate, which devices do not ship by default). `unsupported_formats` says so.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import uuid
import warnings
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np

from tlpipe.models.plumbing.artifacts import write_atomically
from tlpipe.models.plumbing.errors import ConfigError, ModelError
from tlpipe.models.plumbing.layout import SAVED_MODEL_FILE

SAVED_MODEL = "saved_model"
TFLITE = "tflite"
TFLITE_FLOAT16 = "tflite_float16"
TFLITE_DYNAMIC = "tflite_dynamic"
TFLITE_INT8 = "tflite_int8"
EDGE_FORMATS = (TFLITE, TFLITE_FLOAT16, TFLITE_DYNAMIC, TFLITE_INT8)
FORMATS = (SAVED_MODEL, *EDGE_FORMATS)
CALIBRATED_FORMATS = (TFLITE_INT8,)
EDGE_SUFFIX = ".tflite"
METADATA_NAME = "tlpipe"
# Single-image predictions timed after the warm-up ones; the latency per image is their median.
LATENCY_RUNS = 30
LATENCY_WARMUP = 5
PREDICT_BATCH = 64


def edge_file_name(edge_format: str) -> str:
    """The file an edge format is written to: `<format>.tflite`."""
    check_format(edge_format, EDGE_FORMATS)
    return edge_format + EDGE_SUFFIX


def check_format(edge_format: str, allowed: Sequence[str] = FORMATS, key: str = "format") -> None:
    """ConfigError unless `edge_format` is one of `allowed`."""
    if edge_format not in allowed:
        raise ConfigError(key, edge_format, allowed)


def unsupported_formats(serving_metadata: dict[str, Any], formats: Iterable[str]) -> dict[str, str]:
    """{format: why this model cannot take it} for the edge formats among `formats` (empty: all fine)."""
    from tlpipe.models.serving import PIXELS_SIGNATURE

    wanted = [name for name in formats if name in EDGE_FORMATS]
    if serving_metadata.get("modality") == "text":
        why = ("it is a text model: its input is raw strings and its in-graph text vectorizer needs string ops "
               "that are not LiteRT builtins (they would need the Flex delegate, which devices do not ship)")
        return {name: why for name in wanted}
    if PIXELS_SIGNATURE not in serving_metadata.get("signatures", []):
        why = (f"its export has no {PIXELS_SIGNATURE} signature (it was exported by a tlpipe without edge export); "
               "train it again to export it")
        return {name: why for name in wanted}
    return {}


def convert(model_dir: str, edge_format: str, calibration: Optional[np.ndarray] = None, *,
            loaded: Any = None) -> bytes:
    """The LiteRT flatbuffer of `model_dir`'s `serving_pixels` signature in `edge_format`.

    `calibration`: uint8 images [N, H, W, C] for `tflite_int8` (required there, ignored otherwise).
    `loaded`: `tf.saved_model.load(model_dir)` when the caller has it (several formats of one model load it
    once; loading the default's model takes ~4 s of a ~17 s conversion).
    """
    import tensorflow as tf

    from tlpipe.models.serving import PIXELS_INPUT, PIXELS_SIGNATURE

    check_format(edge_format, EDGE_FORMATS)
    if edge_format in CALIBRATED_FORMATS and (calibration is None or len(calibration) == 0):
        raise ModelError(f"{edge_format} needs calibration images (a sample of the train or unlabelled split); "
                         "none were given")
    if not os.path.isfile(os.path.join(model_dir, SAVED_MODEL_FILE)):
        raise ModelError(f"cannot convert {model_dir!r}: it is not a SavedModel (no {SAVED_MODEL_FILE} inside)")
    loaded = loaded if loaded is not None else tf.saved_model.load(model_dir)
    if PIXELS_SIGNATURE not in loaded.signatures:
        raise ModelError(f"cannot convert {model_dir!r}: it has no {PIXELS_SIGNATURE} signature; "
                         "export it with this tlpipe (train it again)")
    converter = tf.lite.TFLiteConverter.from_concrete_functions([loaded.signatures[PIXELS_SIGNATURE]], loaded)
    if edge_format != TFLITE:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if edge_format == TFLITE_FLOAT16:
        converter.target_spec.supported_types = [tf.float16]
    if edge_format == TFLITE_INT8:
        converter.representative_dataset = lambda: (
            {PIXELS_INPUT: image[None].astype(np.float32)} for image in calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8
    try:
        with warnings.catch_warnings():  # the calibrator runs tf.lite.Interpreter, which warns it is deprecated
            warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
            return converter.convert()
    except Exception as error:  # the converter raises ConverterError, RuntimeError, ValueError alike
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelError(f"cannot convert {model_dir!r} to {edge_format}: the LiteRT converter failed ({first})") \
            from None


def embed_metadata(content: bytes, metadata: dict[str, Any]) -> bytes:
    """`content` with a `tlpipe` metadata entry holding `metadata` as JSON (replacing an earlier one)."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(metadata, sort_keys=True).encode("utf-8"), dtype=np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = [item for item in (model.metadata or []) if _name(item.name) != METADATA_NAME] + [entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def read_edge_metadata(path: str) -> dict[str, Any]:
    """The `tlpipe` metadata of an edge file (label names, format, input); ModelError when absent."""
    from ai_edge_litert.tools import flatbuffer_utils

    with open(path, "rb") as handle:
        model = flatbuffer_utils.convert_bytearray_to_object(bytearray(handle.read()))
    for item in model.metadata or []:
        if _name(item.name) == METADATA_NAME:
            return json.loads(bytes(np.asarray(model.buffers[item.buffer].data, dtype=np.uint8)).decode("utf-8"))
    raise ModelError(f"{path!r} has no {METADATA_NAME!r} metadata: it was not exported by tlpipe")


def _name(name: Any) -> str:
    return name.decode("utf-8") if isinstance(name, bytes) else str(name)


def export_edge(model_dir: str, edge_format: str, path: str, *,
                calibration: Optional[np.ndarray] = None, loaded: Any = None) -> dict[str, Any]:
    """Convert `model_dir` to `edge_format` (`loaded` as for `convert`), embed its label names, write `path`
    atomically.

    Returns {"format", "file", "size_bytes", "convert_seconds"}.
    """
    from tlpipe.models.serving import load_serving_metadata

    serving = load_serving_metadata(model_dir)
    refused = unsupported_formats(serving, [edge_format])
    if refused:
        raise ModelError(f"cannot export {model_dir!r} as {edge_format}: {refused[edge_format]}")
    started = time.perf_counter()
    content = convert(model_dir, edge_format, calibration, loaded=loaded)
    tasks = serving.get("tasks")
    metadata = {
        "format": edge_format,
        "label_names": serving["label_names"],
        **({"tasks": tasks} if tasks else {}),
        "input": {"shape": [*serving["image_size"], serving["channels"]],
                  "dtype": "uint8" if edge_format == TFLITE_INT8 else "float32", "range": [0, 255]},
    }
    content = embed_metadata(content, metadata)

    def write(tmp_path: str) -> None:
        with open(tmp_path, "wb") as handle:
            handle.write(content)

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_atomically(path, write, f"{path}.tmp-{uuid.uuid4().hex[:8]}")
    return {"format": edge_format, "file": os.path.abspath(path), "size_bytes": len(content),
            "convert_seconds": round(time.perf_counter() - started, 2)}


@dataclasses.dataclass
class EdgeModel:
    """An edge file in the LiteRT interpreter: probabilities for raw uint8 images, per task if several."""

    path: str
    num_threads: Optional[int] = None

    def __post_init__(self) -> None:
        from ai_edge_litert.interpreter import Interpreter

        if not os.path.isfile(self.path):
            raise ModelError(f"{self.path!r} does not exist; expected a .tflite file")
        interpreter = Interpreter(model_path=self.path, num_threads=self.num_threads)
        self._runner = interpreter.get_signature_runner()
        inputs = self._runner.get_input_details()
        self._input_name = next(iter(inputs))
        self._input = inputs[self._input_name]
        self._outputs = self._runner.get_output_details()

    def predict(self, images: np.ndarray, batch_size: int = PREDICT_BATCH) -> dict[str, np.ndarray]:
        """{output name: float32 probabilities [N, K]} for uint8 images [N, H, W, C]."""
        chunks = [self._invoke(images[start:start + batch_size]) for start in range(0, len(images), batch_size)]
        return {name: np.concatenate([chunk[name] for chunk in chunks]) for name in self._outputs}

    def probabilities(self, images: np.ndarray, batch_size: int = PREDICT_BATCH) -> np.ndarray:
        """The only output's probabilities [N, K] (a single-task model)."""
        outputs = self.predict(images, batch_size)
        if len(outputs) != 1:
            raise ModelError(f"{self.path!r} has {len(outputs)} outputs (a multi-task model); use predict()")
        return next(iter(outputs.values()))

    def _invoke(self, images: np.ndarray) -> dict[str, np.ndarray]:
        results = self._runner(**{self._input_name: _quantize(images, self._input)})
        return {name: _dequantize(results[name], detail) for name, detail in self._outputs.items()}


def median_latency_ms(call: Callable[[], Any], runs: int = LATENCY_RUNS, warmup: int = LATENCY_WARMUP) -> float:
    """Median milliseconds of `call()` (one single-image prediction) over `runs`, after `warmup` calls."""
    for _ in range(warmup):
        call()
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        timings.append(time.perf_counter() - started)
    return float(np.median(timings) * 1000.0)


def _quantize(images: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """Raw pixels in the input's type: as they are for float inputs, by its scale and zero point for integers."""
    dtype = detail["dtype"]
    if np.issubdtype(dtype, np.floating):
        return images.astype(dtype)
    scale, zero_point = detail["quantization"]
    values = images.astype(np.float32) / scale + zero_point if scale else images.astype(np.float32)
    info = np.iinfo(dtype)
    return np.clip(np.round(values), info.min, info.max).astype(dtype)


def _dequantize(values: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    if np.issubdtype(values.dtype, np.floating):
        return values.astype(np.float32)
    scale, zero_point = detail["quantization"]
    return (values.astype(np.float32) - zero_point) * scale
