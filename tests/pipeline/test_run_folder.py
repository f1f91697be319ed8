"""A run's own kfp.local folder is the one its steps marked with its run id, not the newest under kfp/.

Two runs of one config on one root at once (issue #26): each creates a folder under kfp/, and before, the
record of the one that started first took the other's (the newest) and called every step it ran "cached".
"""

import pytest

from tlpipe.pipeline.adapters import RUN_MARK_FILE
from tlpipe.pipeline.local_runner import _own_run_dir

pytestmark = pytest.mark.quick


def _task(kfp_root, folder: str, task: str, run_id: str) -> None:
    (kfp_root / folder / task).mkdir(parents=True)
    (kfp_root / folder / task / RUN_MARK_FILE).write_text(run_id)


def test_each_of_two_concurrent_runs_finds_its_own_folder(tmp_path):
    kfp_root = tmp_path / "kfp"
    _task(kfp_root, "tiny-2026-12-05-10-00-00-000000", "ingest", "an-earlier-run")
    before = {"tiny-2026-12-05-10-00-00-000000"}
    _task(kfp_root, "tiny-2026-12-05-10-00-01-000000", "ingest", "first")
    _task(kfp_root, "tiny-2026-12-05-10-00-02-000000", "ingest", "second")  # newer, but the other run's
    _task(kfp_root, "tiny-2026-12-05-10-00-01-000000", "train", "first")
    assert _own_run_dir(str(kfp_root), before, "first") == str(kfp_root / "tiny-2026-12-05-10-00-01-000000")
    assert _own_run_dir(str(kfp_root), before, "second") == str(kfp_root / "tiny-2026-12-05-10-00-02-000000")
    assert _own_run_dir(str(kfp_root), before, "an-earlier-run") == ""  # not created by this run
    assert _own_run_dir(str(kfp_root), before, "all-cached") == ""
