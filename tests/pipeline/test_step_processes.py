"""Ending a run's step processes: every descendant ends, politely first (SIGINT), by force when it ignores that."""

import signal
import subprocess
import sys
import textwrap

import pytest

from tlpipe.pipeline.step_processes import alive, descendants, end_descendants

pytestmark = pytest.mark.quick

# A parent that starts a child (which starts a grandchild), prints the child's pid and sleeps; the grandchild
# prints "ready" once it runs. With `stubborn`, the grandchild ignores SIGINT, as a process busy in native code may.
_TREE = textwrap.dedent("""
    import subprocess, sys, time
    grandchild = ("import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN) if {stubborn} else None; "
                  "print('ready', flush=True); time.sleep(600)")
    child = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {{grandchild!r}}]); time.sleep(600)"
    process = subprocess.Popen([sys.executable, "-c", child])
    print(process.pid, flush=True)
    time.sleep(600)
""")


@pytest.mark.parametrize("stubborn", [False, True], ids=["ends on SIGINT", "ignores SIGINT"])
def test_every_descendant_ends_and_the_process_itself_stays(stubborn):
    root = subprocess.Popen([sys.executable, "-c", _TREE.format(stubborn=stubborn)], stdout=subprocess.PIPE,
                            text=True)
    try:
        lines = {root.stdout.readline().strip() for _ in range(2)}  # the child's pid, the grandchild's "ready"
        child = int(min(lines))  # digits sort before letters
        tree = descendants(root.pid)
        assert tree[0] == child
        assert end_descendants(root.pid, grace_s=1.0) == tree
        assert not [pid for pid in tree if alive(pid)] and alive(root.pid)
    finally:
        root.send_signal(signal.SIGKILL)
        root.wait()
