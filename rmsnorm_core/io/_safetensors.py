"""safetensors files through the ``safetensors`` library, with the library's bounds.

The ``safetensors`` library writes and parses the format (``safetensors.numpy``
writes ml_dtypes bfloat16 bit-exactly; ``safe_open(framework="np")`` reads it
back); this module adds what a loader of untrusted files needs around it:

- only regular files are opened (a FIFO would block, ``/dev/zero`` never
  ends): :func:`open_regular` checks before the library sees the path;
- the header is validated by the library before any tensor is read (its
  length bounded, every offset inside the file, no overlap, no hole), then
  only the tensors asked for are read, each size checked from its shape
  first (:data:`MAX_TENSOR_BYTES`);
- only the floating dtypes a norm parameter can have are accepted;
- every failure is one ``RMSNormError`` line naming the file (and tensor).

Nothing is ever unpickled: the payload is raw little-endian bytes.
"""

from __future__ import annotations

import json
import math
import os
import stat
import struct
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save

from rmsnorm_core.spec._dtypes import numpy_dtype
from rmsnorm_core.spec._errors import RMSNormError
from rmsnorm_core.spec._json import loads_strict

DTYPE_CODES = {"float16": "F16", "bfloat16": "BF16", "float32": "F32", "float64": "F64"}
"""The dtypes a norm parameter may have, by their safetensors codes."""
_FROM_CODE = {code: name for name, code in DTYPE_CODES.items()}
MAX_TENSOR_BYTES = 1 << 31
"""A norm's parameter above this is refused rather than read (no real norm comes close)."""


def serialize(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> bytes:
    """Return the file's bytes (the library's layout: deterministic for equal input).

    Any dtype the library writes is written; which dtypes a checkpoint may hold is
    the readers' rule (:data:`DTYPE_CODES`).
    """
    arrays = {name: np.ascontiguousarray(tensors[name]) for name in sorted(tensors)}
    return _sorted_metadata(save(arrays, metadata=dict(metadata)))


def _sorted_metadata(data: bytes) -> bytes:
    """The library writes ``__metadata__`` in a Rust ``HashMap``'s order, which changes
    from one call to the next (measured: two saves of one checkpoint differed at byte
    26); a checkpoint saved twice must be byte-identical, so the metadata keys are put
    in sorted order. Same keys, same values, same JSON length: nothing else moves."""
    length = int.from_bytes(data[:8], "little")
    header = loads_strict(data[8 : 8 + length], "the safetensors header just written")
    meta = header.get("__metadata__")
    if not meta:
        return data
    header["__metadata__"] = dict(sorted(meta.items()))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    if len(text) > length:  # the library escaped differently: keep its bytes
        return data
    text += b" " * (length - len(text))
    return data[:8] + text + data[8 + length :]


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


def read_regular(path: Path, what: str, limit: int) -> bytes:
    """The bytes of a regular file (see :func:`open_regular`), at most ``limit`` of
    them: a larger file is refused, naming it as ``what``, before more is read."""
    fd = open_regular(path, what)
    try:
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > limit:
        raise RMSNormError(
            f"{what} {str(path)!r} is larger than {limit} bytes; refusing to read it"
        )
    return b"".join(chunks)


class Header:
    """A validated safetensors header: metadata and tensor entries, nothing read yet.

    Attributes:
        file: the path, as given.
        metadata: the ``__metadata__`` strings.
        entries: ``{name: (dtype name, shape)}`` for every tensor.
    """

    def __init__(self, file: str, metadata: dict[str, str], entries: dict) -> None:
        self.file = file
        self.metadata = metadata
        self.entries: dict[str, tuple[str, list[int]]] = entries


def _open(path: str | os.PathLike[str]) -> tuple[str, object]:
    """The library's handle on a regular file whose header it validated."""
    file = str(path)
    os.close(open_regular(Path(path)))
    try:
        handle = safe_open(file, framework="np")
    except SafetensorError as err:
        raise RMSNormError(
            f"checkpoint {file!r} is not a valid safetensors file (truncated or corrupt): "
            f"{str(err)[:200]}"
        ) from None
    except OSError as err:
        raise RMSNormError(f"checkpoint {file!r} cannot be read: {err.strerror}") from None
    _strict_header(file)
    return file, handle


def _strict_header(file: str) -> None:
    """Read the header the library validated again with the strict JSON reader: the library
    keeps the last of two equal keys (two ``layers`` or ``sha256`` entries in
    ``__metadata__``), where a file must name each once."""
    with open(file, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        loads_strict(f.read(length), f"checkpoint {file!r}: the safetensors header")


def _header(file: str, handle: object) -> Header:
    metadata = handle.metadata() or {}
    entries = {}
    for name in handle.keys():
        part = handle.get_slice(name)
        code, shape = part.get_dtype(), list(part.get_shape())
        if code not in _FROM_CODE:
            raise RMSNormError(
                f"checkpoint {file!r}: tensor {name!r} has dtype {code!r}; accepted dtypes "
                f"are {', '.join(DTYPE_CODES.values())}"
            )
        entries[name] = (_FROM_CODE[code], shape)
    return Header(file, metadata, entries)


def read_header(path: str | os.PathLike[str]) -> Header:
    """The validated header of a safetensors file (no tensor read)."""
    file, handle = _open(path)
    with handle:
        return _header(file, handle)


def read_file(
    path: str | os.PathLike[str], select: Callable[[str], bool] | None = None
) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """``(metadata, tensors)`` of a safetensors file: every tensor, or those ``select`` keeps.

    Raises:
        RMSNormError: naming the file (and tensor) on any malformation.
    """
    file, handle = _open(path)
    with handle:
        header = _header(file, handle)
        tensors = {}
        for name, (dtype, shape) in header.entries.items():
            if select is not None and not select(name):
                continue
            size = math.prod(shape) * numpy_dtype(dtype).itemsize  # Python ints: no overflow
            if size > MAX_TENSOR_BYTES:
                raise RMSNormError(
                    f"checkpoint {file!r}: tensor {name!r} holds {size} bytes, more than "
                    f"any norm parameter ({MAX_TENSOR_BYTES}); refusing to read it"
                )
            tensors[name] = np.array(handle.get_tensor(name), dtype=numpy_dtype(dtype))
        return header.metadata, tensors
