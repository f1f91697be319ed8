"""ingest component: a data source read into split, sampled tf.Example shards with Beam (spec.py: the ingest step)."""
