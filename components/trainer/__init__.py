"""trainer component: the training engine every strategy shares (engine.py), the strategies' implementations
(executor.py: the transfer fits and the baseline; self_training.py, domain_adaptation.py, multi_task.py), and
source pre-training (spec.py). The strategies themselves, their registry and the train step that runs one are
in components/strategies/.
"""
