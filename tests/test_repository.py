"""The repository itself: what the documented commands write when run from the repository is ignored by git, and no
Python file grows past what one reader holds in mind."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

#: What the guide's commands create here: training (store, checkpoints, a model copied out), a sweep's journal and
#: its lock, a sweep journal given with --storage, `simulate --out data/...`, `evaluate --out eval/`, and
#: `check ... > resolved.yaml`.
#: The most lines of a Python file of the package, the tests, the benchmarks or the entry point. A file that needs
#: more holds more than one concern: split it into a package of small modules (as ``stores/mirror``).
MAX_SOURCE_LINES = 450

WRITTEN_BY_THE_GUIDE = ["mlruns/1/meta.yaml", "mlartifacts/x", "checkpoints/abc/latest", "model.keras",
                        "mlruns-sweeps.journal", "mlruns-sweeps.journal.lock", "sweeps/hgcal.journal",
                        "data/toy/train/shard_00000.npz", "eval/metrics.json", "resolved.yaml", "mlflow.db"]


@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(), reason="not a git checkout")
@pytest.mark.parametrize("path", WRITTEN_BY_THE_GUIDE)
def test_git_ignores_what_the_guide_writes(path):
    found = subprocess.run(["git", "check-ignore", "--no-index", "-q", path], cwd=REPO, timeout=30)
    assert found.returncode == 0, f"{path} is not ignored by .gitignore"


def test_the_configs_and_sweeps_that_ship_are_not_ignored():
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    for path in ("configs/toy.yaml", "configs/sweeps/toy_capacity.yaml"):
        assert subprocess.run(["git", "check-ignore", "--no-index", "-q", path], cwd=REPO, timeout=30).returncode == 1


def test_no_python_file_is_over_the_line_limit():
    files = [REPO / "config_trainer.py", *(REPO / "modules").rglob("*.py"), *(REPO / "tests").rglob("*.py"),
             *(REPO / "benchmarks").rglob("*.py")]
    long = {str(path.relative_to(REPO)): n for path in files
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_SOURCE_LINES}
    assert len(files) > 100 and long == {}, f"over {MAX_SOURCE_LINES} lines: {long}"
