"""Provenance tags: what a run was made from, so it can be made again.

- ``gravtrain.resolved_config_sha256``: SHA-256 of the resolved config (`gravtrain.config.resolved_yaml`: every
  default filled in, every ``--set`` applied), the same for every run trained with the same values, whatever
  file or overrides gave them; a sweep's trials have it too.
- ``gravtrain.config_sha256``: SHA-256 of the config file's bytes as read (none for a config built in Python).
- ``gravtrain.version``, ``tensorflow.version``, ``keras.version``, ``mlflow.version``: installed versions, read
  from package metadata (TensorFlow is not imported for it; ``tensorflow-cpu`` counts as TensorFlow); a package
  that is not installed has no tag.
- ``mlflow.source.git.commit`` (the tag the MLflow UI shows) and ``gravtrain.git_dirty`` ("true"/"false"):
  when the working directory, or else the config's directory, is inside a git checkout with a commit.
  Dirty means a tracked file differs from the commit; untracked files (e.g. ``mlruns/``) do not count.
  Git is asked with a short timeout; no git, no checkout or a slow git gives no git tags, never an error.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
from importlib import metadata
from pathlib import Path

logger = logging.getLogger(__name__)

GIT_TIMEOUT_SECONDS = 5.0
#: The tag of the resolved config's hash (what `runs list` shows) and of the config file's.
RESOLVED_CONFIG_HASH_TAG = "gravtrain.resolved_config_sha256"
CONFIG_FILE_HASH_TAG = "gravtrain.config_sha256"
#: tag -> the distributions that provide the package, first installed one wins.
VERSION_TAGS = {
    "gravtrain.version": ("gravtrain",),
    "tensorflow.version": ("tensorflow", "tensorflow-cpu"),
    "keras.version": ("keras",),
    "mlflow.version": ("mlflow",),
}


def provenance_tags(config_path: Path | None, config_bytes: bytes | None,
                    resolved_config: str | None = None) -> dict[str, str]:
    """The provenance tags of a run (module docstring).

    Args:
        config_path: the config file, or None for a config built in Python.
        config_bytes: the file's bytes as read by the loader; None reads ``config_path`` (if given).
        resolved_config: the resolved config's YAML (`gravtrain.config.resolved_yaml`), or None for no hash.
    """
    tags: dict[str, str] = {}
    if resolved_config is not None:
        tags[RESOLVED_CONFIG_HASH_TAG] = hashlib.sha256(resolved_config.encode()).hexdigest()
    if config_bytes is None and config_path is not None:
        try:
            config_bytes = Path(config_path).read_bytes()
        except OSError as exc:
            logger.warning("cannot read %s for its checksum: %s", config_path, exc.strerror)
    if config_bytes is not None:
        tags[CONFIG_FILE_HASH_TAG] = hashlib.sha256(config_bytes).hexdigest()
    tags.update(package_versions())
    directories = [Path.cwd()]
    if config_path is not None and Path(config_path).resolve().parent != directories[0]:
        directories.append(Path(config_path).resolve().parent)
    tags.update(git_tags(directories))
    return tags


def package_versions() -> dict[str, str]:
    """``<name>.version`` tags of gravtrain, TensorFlow, Keras and MLflow (installed ones only)."""
    versions = {}
    for tag, distributions in VERSION_TAGS.items():
        for distribution in distributions:
            try:
                versions[tag] = metadata.version(distribution)
                break
            except metadata.PackageNotFoundError:
                continue
        else:
            logger.debug("%s is not installed; no %s tag", distributions[0], tag)
    if "gravtrain.version" not in versions:  # run from a source tree that was never installed
        from gravtrain.version import __version__

        versions["gravtrain.version"] = __version__
    return versions


def git_tags(directories: list[Path]) -> dict[str, str]:
    """The commit and dirty flag of the first of ``directories`` inside a git checkout; {} for none."""
    for directory in directories:
        commit = _git(directory, "rev-parse", "--verify", "HEAD")
        if commit is None:
            continue
        status = _git(directory, "status", "--porcelain", "--untracked-files=no")
        tags = {"mlflow.source.git.commit": commit}
        if status is not None:
            tags["gravtrain.git_dirty"] = "true" if status else "false"
        return tags
    return {}


def _git(directory: Path, *args: str) -> str | None:
    """``git -C directory args`` stripped stdout, or None when git is missing, fails or is too slow."""
    try:
        done = subprocess.run(["git", "-C", os.fspath(directory), *args], capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_SECONDS, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        logger.debug("git %s in %s: %s", args[0], directory, exc)
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip()
