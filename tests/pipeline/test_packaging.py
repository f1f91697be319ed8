"""The three top-level folders install as one import name, `tlpipe`."""

import configparser
import os
import pathlib

import pytest

import tlpipe.components
import tlpipe.models
import tlpipe.pipeline

pytestmark = pytest.mark.quick

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _setup_cfg() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    return parser


def test_folders_are_mapped_into_the_tlpipe_namespace():
    for module, folder in [(tlpipe.pipeline, "pipeline"), (tlpipe.components, "components"), (tlpipe.models, "models")]:
        assert pathlib.Path(module.__file__).resolve().parent == ROOT / folder


def test_setup_cfg_lists_every_package_folder():
    listed = set(_setup_cfg()["options"]["packages"].split())
    on_disk = set()
    for folder in ("pipeline", "components", "models"):
        for dirpath, _, filenames in os.walk(ROOT / folder):
            if "__init__.py" in filenames and "__pycache__" not in dirpath:
                relative = pathlib.Path(dirpath).relative_to(ROOT)
                on_disk.add("tlpipe." + ".".join(relative.parts))
    assert listed == on_disk


def test_console_script_points_at_the_cli():
    scripts = _setup_cfg()["options.entry_points"]["console_scripts"]
    assert scripts.strip() == "tlpipe = tlpipe.pipeline.cli:main"


def test_importing_the_packages_does_not_load_tensorflow():
    import subprocess
    import sys

    code = (
        "import sys, tlpipe.pipeline.config, tlpipe.pipeline.cli, tlpipe.models; "
        "print('tensorflow' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
