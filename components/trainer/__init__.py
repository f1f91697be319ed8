"""trainer component: one train step per strategy (strategies.py: the registry) and source pre-training
(spec.py: both steps).
"""
