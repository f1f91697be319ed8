"""Reading PyTorch's legacy state-dict format without PyTorch: the real Lite0 file, truncation, refusal of code."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from tlpipe.models.efficientnet_lite import weights_file
from tlpipe.models.plumbing.errors import ModelError
from tlpipe.models.torch_weights import MAGIC_NUMBER, PROTOCOL_VERSION, read_legacy_state_dict

pytestmark = pytest.mark.quick

SYS_INFO = {"protocol_version": PROTOCOL_VERSION, "little_endian": True,
            "type_sizes": {"short": 2, "int": 4, "long": 4}}


@pytest.fixture(scope="module")
def lite0_state() -> dict[str, np.ndarray]:
    return read_legacy_state_dict(weights_file("efficientnet_lite0"))


def test_reads_every_tensor_of_the_lite0_file_with_its_shape_and_dtype(lite0_state):
    assert len(lite0_state) == 296
    assert sum(value.size for value in lite0_state.values()) == 4_694_073
    assert lite0_state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert lite0_state["_conv_stem.weight"].dtype == np.float32
    assert lite0_state["_blocks.15._depthwise_conv.weight"].shape == (1152, 1, 3, 3)
    assert lite0_state["_fc.weight"].shape == (1000, 1280)
    assert lite0_state["_bn0.num_batches_tracked"].dtype == np.int64
    assert lite0_state["_bn0.num_batches_tracked"].shape == ()
    # Real values, not zeros or garbage: batch-norm variances are finite and never negative.
    variances = [v for k, v in lite0_state.items() if k.endswith("running_var")]
    assert len(variances) == 49 and all(np.isfinite(v).all() and (v >= 0).all() for v in variances)
    assert 0.01 < float(np.abs(lite0_state["_conv_stem.weight"]).mean()) < 10


def _write_header(handle) -> None:
    for item in (MAGIC_NUMBER, PROTOCOL_VERSION, SYS_INFO):
        pickle.dump(item, handle, protocol=2)


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_a_pickle_that_asks_for_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as handle:
        _write_header(handle)
        pickle.dump({"weight": _RunsCode()}, handle, protocol=2)
    with pytest.raises(ModelError, match="refusing to load (posix|os).system"):
        read_legacy_state_dict(str(path))


def test_a_truncated_file_says_so(tmp_path):
    source = weights_file("efficientnet_lite0")
    path = tmp_path / "cut.pth"
    with open(source, "rb") as handle:
        path.write_bytes(handle.read(os.path.getsize(source) // 2))
    with pytest.raises(ModelError, match="truncated PyTorch file"):
        read_legacy_state_dict(str(path))


def test_a_file_of_another_format_is_named(tmp_path):
    path = tmp_path / "zip.pth"
    path.write_bytes(b"PK\x03\x04 not a legacy file")
    with pytest.raises(ModelError, match="cannot read PyTorch weights .*zip.pth"):
        read_legacy_state_dict(str(path))
    other = tmp_path / "other.pth"
    with open(other, "wb") as handle:
        pickle.dump(12345, handle, protocol=2)
        pickle.dump(PROTOCOL_VERSION, handle, protocol=2)
        pickle.dump(SYS_INFO, handle, protocol=2)
    with pytest.raises(ModelError, match="not a PyTorch legacy-format file"):
        read_legacy_state_dict(str(other))
