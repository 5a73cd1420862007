"""TensorFlow's start-up lines kept off a user's terminal.

Importing TensorFlow and listing its devices writes lines of its own straight to the process's standard error,
below Python: on a CPU-only machine "Could not find cuda drivers" (twice) and "failed call to cuInit", then the
CPU-feature and oneDNN notes. They say nothing a gravtrain user acts on, and they come on every command that loads
TensorFlow (and once more in each sweep worker). `install` makes the first ``import tensorflow`` of the process
run with file descriptor 2 captured, lists the devices inside the capture (where the CUDA probe happens), and
hands what was captured to the ``gravtrain`` logger at DEBUG. It also sets ``TF_CPP_MIN_LOG_LEVEL=2`` unless the
user chose a level, which hides TensorFlow's later INFO and WARNING lines ("Compiled cluster using XLA!").

With ``--verbose`` nothing is installed, so TensorFlow prints as it always does. If the import fails, what was
captured goes to standard error before the error propagates. The command line and the sweep's worker processes
install it (a module of the package's root, as `gravtrain.version`: every entry point may import it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.abc
import importlib.util
import logging
import os
import sys
import tempfile
from typing import Iterator

log = logging.getLogger("gravtrain")

#: TensorFlow's own variable for the lowest level of its C++ log lines (0 all, 1 no INFO, 2 no WARNING either).
LOG_LEVEL_ENV = "TF_CPP_MIN_LOG_LEVEL"
QUIET_LOG_LEVEL = "2"


def install(verbose: bool, module: str = "tensorflow") -> None:
    """Make the process's first import of ``module`` quiet (see the module's docstring); nothing if ``verbose``
    or if it is imported already."""
    installed = any(isinstance(finder, QuietImport) and finder.module == module for finder in sys.meta_path)
    if verbose or installed or module in sys.modules:
        return
    os.environ.setdefault(LOG_LEVEL_ENV, QUIET_LOG_LEVEL)
    sys.meta_path.insert(0, QuietImport(module))


class QuietImport(importlib.abc.MetaPathFinder):
    """Finds ``module`` as the other finders do and gives it a loader that runs it with fd 2 captured; removes
    itself at that first import."""

    def __init__(self, module: str):
        self.module = module

    def find_spec(self, fullname, path, target=None):
        if fullname != self.module:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _CapturingLoader(spec.loader)
        return spec


class _CapturingLoader(importlib.abc.Loader):
    def __init__(self, inner: importlib.abc.Loader):
        self.inner = inner

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module) -> None:
        module.__loader__ = module.__spec__.loader = self.inner  # the module keeps its own loader
        with _standard_error_captured() as captured:
            try:
                self.inner.exec_module(module)
                devices = getattr(getattr(module, "config", None), "list_physical_devices", None)
                if devices is not None:
                    devices()  # TensorFlow probes CUDA here
            except BaseException:
                captured.failed = True
                raise
        for line in captured.text.splitlines():
            if line.strip():
                log.debug("%s: %s", module.__name__, line)


@dataclasses.dataclass
class _Captured:
    text: str = ""  #: what was written to fd 2, once the block has ended
    failed: bool = False  #: set by the block when it raises: the text then goes to the real standard error


@contextlib.contextmanager
def _standard_error_captured() -> Iterator[_Captured]:
    """File descriptor 2 into a temporary file for the block; its text in the yielded object afterwards (and
    written to the real standard error when the block failed)."""
    captured = _Captured()
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield captured
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                sink.seek(0)
                captured.text = sink.read().decode(errors="replace")
                if captured.failed:
                    sys.stderr.write(captured.text)
                    sys.stderr.flush()
    finally:
        os.close(saved)
