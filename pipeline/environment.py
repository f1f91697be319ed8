"""What a run's numbers depend on besides the config and the data, recorded in run.json.

Why: with the same seeds, tlpipe's results are identical across processes on
one machine, not across machines: TensorFlow picks its oneDNN kernels by the
CPU's instruction sets, and the float sums they compute differ in the last
digits (measured: the same default gave feature_extraction 0.723 and 0.642 on
two x86-64 machines). A record that names the CPU features, the library
versions and the switches that change kernels says which results are
comparable. Read without importing TensorFlow.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
from typing import Any

# Instruction sets TensorFlow's CPU kernels (oneDNN, Eigen) choose by.
KERNEL_CPU_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16",
                    "amx_tile", "amx_bf16", "amx_int8")
# Switches that change which kernels run, or whether their results are reproducible.
KERNEL_SWITCHES = ("TF_ENABLE_ONEDNN_OPTS", "ONEDNN_MAX_CPU_ISA", "TF_DETERMINISTIC_OPS", "TF_CUDNN_DETERMINISTIC",
                   "OMP_NUM_THREADS")
PACKAGES = ("tensorflow", "keras", "tensorflow-hub", "apache-beam", "tensorflow-model-analysis", "kfp", "numpy")


def environment(cpuinfo_path: str = "/proc/cpuinfo") -> dict[str, Any]:
    """The machine, the libraries and the kernel switches of this process."""
    model, flags = _cpu(cpuinfo_path)
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu": model,
        "cpu_count": os.cpu_count(),
        "cpu_kernel_flags": [flag for flag in KERNEL_CPU_FLAGS if flag in flags],
        "packages": {name: _version(name) for name in PACKAGES},
        "switches": {name: os.environ[name] for name in KERNEL_SWITCHES if name in os.environ},
    }


def _cpu(cpuinfo_path: str) -> tuple[str, set[str]]:
    """The CPU model name and its flags from /proc/cpuinfo ("" and none where it cannot be read)."""
    model, flags = "", set()
    try:
        with open(cpuinfo_path, encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and not model:
                    model = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return model or platform.processor(), flags


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None
