"""File names that several steps write or read, declared once.

Kept apart from `fit.py` so that components can name these files (the
evaluator reads the history) without importing TensorFlow.
"""

HISTORY_FILE = "history.json"
# Every step's record of what it did (trainer, evaluator, sweep point), written last: its presence means the
# step completed.
SUMMARY_FILE = "summary.json"
# Its human-readable twin (the evaluator's).
SUMMARY_MD = "summary.md"
# What a tlpipe serving export carries beside its SavedModel (label names, config, history).
SERVING_METADATA_FILE = "tlpipe.json"
SAVED_MODEL_FILE = "saved_model.pb"
CHECKPOINT_DIR = "checkpoints"
LOG_DIR = "logs"
# Edge (LiteRT / TFLite) exports: one `<format>.tflite` per format in this folder of a pushed version (or of the
# evaluation that checked them), with the check record beside them.
EDGE_DIR = "edge"
EDGE_RECORD_FILE = "edge.json"
# The domain shift measured between a source and a target sample (a domain-adaptation train step's, `tlpipe shift`'s).
SHIFT_FILE = "shift.json"
# The page a report folder opens with (the evaluator's report, the sweep's).
INDEX_FILE = "index.html"
