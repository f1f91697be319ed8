"""run.json records what results depend on besides config and data: CPU kernel flags, versions, switches."""

import importlib.metadata

import pytest

from tlpipe.pipeline.environment import KERNEL_CPU_FLAGS, KERNEL_SWITCHES, environment

pytestmark = pytest.mark.quick


def test_the_environment_names_cpu_kernel_flags_versions_and_switches(tmp_path, monkeypatch):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: fpu sse4_2 avx avx2 fma amx_tile\n"
                       "processor\t: 1\nmodel name\t: Test CPU 9000\nflags\t\t: fpu sse4_2 avx avx2 fma amx_tile\n")
    for switch in KERNEL_SWITCHES:
        monkeypatch.delenv(switch, raising=False)
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    found = environment(str(cpuinfo))
    assert found["cpu"] == "Test CPU 9000"
    assert found["cpu_kernel_flags"] == ["sse4_2", "avx", "avx2", "fma", "amx_tile"]  # in KERNEL_CPU_FLAGS' order
    assert found["switches"] == {"TF_ENABLE_ONEDNN_OPTS": "0"}
    assert found["packages"]["tensorflow"] == importlib.metadata.version("tensorflow")
    assert set(found["cpu_kernel_flags"]) <= set(KERNEL_CPU_FLAGS)


def test_an_unreadable_cpuinfo_leaves_the_flags_empty(tmp_path):
    found = environment(str(tmp_path / "missing"))
    assert found["cpu_kernel_flags"] == [] and isinstance(found["cpu"], str)
