"""How the suite spreads over pytest-xdist workers (`./quickstart.sh test` runs it with `--dist loadgroup`).

Each test file is one group, so the module- and session-scoped fixtures of a
file (tiny datasets, hub modules, trained models) are built once, on one
worker. The tests that read the two `tlpipe run`s of `two_cli_runs`
(tests/pipeline/conftest.py, minutes of kfp.local) form one group across their
files, so those runs happen once. Without xdist the marks change nothing.

Test tiers: a test file that declares `pytestmark = pytest.mark.quick` is in
the quick tier (`./quickstart.sh test -m quick`: pure logic, small Keras, no
`tlpipe` child process, a few minutes in all); the rest run in the full suite
only. A quick test that asks for a fixture running `tlpipe` in a child process
is refused at collection.
"""

import pytest

SHARED_RUN_FIXTURES = ("two_cli_runs",)
# Fixtures that run `tlpipe` (kfp.local and TensorFlow start-ups) in child processes: not for the quick tier.
CHILD_PROCESS_FIXTURES = (*SHARED_RUN_FIXTURES, "tlpipe_process")
QUICK = "quick"


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook turns the marks into node-id suffixes
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        slow = [name for name in CHILD_PROCESS_FIXTURES if name in fixtures]
        if slow and item.get_closest_marker(QUICK):
            raise pytest.UsageError(f"{item.nodeid} is marked {QUICK!r} but uses {slow}, which run tlpipe in child "
                                    "processes: take the mark off its file, or the fixture out of the test")
        shared = [name for name in SHARED_RUN_FIXTURES if name in fixtures]
        item.add_marker(pytest.mark.xdist_group(shared[0] if shared else item.nodeid.split("::")[0]))
