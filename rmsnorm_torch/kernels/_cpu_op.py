"""The CPU operator behind eager CPU calls of every size that it fits:
``torch.ops.rmsnorm_bridge.rmsnorm`` (one call per forward, with or without autograd;
its autograd node is C++) and the kernels it calls, ``rmsnorm_forward`` and
``rmsnorm_backward``, one call each per forward and per backward.

The operator is C++ (``csrc/rmsnorm_cpu.cpp``), built with torch's extension API on the
first call it could take (about 20 s once; loading a built one takes about 0.15 s; the
build is cached under ``TORCH_EXTENSIONS_DIR``, by default
``~/.cache/torch_extensions``, and rebuilt only when the source or torch changes). One
builder thread per process builds or loads it while holding the build folder's lock
(``_build_lock.py``): a builder that dies leaves nothing to wait for, and a first call
interrupted by Ctrl-C leaves the build to the next call. A folder this process cannot
write (a prebuilt image on a read-only file system, or run as another user) is loaded
from as it is, where it holds a finished build. Where no C++ compiler is found,
the build fails, or ``RMSNORM_NATIVE=0`` is set, the same operator is registered with
the pure-Python kernel of ``_cpu_fallback.py`` (same schema, same bits), and a
``RMSNormWarning`` says so once; :func:`status` tells which one runs (``rmsnorm verify``
prints it). That kernel is slower than plain ATen ops, so ``"auto"`` then gives large
calls the graph path (the same bits again), small ones ``torch.rms_norm`` or the graph
path as with autograd on, and only ``use_kernel("blocked")`` runs it.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Optional

import torch

from rmsnorm_core import RMSNormWarning
from rmsnorm_torch.kernels._build_lock import FOLDER_LOCK, folder_held

__all__ = ["SCHEMAS", "ensure_loaded", "library_name", "native", "ops", "status"]

_CSRC = Path(__file__).resolve().with_name("csrc")
_SOURCES = (_CSRC / "rmsnorm_cpu.cpp", _CSRC / "rmsnorm_autograd.cpp")
_HEADERS = (_CSRC / "rmsnorm_cpu.h", _CSRC / "rmsnorm_sums.h")
_LOCK = threading.Lock()
_STATUS: list[str] = []  # filled once: "native" or "python (<reason>)"

SCHEMAS = {
    "rmsnorm_forward": (
        "rmsnorm_forward(Tensor x, int[] block, Tensor? gain, Tensor? bias, float eps, "
        "bool round_mid, ScalarType mid, ScalarType out_dtype, bool inverse) -> (Tensor, Tensor)"
    ),
    "rmsnorm_backward": (
        "rmsnorm_backward(Tensor dy, Tensor x, Tensor inv, int[] block, Tensor? gain, "
        "bool has_bias, bool round_mid, ScalarType mid, bool inverse, ScalarType scale_dtype, "
        "bool need_dx, bool need_dgain, bool need_dbias, bool two_dx) "
        "-> (Tensor, Tensor, Tensor, Tensor)"
    ),
}
"""The schemas the pure-Python fallback registers; ``csrc/rmsnorm_cpu.cpp`` defines the
same two strings (the native build adds ``rmsnorm``, the operator with its autograd node
in C++: ``csrc/rmsnorm_autograd.cpp``)."""


_BUILD_TIMEOUT_SECONDS = 1200  # a build takes ~20-70 s here
_BUILDERS: dict[str, tuple[threading.Event, list[str]]] = {}  # by name, once per process
_INTERRUPTED: set[str] = set()  # builds whose caller was interrupted while waiting


def _build_directory(name: str) -> str:
    """Our folder under torch's extension cache (``TORCH_EXTENSIONS_DIR`` or its default)."""
    from torch.utils import cpp_extension

    root = os.environ.get("TORCH_EXTENSIONS_DIR") or cpp_extension.get_default_build_root()
    path = os.path.join(root, "rmsnorm_bridge", name)
    os.makedirs(path, exist_ok=True)
    return path


def _vector_flags() -> tuple[str, list[str]]:
    """``(tag, flags)``: the vector instructions the build's loops may use, those ATen
    itself dispatches to on this CPU (``torch.backends.cpu.get_cpu_capability()``, which
    ``ATEN_CPU_CAPABILITY`` can lower). On an AVX2 (or AVX-512) CPU: AVX2 and F16C, which
    every AVX2 CPU has; F16C converts float16 in hardware, rounding to nearest even as
    c10's software conversion does (without it, a float16 call ran 3x slower). The tag
    is part of the build folder's name, so a binary built for one CPU is never loaded
    on a CPU without its instructions (a home folder shared by several machines)."""
    capability = torch.backends.cpu.get_cpu_capability()
    if capability in ("AVX2", "AVX512"):
        return "_avx2", ["-mavx2", "-mf16c"]
    return "", []


def _load(name: str, directory: str, flags: list[str], errors: list[str]) -> None:
    from torch.utils import cpp_extension

    try:
        cpp_extension.load(
            name=name,
            sources=[str(source) for source in _SOURCES],
            build_directory=directory,
            # no fused multiply-add: every product and sum rounds as ATen's own ops do.
            # OpenMP, as ATen's own build: at::parallel_for is a header template that,
            # compiled without it, runs the chunks on one thread and leaves every ATen op
            # inside to open a parallel region of its own (hundreds per call). The
            # runtime is the libgomp.so.1 torch has already loaded (same soname).
            extra_cflags=["-O3", "-ffp-contract=off", "-fopenmp", *flags],
            extra_ldflags=["-fopenmp"],
            is_python_module=False,
            verbose=False,
        )
    except Exception as error:  # a broken toolchain: the Python kernel still works
        lines = str(error).strip().splitlines() or [type(error).__name__]
        errors.append(f"the build failed: {lines[0][:200]}")


def library_name() -> tuple[str, list[str]]:
    """The built library's name and the build's vector flags. The name carries the digest
    of the sources and of torch's version: two versions of this package, or of torch, on
    one machine (two venvs, an upgrade) never build into, or load from, each other's
    folder."""
    sources = b"".join(f.read_bytes() for f in _SOURCES + _HEADERS)
    digest = hashlib.sha256(sources + torch.__version__.encode()).hexdigest()[:16]
    tag, flags = _vector_flags()
    return "rmsnorm_bridge_cpu_" + digest + tag, flags


def _build() -> str:
    """Build and load the C++ operator; return "" on success, else why not."""
    if os.environ.get("RMSNORM_NATIVE", "1") == "0":
        return "disabled by RMSNORM_NATIVE=0"
    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        return f"no C++ compiler ({compiler}) on PATH"
    name, flags = library_name()
    try:
        directory = _build_directory(name)
    except OSError as error:
        return f"no build folder: {error}"
    # one builder thread per process, which holds the folder for as long as it builds: a
    # caller interrupted while it waits (Ctrl-C in a notebook) leaves it running, and the
    # next call waits for the same build instead of starting a second one beside it
    # (waited for on an Event: a Thread.join interrupted by Ctrl-C can report the thread
    # ended while it still runs). A build that failed after its caller was interrupted
    # is started once more (a terminal's Ctrl-C reaches the compiler too), in a child
    # process: torch builds a given name once per process, and would only load.
    if name not in _BUILDERS:
        _start_builder(name, directory, flags, False)
    errors = _wait_for_builder(name)
    if errors and name in _INTERRUPTED:
        _INTERRUPTED.discard(name)
        _start_builder(name, directory, flags, True)
        errors = _wait_for_builder(name)
    if errors is None:
        return f"the build did not finish in {_BUILD_TIMEOUT_SECONDS} s (folder: {directory})"
    return errors[0] if errors else ""


def _start_builder(name: str, directory: str, flags: list[str], in_child: bool) -> None:
    done, errors = threading.Event(), []
    _BUILDERS[name] = (done, errors)
    args = (name, directory, flags, errors, done, in_child)
    threading.Thread(target=_build_held, args=args, daemon=True).start()


def _wait_for_builder(name: str) -> Optional[list[str]]:
    """The builder's errors once it ends (None: not in time); an interrupted wait is
    remembered (:func:`_build`)."""
    done, errors = _BUILDERS[name]
    try:
        return errors if done.wait(_BUILD_TIMEOUT_SECONDS) else None
    except KeyboardInterrupt:
        _INTERRUPTED.add(name)
        raise


def _build_held(
    name: str,
    directory: str,
    flags: list[str],
    errors: list[str],
    done: threading.Event,
    in_child: bool = False,
) -> None:
    """:func:`_load` while holding the build folder (the builder thread's body), after a
    child process has built it where ``in_child``; sets ``done`` when it ends, however
    it ends."""
    try:
        if in_child:  # the child holds the folder itself while it builds
            code = "from rmsnorm_torch.kernels._cpu_op import status; status()"
            subprocess.run([sys.executable, "-c", code], timeout=_BUILD_TIMEOUT_SECONDS)
        with folder_held(directory, time.monotonic() + _BUILD_TIMEOUT_SECONDS) as held:
            if held:
                _load(name, directory, flags, errors)
            else:
                errors.append(
                    f"another process held the build folder for {_BUILD_TIMEOUT_SECONDS} s "
                    f"({os.path.join(directory, FOLDER_LOCK)})"
                )
    except OSError as error:  # read-only, or the lock is not a regular file
        if not (error.errno in _READ_ONLY and _load_built(name, directory)):
            errors.append(f"the build folder cannot be locked: {error}")
    except Exception as error:  # whatever else (a failed child included): the Python kernel works
        errors.append(f"the build failed: {type(error).__name__}: {error}"[:200])
    finally:
        done.set()


_READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)


def _load_built(name: str, directory: str) -> bool:
    """Load the library a finished build left in a folder this process cannot write (a
    prebuilt image run on a read-only file system, or as another user): no build can be
    under way there. Not where a build died (torch's ``lock`` left behind), nor where
    the library does not load; False then."""
    library = os.path.join(directory, name + ".so")
    if os.path.exists(os.path.join(directory, "lock")) or not os.path.isfile(library):
        return False
    try:
        torch.ops.load_library(library)
    except Exception:  # a broken or foreign library: the Python kernel still works
        return False
    return True


_OURS = ("rmsnorm_torch", "torch")


def _callers_level() -> int:
    """The ``stacklevel`` that points a warning raised by this module's caller at the first
    frame outside rmsnorm_torch and torch: the user's line, whichever entry (a module, the
    functional form, a scripted call) and depth reached the operator."""
    level, frame = 2, sys._getframe(2)  # 1: the function that warns, 2: its caller
    while frame is not None and frame.f_globals.get("__name__", "").split(".")[0] in _OURS:
        level, frame = level + 1, frame.f_back
    return level


def ensure_loaded() -> None:
    """Make the operator callable (build or fall back, once per process; thread-safe)."""
    if _STATUS:
        return
    with _LOCK:
        if _STATUS:
            return
        reason = _build()
        if reason:
            from rmsnorm_torch.kernels._cpu_fallback import register

            register(SCHEMAS)
            warnings.warn(
                f"rmsnorm_torch: the native CPU kernel is not available ({reason}); large CPU "
                "tensors take the graph path instead (plain ATen ops: the same bits, slower, "
                "more memory); use_kernel('blocked') runs the kernel's pure-Python form",
                RMSNormWarning,
                stacklevel=_callers_level(),
            )
            _STATUS.append(f"python ({reason})")
        else:
            _STATUS.append("native")


def status() -> str:
    """``"native"`` or ``"python (<why>)"``: which CPU kernel large calls run (loads it)."""
    ensure_loaded()
    return _STATUS[0]


def native() -> bool:
    """Whether the operator is the native one (loads it)."""
    if not _STATUS:
        ensure_loaded()
    return _STATUS[0] == "native"


def ops() -> torch._ops._OpNamespace:
    """``torch.ops.rmsnorm_bridge`` with the operator loaded."""
    if not _STATUS:
        ensure_loaded()
    return torch.ops.rmsnorm_bridge
