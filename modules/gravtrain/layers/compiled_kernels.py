"""gravtrain's compiled CPU kernels: TensorFlow custom ops in C++, built on first use against the installed
TensorFlow.

`neighbour_ops_library` compiles ``kernels/neighbour_ops.cc`` (the squared distances along the kNN graph's edges
of `gravtrain.layers.knn` and the aggregation of `gravtrain.layers.aggregation`, each with its gradient) with
the C++ compiler ``$CXX`` (default ``c++``) and TensorFlow's own flags (``tf.sysconfig``), and loads it with
``tf.load_op_library``. The library is kept in ``$GRAVTRAIN_KERNEL_CACHE``, else the user's cache directory
(``$XDG_CACHE_HOME``, else ``~/.cache``) ``/gravtrain/kernels/``, under a name that changes with the source,
TensorFlow's version and flags, the compiler's version and the platform: a machine builds once (about 10 s), and
processes that start together build it once between them (a file lock). The build is portable: its inner loops
carry AVX-512, AVX2 and baseline versions and the processor picks (see the source).

Where there is no compiler, or the build fails, the function logs one warning saying why and returns None; the
aggregation then uses TensorFlow ops (slower, same numbers).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tensorflow as tf
from tensorflow.python.ops import control_flow_util

logger = logging.getLogger(__name__)

KERNEL_SOURCES = Path(__file__).parent / "kernels"
NEIGHBOUR_OPS_SOURCE = KERNEL_SOURCES / "neighbour_ops.cc"
#: Dtypes the kernels are built for.
KERNEL_DTYPES = (tf.float32, tf.float64)
#: Flags besides TensorFlow's. -fopenmp-simd only honours the source's `omp simd` loops (no OpenMP runtime).
COMPILE_FLAGS = ("-shared", "-fPIC", "-O3", "-fopenmp-simd", "-w")
BUILD_TIMEOUT_S = 600


class KernelBuildError(RuntimeError):
    """A kernel could not be compiled or loaded; the message says why."""


def kernel_cache_directory() -> Path:
    """Where built kernels are kept: ``$GRAVTRAIN_KERNEL_CACHE``, else ``<user cache>/gravtrain/kernels``."""
    if os.environ.get("GRAVTRAIN_KERNEL_CACHE"):
        return Path(os.environ["GRAVTRAIN_KERNEL_CACHE"]).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "gravtrain" / "kernels"


@functools.cache
def neighbour_ops_library():
    """The loaded op library of ``kernels/neighbour_ops.cc`` (``gravtrain_neighbour_distances``,
    ``gravtrain_neighbour_mean_max`` and their gradients), or None after one warning if it cannot be built."""
    try:
        return load_kernel(NEIGHBOUR_OPS_SOURCE)
    except KernelBuildError as error:
        logger.warning("%s; the kNN graph's distances and aggregation use TensorFlow ops instead (same results, "
                       "about 3x slower on CPU)", error)
        return None


def kernels_for(dtype):
    """The kernel library where the compiled kernels should run: outside XLA, with no GPU visible, for a dtype
    of `KERNEL_DTYPES`, when the library builds. Else None (use TensorFlow ops)."""
    if in_xla_context() or tf.config.list_logical_devices("GPU") or tf.as_dtype(dtype) not in KERNEL_DTYPES:
        return None
    return neighbour_ops_library()


def in_xla_context() -> bool:
    """Whether ops created now go into an XLA-compiled function (``jit_compile=True``)."""
    if tf.executing_eagerly():
        return False
    return bool(control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph()))


#: The library loaded for each source in this process. TensorFlow registers ops process-wide, and a second
#: library registering the same ops would come back without them.
_LOADED: dict[Path, object] = {}


def load_kernel(source: Path, cache: Path | None = None):
    """Build ``source`` into ``cache`` (default `kernel_cache_directory`) unless built already, and load it; or
    the library already loaded from ``source`` in this process.

    Raises:
        KernelBuildError: no compiler, a failed compile, or a library TensorFlow cannot load.
    """
    if source in _LOADED:
        return _LOADED[source]
    _LOADED[source] = _build_and_load(source, cache)
    return _LOADED[source]


def _build_and_load(source: Path, cache: Path | None):
    library, compiler, flags = _build_plan(source, cache)
    for attempt in range(2):
        if not library.exists():
            _build(source, library, compiler, flags)
        try:
            return tf.load_op_library(str(library))
        except (tf.errors.NotFoundError, OSError) as error:
            if attempt == 1:
                raise KernelBuildError(f"TensorFlow could not load the built kernel {library}: {error}") from error
            logger.warning("the cached kernel %s does not load (%s); building it again", library, error)
            library.unlink(missing_ok=True)


def kernel_library_path(source: Path, cache: Path | None = None) -> Path:
    """The file ``source`` is built into: in ``cache`` (default `kernel_cache_directory`), named by the build key."""
    return _build_plan(source, cache)[0]


def _build_plan(source: Path, cache: Path | None) -> tuple[Path, str, list[str]]:
    compiler = os.environ.get("CXX") or "c++"
    compiler_path = shutil.which(compiler)
    if compiler_path is None:
        raise KernelBuildError(f"no C++ compiler {compiler!r} on PATH to build {source.name} (install g++ or "
                               f"clang++, or point $CXX at one)")
    flags = [*COMPILE_FLAGS, *tf.sysconfig.get_compile_flags(), *tf.sysconfig.get_link_flags()]
    if sys.platform == "darwin":
        flags += ["-undefined", "dynamic_lookup"]
    key = _build_key(source, compiler_path, flags)
    return (cache or kernel_cache_directory()) / f"{source.stem}-{key}.so", compiler_path, flags


def _build_key(source: Path, compiler: str, flags: list[str]) -> str:
    try:
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as error:
        raise KernelBuildError(f"the C++ compiler {compiler} does not run: {error}") from error
    digest = hashlib.sha256()
    for part in (source.read_bytes(), tf.__version__.encode(), version.encode(), " ".join(flags).encode(),
                 platform.machine().encode(), sys.platform.encode()):
        digest.update(part + b"\0")
    return digest.hexdigest()[:16]


def _build(source: Path, library: Path, compiler: str, flags: list[str]) -> None:
    try:
        library.parent.mkdir(parents=True, exist_ok=True)
        lock = open(library.with_suffix(".lock"), "w")  # noqa: SIM115 - held until the build is in place
    except OSError as error:
        raise KernelBuildError(f"cannot write the kernel cache {library.parent}: {error}") from error
    with lock:
        _lock(lock)
        if library.exists():  # another process built it while this one waited
            return
        logger.info("compiling %s for this machine's TensorFlow (once, into %s)", source.name, library.parent)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(dir=library.parent) as scratch:
            built = Path(scratch) / library.name
            command = [compiler, str(source), "-o", str(built), *flags]
            try:
                result = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
            except (OSError, subprocess.SubprocessError) as error:
                raise KernelBuildError(f"compiling {source.name} failed: {error}") from error
            if result.returncode != 0:
                tail = "\n".join(result.stderr.strip().splitlines()[-15:])
                raise KernelBuildError(f"compiling {source.name} failed (exit {result.returncode}):\n{tail}")
            os.replace(built, library)
        logger.info("compiled %s in %.1f s", source.name, time.perf_counter() - started)


def _lock(handle) -> None:
    try:
        import fcntl
    except ImportError:  # no flock (Windows): concurrent builds only repeat the work, os.replace is atomic
        return
    fcntl.flock(handle, fcntl.LOCK_EX)


@tf.RegisterGradient("GravtrainNeighbourDistances")
def _neighbour_distances_gradient(op, grad_distances):
    coordinates, neighbours = op.inputs
    grad_coordinates = neighbour_ops_library().gravtrain_neighbour_distances_grad(coordinates, neighbours,
                                                                                 grad_distances)
    return grad_coordinates, None


@tf.RegisterGradient("GravtrainNeighbourMeanMax")
def _neighbour_mean_max_gradient(op, grad_mean, grad_max, _grad_argmax):
    features, neighbours, distances = op.inputs
    mean, maximum, argmax = op.outputs
    grad_mean = tf.zeros_like(mean) if grad_mean is None else grad_mean
    grad_max = tf.zeros_like(maximum) if grad_max is None else grad_max
    grad_features, grad_distances = neighbour_ops_library().gravtrain_neighbour_mean_max_grad(
        features, neighbours, distances, argmax, grad_mean, grad_max, scale=op.get_attr("scale"),
        first_column=op.get_attr("first_column"))
    return grad_features, None, grad_distances
