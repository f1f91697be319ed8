"""File names of what the fits write into their output folder.

Kept apart from `fit.py` so that components can name these files (the
evaluator reads the history) without importing TensorFlow.
"""

HISTORY_FILE = "history.json"
CHECKPOINT_DIR = "checkpoints"
LOG_DIR = "logs"
