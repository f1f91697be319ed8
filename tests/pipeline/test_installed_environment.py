"""What the README's installation gives a user's own scripts, checked in a fresh interpreter."""

import os
import shutil
import subprocess
import sys


def _fresh(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_tensorflow_hub_imports_in_a_fresh_interpreter():
    # tensorflow_hub 0.16.1 imports pkg_resources, which setuptools >= 81 no longer ships (setup.cfg pins below).
    result = _fresh("import tensorflow_hub, sys; print(tensorflow_hub.__version__); "
                    "print(any(name.startswith('tlpipe.') for name in sys.modules))")  # not through tlpipe
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["0.16.1", "False"]


def test_tensorboard_is_installed_for_the_trainers_logs():
    result = _fresh("import tensorboard, tensorboard.main; print(tensorboard.__version__)")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("2.21")


def test_the_suite_keeps_each_test_file_on_one_xdist_worker(tmp_path):
    # ./quickstart.sh test runs `-n N --dist loadgroup` with tests/conftest.py's one group per file, so a
    # file's module fixtures (minutes of kfp.local) are built once; pytest >= 9.2 silently breaks that
    # grouping with the xdist releases there are (pytest-dev/pytest-xdist#1386), hence setup.cfg's pin.
    shutil.copy(os.path.join(os.path.dirname(__file__), "..", "conftest.py"), tmp_path / "conftest.py")
    for name in ("test_one.py", "test_two.py"):
        (tmp_path / name).write_text(
            "import os\n\nimport pytest\n\n\n@pytest.mark.parametrize('n', range(8))\n"
            "def test_worker(n):\n"
            f"    with open(os.path.join({str(tmp_path)!r}, {name!r} + '.workers'), 'a') as handle:\n"
            "        handle.write(os.environ['PYTEST_XDIST_WORKER'] + '\\n')\n")
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2",
                             "--dist", "loadgroup", str(tmp_path)], capture_output=True, text=True, timeout=300,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    for name in ("test_one.py", "test_two.py"):
        workers = (tmp_path / f"{name}.workers").read_text().split()
        assert len(workers) == 8 and len(set(workers)) == 1, (name, workers)
