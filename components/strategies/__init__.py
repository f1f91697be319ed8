"""strategies: every way tlpipe trains a model on the target task, as plugins, and the train step that runs one.

`plugin.py` says what a strategy is (a typed `Strategy` entry, its
`TrainFunction`, the `TrainArgs` it gets); one module per family holds its
entries and train functions (`transfer.py`, `self_training.py`, `domain.py`,
`multi_task.py`); `registry.py` registers them (one line per module) and
answers what a run of some of them needs; `train_step.py` is the train step.
This package sits above the trainer (the implementations) and the evaluator
(whose evaluate steps a strategy may declare as its own), and nothing below
imports it.
"""
