"""tlpipe.pipeline: configuration, errors, pipeline definition, runners and CLI.

Kept free of heavy imports so that `tlpipe.models.errors`, `.config` and
`.example_format` can be used by every other package without loading TensorFlow.
"""
