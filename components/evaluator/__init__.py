"""evaluator component."""
