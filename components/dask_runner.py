"""Beam's DaskRunner, made to run tlpipe's ingest and transform graphs to the end.

`beam.runner: dask` runs a pipeline on a dask.distributed cluster with
Beam's own DaskRunner (`apache_beam.runners.dask`). Four things it does not
do as it stands in apache-beam 2.77, which this subclass adds:

- it computes only the last Dask bag of the graph ("connected to the full
  graph", its comment says): a graph with several sinks (a folder per split,
  the statistics files) would write one of them. `run_pipeline` here computes
  every bag that no other transform consumes.
- without `--dask_client_address` / `--dask_scheduler_file` its Client starts a
  LocalCluster with one worker per core; here it starts `num_workers` worker
  processes of one thread each (`beam.num_workers`) and closes them when the
  pipeline is done.
- every task that reads a side input computes the side input's branch again;
  here it is computed once, on the cluster, while the graph is translated
  (`_SideInputComputedOnce`).
- `beam.Create` becomes a bag of 128 elements per partition, so a list of a few
  files or IDX chunks is one task on one worker; here each created element is
  its own partition (the work item, as Beam's other runners treat it), unless
  the options say `--dask_npartitions` or `--dask_partition_size`.

What its translation still lacks (Create, ParDo, GroupByKey and Flatten only)
shapes the graphs that run on it: sources are read inside ParDos from file
lists made with Create (no `beam.io.Read`: it would yield nothing), outputs are
written inside ParDos (`sharded_writes`), and no ParDo has more than one output
(the DaskRunner does not keep tagged outputs apart: every consumer would see
them all). Side inputs are computed before the graph runs and shipped with
its tasks: keep them small.
"""

from __future__ import annotations

import os
from typing import Any, Iterator
from unittest import mock

from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.dask import dask_runner as beam_dask_runner
from apache_beam.runners.dask.dask_runner import DaskOptions, DaskRunner, DaskRunnerResult
from apache_beam.runners.dask.overrides import dask_overrides
from apache_beam.runners.dask.transform_evaluator import get_windowed_value

_ONE_ELEMENT_PER_PARTITION = {"partition_size": 1}


class _SideInputComputedOnce:
    """A side input's values, computed on the cluster once, when the ParDo reading it is translated.

    Beam's `DaskBagWindowedIterator` holds the side input's bag and computes it
    in every task that reads it: each partition of the consumer ran the side
    input's whole branch again (ingest's sampled ids: a full read of the train
    split per chunk of it, quadratic in the data). These values are small by
    nature (a label set, the ids of k-shot samples) and travel with the tasks.
    """

    def __init__(self, bag: Any, window_fn: Any):
        self.values = [get_windowed_value(value, window_fn) for value in bag.compute()]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.values)


def _nothing(partition: Any) -> list:
    """What the run returns to the driver: nothing (the sinks wrote their files)."""
    return []


class _ClosingResult(DaskRunnerResult):
    """The run's result; closes the client (and the local cluster it started) once the run is over."""

    def wait_until_finish(self, duration: Any = None) -> str:
        try:
            return super().wait_until_finish(duration)
        finally:
            cluster = self.client.cluster
            self.client.close()
            if cluster is not None:
                cluster.close()


class AllSinksDaskRunner(DaskRunner):
    """Beam's DaskRunner computing every sink of the graph on `num_workers` local workers or a given cluster."""

    def __init__(self, num_workers: int):
        super().__init__()
        self.num_workers = num_workers

    def run_pipeline(self, pipeline: Any, options: PipelineOptions) -> DaskRunnerResult:
        import dask.bag
        import dask.distributed as distributed

        dask_options = options.view_as(DaskOptions).get_all_options(drop_default=True, current_only=True)
        bag_kwargs = DaskOptions._extract_bag_kwargs(dask_options) or dict(_ONE_ELEMENT_PER_PARTITION)
        if dask_options.get("address") or dask_options.get("scheduler_file"):
            client = distributed.Client(**dask_options)
        else:
            environ = dict(os.environ)
            cluster = distributed.LocalCluster(n_workers=self.num_workers, threads_per_worker=1, processes=True,
                                               dashboard_address=None)
            # Each nanny sets its pre-spawn variables (OMP_NUM_THREADS=1 and the like) in this process's
            # environment to hand them to the worker it spawns; the rest of this process keeps its own.
            os.environ.clear()
            os.environ.update(environ)
            client = distributed.Client(cluster, **dask_options)
        pipeline.replace_all(dask_overrides())
        visitor = self.to_dask_bag_visitor(bag_kwargs)
        with mock.patch.object(beam_dask_runner, "DaskBagWindowedIterator", _SideInputComputedOnce):
            pipeline.visit(visitor)  # the client is the default scheduler here: side inputs compute on the cluster
        consumed = {value.producer for node in visitor.bags for value in node.inputs}
        consumed |= {side.pvalue.producer for node in visitor.bags for side in node.side_inputs}
        sinks = [bag for node, bag in visitor.bags.items() if node not in consumed]
        # One collection over every sink: optimizing the sinks one by one fuses their shared branches under the
        # same key names in different ways, which the scheduler reports as conflicting tasks.
        everything = dask.bag.concat(sinks).map_partitions(_nothing)
        return _ClosingResult(client, [client.compute(everything)])
