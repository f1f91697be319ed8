"""evaluator component: TFMA evaluation of the candidates against their references and the model in production,
the blessing and the report (spec.py: the evaluate step).
"""
