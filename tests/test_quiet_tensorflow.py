"""`gravtrain.quiet_tensorflow`: the first import of a module that writes below Python (to file descriptor 2)
goes to the ``gravtrain`` logger at DEBUG instead of the terminal, unless verbose; a failing import still shows it.
A module of the test's own stands in for TensorFlow."""

from __future__ import annotations

import itertools
import logging
import os
import sys
import textwrap

import pytest

from gravtrain import quiet_tensorflow
from gravtrain.quiet_tensorflow import LOG_LEVEL_ENV, QuietImport

NOISY = """
    import os
    os.write(2, b"I0000 cudart_stub.cc:31] Could not find cuda drivers on your machine\\n")

    class config:
        @staticmethod
        def list_physical_devices():
            os.write(2, b"E0000 cuda_platform.cc:52] failed call to cuInit\\n")
            return []
    {tail}
"""


NUMBERS = itertools.count()


@pytest.fixture
def noisy(tmp_path, monkeypatch):
    """Writes a module named after the test that prints at its import and its device listing; returns its name."""
    def write(tail: str = "") -> str:
        name = f"noisy_{next(NUMBERS)}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(NOISY.format(tail=tail)))
        return name

    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(LOG_LEVEL_ENV, raising=False)
    yield write
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, QuietImport)]
    for name in [name for name in sys.modules if name.startswith("noisy_")]:
        del sys.modules[name]


@pytest.fixture
def gravtrain_records(monkeypatch):
    """What the ``gravtrain`` logger receives at DEBUG during the test, whatever handlers earlier tests in this
    process left on it (the command line's, on a stream that may be closed by now)."""
    logger, records = logging.getLogger("gravtrain"), []
    keep = logging.Handler(logging.DEBUG)
    keep.emit = records.append
    monkeypatch.setattr(logger, "handlers", [keep])
    monkeypatch.setattr(logger, "propagate", False)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    yield records
    logger.setLevel(level)


def test_the_first_import_is_quiet_and_its_lines_are_debug_records(noisy, capfd, gravtrain_records):
    name = noisy()
    quiet_tensorflow.install(False, module=name)
    module = __import__(name)
    assert capfd.readouterr().err == ""
    assert [r.getMessage() for r in gravtrain_records] == [
        f"{name}: I0000 cudart_stub.cc:31] Could not find cuda drivers on your machine",
        f"{name}: E0000 cuda_platform.cc:52] failed call to cuInit"]
    assert os.environ[LOG_LEVEL_ENV] == "2"
    assert module.__loader__ is module.__spec__.loader and type(module.__loader__).__name__ != "_CapturingLoader"
    assert not [f for f in sys.meta_path if isinstance(f, QuietImport)]  # gone after its one import


def test_verbose_installs_nothing(noisy, capfd):
    name = noisy()
    quiet_tensorflow.install(True, module=name)
    __import__(name)
    err = capfd.readouterr().err
    assert "Could not find cuda drivers" in err and LOG_LEVEL_ENV not in os.environ


def test_a_level_the_user_chose_is_kept(noisy, monkeypatch):
    monkeypatch.setenv(LOG_LEVEL_ENV, "0")
    quiet_tensorflow.install(False, module=noisy())
    assert os.environ[LOG_LEVEL_ENV] == "0"


def test_a_failing_import_shows_what_it_wrote_and_raises(noisy, capfd):
    name = noisy(tail="raise ImportError('broken install')")
    quiet_tensorflow.install(False, module=name)
    with pytest.raises(ImportError, match="broken install"):
        __import__(name)
    assert "Could not find cuda drivers" in capfd.readouterr().err
