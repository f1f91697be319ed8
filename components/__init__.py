"""tlpipe.components: ingest, transform, trainer, evaluator and pusher.

Each component is a subpackage split the TFX way: `config.py` holds the thin,
validated spec of its arguments (cheap to import, no TensorFlow) and
`executor.py` does the work over artifact paths.
"""
