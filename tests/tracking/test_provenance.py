"""Provenance tags: config checksum, package versions, and the git state inside and outside a checkout."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

import pytest

from gravtrain.tracking import provenance_tags

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


@pytest.fixture
def outside_git(tmp_path, monkeypatch):
    """A working directory that git will not look above (whatever holds the temporary directory)."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(name, raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def git(directory, *args):
    return subprocess.run(["git", "-C", str(directory), "-c", "user.name=gravtrain", "-c",
                           "user.email=gravtrain@example.org", "-c", "commit.gpgsign=false", *args],
                          check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def checkout(tmp_path, outside_git):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "config.yaml").write_text("General: {name: test}\n")
    git(repo, "add", "config.yaml")
    git(repo, "commit", "-q", "-m", "first")
    return repo


def test_checksum_and_versions(outside_git):
    data = b"General:\n  name: toy\n"
    tags = provenance_tags(None, data)
    assert tags["gravtrain.config_sha256"] == hashlib.sha256(data).hexdigest()
    for tag, package in [("gravtrain.version", "gravtrain"), ("keras.version", "keras"), ("mlflow.version", "mlflow"),
                         ("tensorflow.version", "tensorflow")]:
        assert tags[tag] == metadata.version(package)
    assert not any(key.startswith(("mlflow.source.git", "gravtrain.git")) for key in tags)  # not a checkout


def test_checksum_read_from_the_path_when_bytes_are_not_given(outside_git):
    path = outside_git / "c.yaml"
    path.write_bytes(b"a: 1\n")
    assert provenance_tags(path, None)["gravtrain.config_sha256"] == hashlib.sha256(b"a: 1\n").hexdigest()
    assert "gravtrain.config_sha256" not in provenance_tags(None, None)


@needs_git
def test_clean_then_dirty_checkout(checkout, monkeypatch):
    monkeypatch.chdir(checkout)
    tags = provenance_tags(checkout / "config.yaml", None)
    assert tags["mlflow.source.git.commit"] == git(checkout, "rev-parse", "HEAD")
    assert tags["gravtrain.git_dirty"] == "false"
    (checkout / "untracked.txt").write_text("not part of the commit")
    assert provenance_tags(None, None)["gravtrain.git_dirty"] == "false"  # untracked files do not count
    (checkout / "config.yaml").write_text("General: {name: changed}\n")
    assert provenance_tags(None, None)["gravtrain.git_dirty"] == "true"


@needs_git
def test_the_config_directory_counts_when_the_working_directory_is_no_checkout(checkout, outside_git):
    tags = provenance_tags(checkout / "config.yaml", None)
    assert tags["mlflow.source.git.commit"] == git(checkout, "rev-parse", "HEAD")


def test_no_git_no_git_tags(checkout, monkeypatch):
    monkeypatch.chdir(checkout)
    monkeypatch.setenv("PATH", "")
    tags = provenance_tags(None, b"x")
    assert "mlflow.source.git.commit" not in tags and "gravtrain.git_dirty" not in tags
    assert "gravtrain.config_sha256" in tags


def test_the_resolved_config_hash_follows_the_values_not_the_file():
    """Two runs of one file that differ by a --set differ in the resolved hash (what `runs list` shows) and share
    the file's; the same values from another file share the resolved hash."""
    from gravtrain.config import load_config, resolved_yaml

    base = Path(__file__).resolve().parents[2] / "configs" / "toy.yaml"
    data = base.read_bytes()
    plain = provenance_tags(None, data, resolved_yaml(load_config(base)))
    changed = provenance_tags(None, data, resolved_yaml(load_config(base, ["Training.0.learning_rate=0.01"])))
    assert plain["gravtrain.config_sha256"] == changed["gravtrain.config_sha256"]
    assert plain["gravtrain.resolved_config_sha256"] != changed["gravtrain.resolved_config_sha256"]
    assert len(plain["gravtrain.resolved_config_sha256"]) == 64
    assert "gravtrain.resolved_config_sha256" not in provenance_tags(None, data)
