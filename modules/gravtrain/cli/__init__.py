"""The ``gravtrain`` / ``python config_trainer.py`` command line: parses arguments, calls the rooms, sets exit codes.

Exit codes: 0 success; 1 training failed or the environment did (a non-finite loss, a full disk under the
checkpoints or the store, a UI server that cannot start, damage `runs doctor` found and did not fix, a sweep
whose trials a stopped process left running; other crashes show their traceback); 2 a mistake of the user's
(bad config or sweep file, missing file, bad arguments, an unknown command, a run that cannot be resumed, a
sweep that does not match its study), reported in one message without a traceback; 130 interrupted (Ctrl-C),
after a checkpoint; 128 + N for `ui` stopped by signal N.
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

from gravtrain import quiet_tensorflow
from gravtrain.cli.common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, configure_logging, log
from gravtrain.cli.parser import COMMANDS, build_parser
from gravtrain.config import ConfigError

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "build_parser", "configure_logging", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of both ``gravtrain`` and ``python config_trainer.py``. Returns the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] not in COMMANDS and not args_list[0].startswith("-"):
        if not _looks_like_a_config(args_list[0]):
            configure_logging(False)
            log.error("%s", _unknown_command(args_list[0]))
            return EXIT_USAGE
        args_list.insert(0, "train")  # `gravtrain configs/x.yaml` means train
    parser = build_parser()
    args = parser.parse_args(args_list)  # exits 2 with a usage message on bad arguments
    configure_logging(args.verbose)
    quiet_tensorflow.install(args.verbose)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    from gravtrain.data.errors import DataError

    try:
        return args.run(args)
    except (ConfigError, DataError) as exc:  # listed first: a bad config is reported before TensorFlow loads
        log.error("%s", exc)
        return EXIT_USAGE
    except KeyboardInterrupt:
        log.error("interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:
        if isinstance(exc, _lazy_user_errors(args.command)):
            log.error("%s", exc)
            return EXIT_USAGE
        raise


def _looks_like_a_config(word: str) -> bool:
    """A bare first word is a config path (train it) when it names a file or has a path's shape."""
    from pathlib import Path

    return Path(word).suffix.lower() in (".yaml", ".yml") or "/" in word or os.sep in word or Path(word).exists()


def _unknown_command(word: str) -> str:
    import difflib

    close = difflib.get_close_matches(word, COMMANDS, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return (f"unknown command '{word}'; the commands are {', '.join(COMMANDS)}, or give a config file to train "
            f"(gravtrain configs/toy.yaml).{hint}")


def _lazy_user_errors(command: str) -> tuple[type[Exception], ...]:
    """User-facing error types of the rooms that import TensorFlow, imported only for commands that need them."""
    if command == "evaluate":
        from gravtrain.model import ModelFileError

        return (ModelFileError,)
    if command == "train":
        from gravtrain.training import ResumeError

        return (ResumeError,)
    if command == "tune":
        from gravtrain.tune import StudyError

        return (StudyError,)
    return ()


