"""tlpipe.components: the pipeline's steps: ingest, transform, trainer, rank, evaluator, pusher and sweep.

Each component is a subpackage. Its `spec.py` declares its steps once (a
`ComponentSpec`: config sections, run-time parameters, artifacts, executor)
and holds the thin step functions the pipeline calls; its `config.py`, where
it has one, holds the thin, validated spec of its arguments (cheap to import,
no TensorFlow); `executor.py` and the other modules do the work over artifact
paths. Shared by all: `spec.py` (the declaration types and `StepArgs`),
`config_schema.py` (typed config sections), and the Beam helpers `beam.py`,
`beam_errors.py` and `checked_tfrecords.py`. The middle layer: it imports
`tlpipe.models`, never `tlpipe.pipeline`.
"""
