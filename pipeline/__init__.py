"""tlpipe.pipeline: the pipelines' graph, configuration, adapters, runners and CLI.

The top layer: it imports `tlpipe.components` and `tlpipe.models`, and neither
imports it. `pipeline.py` defines the pipelines once; `adapters.py` runs the
component declarations in this process or as kfp components; `config.py` is
the one configuration; `local_runner.py` and `kubeflow_runner.py` run the
pipelines here or on a cluster; `sweep.py` and `sweep_pipeline.py` are the
data-efficiency sweep; `cli*.py` the `tlpipe` command. The package itself
imports nothing, so each module loads only what it needs (the errors, the
example format and artifact I/O live in `tlpipe.models`).
"""
