"""How the suite spreads over pytest-xdist workers (`./quickstart.sh test` runs it with `--dist loadgroup`).

Each test file is one group, so the module- and session-scoped fixtures of a
file (tiny datasets, hub modules, trained models) are built once, on one
worker. The tests that read the two `tlpipe run`s of `two_cli_runs`
(tests/pipeline/conftest.py, minutes of kfp.local) form one group across their
files, so those runs happen once. Without xdist the marks change nothing.
"""

import pytest

SHARED_RUN_FIXTURES = ("two_cli_runs",)


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook turns the marks into node-id suffixes
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        shared = [name for name in SHARED_RUN_FIXTURES if name in getattr(item, "fixturenames", ())]
        item.add_marker(pytest.mark.xdist_group(shared[0] if shared else item.nodeid.split("::")[0]))
