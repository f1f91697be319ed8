"""What the README's installation gives a user's own scripts, checked in a fresh interpreter."""

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
