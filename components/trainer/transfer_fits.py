"""The names of the transfer fits, in a module that imports nothing.

A transfer fit is a head on the frozen module, then what of the base it
unfreezes (`executor.unfreeze_for`). The strategies of the same names
(components/strategies/transfer.py), self-training's teachers and students, and
multi-task's fit all name one of these; the config modules and the strategy
plugins read them without importing TensorFlow.
"""

FEATURE_EXTRACTION = "feature_extraction"
FINE_TUNE_TOP = "fine_tune_top"
FINE_TUNE_ALL = "fine_tune_all"
TRANSFER_FITS = (FEATURE_EXTRACTION, FINE_TUNE_TOP, FINE_TUNE_ALL)
