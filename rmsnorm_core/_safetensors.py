"""A strict safetensors writer and reader for NumPy arrays, bfloat16 included.

The format is public and small: an 8-byte little-endian header length, a JSON
header ``{name: {"dtype", "shape", "data_offsets"}, "__metadata__": {...}}``,
then the tensor bytes. Writing it here keeps bfloat16 (ml_dtypes) without
torch; reading it here lets every malformed field be refused with a message
that names the file. Files written here open with ``safetensors.safe_open``.

Reading is bounded whatever the file claims: only regular files are opened
(a FIFO or ``/dev/zero`` is refused before any read), the header is read and
validated first (its length against the file's size, every entry's shape and
offsets, without trusting any product to fit a machine integer), and then
only the tensors asked for are read, each with one positioned read. Nothing
is ever unpickled: the payload is raw little-endian bytes.
"""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ._dtypes import dtype_name, numpy_dtype
from ._errors import RMSNormError

DTYPE_CODES = {"float16": "F16", "bfloat16": "BF16", "float32": "F32", "float64": "F64"}
_FROM_CODE = {code: name for name, code in DTYPE_CODES.items()}
MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit
#: A norm's parameter above this is refused rather than read (no real norm comes close).
MAX_TENSOR_BYTES = 1 << 31


def serialize(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> bytes:
    """Return the file's bytes; tensors are written in name order."""
    header: dict[str, object] = {"__metadata__": dict(metadata)}
    chunks = []
    offset = 0
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        data = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {
            "dtype": DTYPE_CODES[dtype_name(array.dtype)],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # align the data to 8 bytes, as safetensors does
    return len(text).to_bytes(8, "little") + text + b"".join(chunks)


def open_regular(path: Path, what: str = "checkpoint") -> int:
    """Open ``path`` for reading and return the descriptor; refuse anything but an
    existing regular file (a FIFO would block, ``/dev/zero`` never ends), naming
    it as ``what`` in the error."""
    file = str(path)
    try:
        fd = os.open(file, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise RMSNormError(f"{what} {file!r} does not exist") from None
    except IsADirectoryError:
        raise RMSNormError(f"{what} {file!r} is a folder, not a file") from None
    except OSError as err:
        raise RMSNormError(f"{what} {file!r} cannot be read: {err.strerror}") from None
    mode = os.fstat(fd).st_mode
    if stat.S_ISDIR(mode):
        os.close(fd)
        raise RMSNormError(f"{what} {file!r} is a folder, not a file")
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise RMSNormError(
            f"{what} {file!r} is not a regular file (a folder, FIFO, socket or device); "
            "give the path of a file"
        )
    return fd


def _read_exact(fd: int, size: int, offset: int, file: str) -> bytes:
    data = os.pread(fd, size, offset)
    if len(data) != size:
        raise RMSNormError(
            f"checkpoint {file!r} is truncated: {len(data)} of {size} bytes at {offset}"
        )
    return data


class Header:
    """A validated safetensors header: metadata and tensor entries, nothing read yet."""

    def __init__(self, file: str, fd: int) -> None:
        self.file = file
        size = os.fstat(fd).st_size
        if size < 8:
            raise RMSNormError(
                f"checkpoint {file!r} is truncated or empty ({size} bytes); a safetensors "
                "file starts with an 8-byte header length"
            )
        length = int.from_bytes(_read_exact(fd, 8, 0, file), "little")
        if length > MAX_HEADER or length > size - 8:
            raise RMSNormError(
                f"checkpoint {file!r} is truncated or corrupt: its header claims {length} "
                f"bytes but {size - 8} follow"
            )
        header = _parse(file, _read_exact(fd, length, 8, file))
        metadata = header.pop("__metadata__", {})
        if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
        ):
            raise RMSNormError(f"checkpoint {file!r}: __metadata__ must map strings to strings")
        self.metadata: dict[str, str] = metadata
        self.data_start = 8 + length
        data_size = size - self.data_start
        self.entries = {name: _entry(file, name, info, data_size) for name, info in header.items()}
        end = 0
        for begin, stop in sorted(e[2] for e in self.entries.values()):
            if begin != end:
                raise RMSNormError(
                    f"checkpoint {file!r} is corrupt: tensor data overlaps or leaves a hole at "
                    f"byte {end}"
                )
            end = stop
        if end != data_size:
            raise RMSNormError(
                f"checkpoint {file!r} is corrupt or truncated: tensors cover {end} bytes but "
                f"{data_size} bytes of data follow the header"
            )


def _parse(file: str, raw: bytes) -> dict[str, Any]:
    try:
        header = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, ValueError) as err:
        reason = "nested too deeply" if isinstance(err, RecursionError) else str(err)
        raise RMSNormError(
            f"checkpoint {file!r} is not a safetensors file (header is not JSON: {reason})"
        ) from None
    if not isinstance(header, dict):
        raise RMSNormError(
            f"checkpoint {file!r} is not a safetensors file (header is not an object)"
        )
    return header


def _entry(file: str, name: str, info: object, data_size: int) -> tuple[str, list[int], tuple]:
    where = f"checkpoint {file!r}: tensor {name!r}"
    if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
        raise RMSNormError(f"{where} has a malformed header entry")
    dtype = _FROM_CODE.get(info["dtype"]) if isinstance(info["dtype"], str) else None
    if dtype is None:
        raise RMSNormError(
            f"{where} has dtype {info['dtype']!r}; accepted dtypes are "
            f"{', '.join(DTYPE_CODES.values())}"
        )
    shape, offsets = info["shape"], info["data_offsets"]
    if not (
        isinstance(shape, list)
        and len(shape) <= 64
        and all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**40 for d in shape)
    ):
        raise RMSNormError(f"{where} has shape {str(shape)[:80]}; expected a list of ints >= 0")
    if not (
        isinstance(offsets, list)
        and len(offsets) == 2
        and all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
        and 0 <= offsets[0] <= offsets[1] <= data_size
    ):
        raise RMSNormError(
            f"{where} has data_offsets {str(offsets)[:80]} outside the {data_size} data bytes "
            "(truncated or corrupt file)"
        )
    expected = math.prod(shape) * numpy_dtype(dtype).itemsize  # Python ints: no overflow
    if offsets[1] - offsets[0] != expected:
        raise RMSNormError(
            f"{where} holds {offsets[1] - offsets[0]} bytes, expected {expected} for shape "
            f"{tuple(shape)} {dtype}"
        )
    return dtype, shape, (offsets[0], offsets[1])


def read_header(path: str | os.PathLike[str]) -> Header:
    """The validated header of a safetensors file (no tensor read)."""
    fd = open_regular(Path(path))
    try:
        return Header(str(path), fd)
    finally:
        os.close(fd)


def read_file(
    path: str | os.PathLike[str], select: Callable[[str], bool] | None = None
) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """``(metadata, tensors)`` of a safetensors file: every tensor, or those ``select`` keeps.

    Raises:
        RMSNormError: naming the file (and tensor) on any malformation.
    """
    file = str(path)
    fd = open_regular(Path(path))
    try:
        header = Header(file, fd)
        tensors = {}
        for name, (dtype, shape, (begin, stop)) in header.entries.items():
            if select is not None and not select(name):
                continue
            if stop - begin > MAX_TENSOR_BYTES:
                raise RMSNormError(
                    f"checkpoint {file!r}: tensor {name!r} holds {stop - begin} bytes, more than "
                    f"any norm parameter ({MAX_TENSOR_BYTES}); refusing to read it"
                )
            raw = _read_exact(fd, stop - begin, header.data_start + begin, file)
            little = numpy_dtype(dtype).newbyteorder("<")
            array = np.frombuffer(raw, dtype=little).astype(numpy_dtype(dtype))
            tensors[name] = array.reshape(shape)
        return header.metadata, tensors
    finally:
        os.close(fd)
