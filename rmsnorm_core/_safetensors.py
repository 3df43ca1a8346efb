"""A strict safetensors writer and reader for NumPy arrays, bfloat16 included.

The format is public and small: an 8-byte little-endian header length, a JSON
header ``{name: {"dtype", "shape", "data_offsets"}, "__metadata__": {...}}``,
then the tensor bytes. Writing it here keeps bfloat16 (ml_dtypes) without
torch; reading it here lets every malformed field be refused with a message
that names the file. Files written here open with ``safetensors.safe_open``.
Nothing is ever unpickled: the payload is raw little-endian bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np

from ._dtypes import dtype_name, numpy_dtype
from ._errors import RMSNormError

DTYPE_CODES = {"float16": "F16", "bfloat16": "BF16", "float32": "F32", "float64": "F64"}
_FROM_CODE = {code: name for name, code in DTYPE_CODES.items()}
MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit


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


def deserialize(file: str, raw: bytes) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """Return ``(metadata, tensors)``; raise naming ``file`` on any malformation."""
    if len(raw) < 8:
        raise RMSNormError(
            f"checkpoint {file!r} is truncated or empty ({len(raw)} bytes); a "
            "safetensors file starts with an 8-byte header length"
        )
    size = int.from_bytes(raw[:8], "little")
    if size > MAX_HEADER or size > len(raw) - 8:
        raise RMSNormError(
            f"checkpoint {file!r} is truncated or corrupt: its header claims "
            f"{size} bytes but {len(raw) - 8} follow"
        )
    try:
        header = json.loads(raw[8 : 8 + size])
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RMSNormError(
            f"checkpoint {file!r} is not a safetensors file (header is not JSON: {err})"
        ) from None
    if not isinstance(header, dict):
        raise RMSNormError(
            f"checkpoint {file!r} is not a safetensors file (header is not an object)"
        )
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise RMSNormError(f"checkpoint {file!r}: __metadata__ must map strings to strings")
    data = raw[8 + size :]
    tensors = {name: _tensor(file, name, info, data) for name, info in header.items()}
    spans = sorted(tuple(info["data_offsets"]) for info in header.values())
    end = 0
    for begin, stop in spans:
        if begin != end:
            raise RMSNormError(
                f"checkpoint {file!r} is corrupt: tensor data overlaps or leaves "
                f"a hole at byte {end}"
            )
        end = stop
    if end != len(data):
        raise RMSNormError(
            f"checkpoint {file!r} is corrupt or truncated: tensors cover {end} "
            f"bytes but {len(data)} bytes of data follow the header"
        )
    return metadata, tensors


def _tensor(file: str, name: str, info: object, data: bytes) -> np.ndarray:
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
        and all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**40 for d in shape)
    ):
        raise RMSNormError(f"{where} has shape {shape!r}; expected a list of ints >= 0")
    if not (
        isinstance(offsets, list)
        and len(offsets) == 2
        and all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
        and 0 <= offsets[0] <= offsets[1] <= len(data)
    ):
        raise RMSNormError(
            f"{where} has data_offsets {offsets!r} outside the {len(data)} data "
            "bytes (truncated or corrupt file)"
        )
    itemsize = numpy_dtype(dtype).itemsize
    count = int(np.prod(shape, dtype=np.int64))
    if offsets[1] - offsets[0] != count * itemsize:
        raise RMSNormError(
            f"{where} holds {offsets[1] - offsets[0]} bytes, expected "
            f"{count * itemsize} for shape {tuple(shape)} {dtype}"
        )
    little = numpy_dtype(dtype).newbyteorder("<")
    array = np.frombuffer(data, dtype=little, count=count, offset=offsets[0])
    return array.astype(numpy_dtype(dtype)).reshape(shape)
