"""A checkpoint save killed at each of its file-system steps leaves a run that resumes.

The kill is injected deterministically: every file-system operation of ``save_checkpoint`` is counted, and the
n-th raises :class:`Killed` (a ``BaseException``, so nothing in the save can catch it), leaving the files exactly
as a SIGKILL at that point would. The scenario is the dangerous one: the stage-end save, which has the same
step as the checkpoint in force and also writes the ``stage-N-end`` copy.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest

from gravtrain.training import checkpoint as ckpt


class Killed(BaseException):
    """The process dies here."""


class FaultInjector:
    """Counts file-system operations of a save; the one numbered ``kill_at`` (0-based) raises ``Killed``."""

    def __init__(self, monkeypatch, kill_at: int | None):
        self.kill_at, self.steps = kill_at, []
        for owner, name in ((os, "replace"), (shutil, "rmtree"), (shutil, "copytree"), (np, "savez"),
                            (Path, "write_text"), (Path, "mkdir"), (keras.Model, "save_weights")):
            monkeypatch.setattr(owner, name, self._wrap(f"{getattr(owner, '__name__', owner)}.{name}",
                                                        getattr(owner, name)))

    def _wrap(self, label, function):
        def step(*args, **kwargs):
            paths = [Path(a).name for a in args if isinstance(a, Path) or isinstance(a, str) and "\n" not in a]
            described = f"{label}({', '.join(paths)})"
            if len(self.steps) == self.kill_at:
                self.steps.append(described)
                raise Killed(described)
            self.steps.append(described)
            return function(*args, **kwargs)
        return step


def tiny_model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(1)])
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(model.trainable_variables)
    return model, optimizer


def stage_end_save(run_dir: Path, monkeypatch, kill_at: int | None) -> list[str]:
    """An epoch-end checkpoint at step 40, then the stage-end one at the same step, killed at ``kill_at``."""
    model, optimizer = tiny_model()
    progress = ckpt.Progress(stage=0, stage_epoch=2, epoch=2, step=40)
    ckpt.save_checkpoint(run_dir, model, optimizer, progress, keep_as="stage-1-end")  # an older stage-end copy
    progress.stage_end_reasons = ["epochs"]
    with monkeypatch.context() as patch:
        injector = FaultInjector(patch, kill_at)
        try:
            ckpt.save_checkpoint(run_dir, model, optimizer, progress, keep_as="stage-1-end")
        except Killed:
            pass
    return injector.steps


def test_a_kill_at_every_step_of_a_save_leaves_a_resumable_run(tmp_path, monkeypatch):
    steps = stage_end_save(tmp_path / "uninterrupted", monkeypatch, kill_at=None)
    assert len(steps) >= 8, steps
    outcomes, unresumable, leftovers = [], [], []
    for kill_at in range(len(steps)):
        run_dir = tmp_path / f"killed-at-{kill_at}"
        done = stage_end_save(run_dir, monkeypatch, kill_at)
        latest = ckpt.latest_checkpoint(run_dir)
        if latest is None:
            unresumable.append(f"killed at {done[-1]}: {sorted(os.listdir(run_dir))}")
            continue
        model, optimizer = tiny_model()
        progress = ckpt.restore_checkpoint(latest, model, optimizer)
        assert progress.step == 40
        # The stage-end copy may only be missing while it is being swapped in (the run itself is intact) ...
        assert (run_dir / "stage-1-end" / ckpt.PROGRESS_FILE).is_file() or "stage-1-end" in done[-1]
        outcomes.append((done[-1], progress.stage_end_reasons))
        # The resumed run's next save succeeds and clears what the killed one left behind.
        progress.step = 41
        ckpt.save_checkpoint(run_dir, model, optimizer, progress)
        left = sorted(name for name in os.listdir(run_dir) if name.startswith("."))
        # ... and is back after the next save.
        if left or len(list(run_dir.glob("ckpt-*"))) != 1 or not (run_dir / "stage-1-end").is_dir():
            leftovers.append(f"killed at {done[-1]}: {sorted(os.listdir(run_dir))}")
    assert unresumable == []
    assert leftovers == []
    # Killed before the pointer moved: the previous checkpoint; after: the new one (with the stage's end).
    assert outcomes[0][1] == [] and outcomes[-1][1] == ["epochs"]


def test_latest_checkpoint_falls_back_to_the_newest_complete_one(tmp_path, caplog):
    model, optimizer = tiny_model()
    ckpt.save_checkpoint(tmp_path, model, optimizer, ckpt.Progress(step=7))
    kept = ckpt.save_checkpoint(tmp_path, model, optimizer, ckpt.Progress(step=9), keep_as="stage-1-end")
    (tmp_path / ckpt.LATEST).write_text("")  # a pointer emptied by a full disk
    assert ckpt.latest_checkpoint(tmp_path) == kept
    assert "does not name a complete checkpoint" in caplog.text
    (tmp_path / ckpt.LATEST).unlink()
    assert ckpt.latest_checkpoint(tmp_path) == kept
    shutil.rmtree(kept)
    assert ckpt.latest_checkpoint(tmp_path) is None


def test_a_save_at_the_step_in_force_never_overwrites_it(tmp_path):
    model, optimizer = tiny_model()
    first = ckpt.save_checkpoint(tmp_path, model, optimizer, ckpt.Progress(step=5))
    second = ckpt.save_checkpoint(tmp_path, model, optimizer, ckpt.Progress(step=5, stage_end_reasons=["epochs"]))
    assert second != first and not first.exists()
    assert ckpt.latest_checkpoint(tmp_path) == second
    assert ckpt.restore_checkpoint(second, *tiny_model()).stage_end_reasons == ["epochs"]


def test_a_full_disk_leaves_the_checkpoint_in_force_and_says_so(tmp_path, monkeypatch):
    import errno

    model, optimizer = tiny_model()
    first = ckpt.save_checkpoint(tmp_path, model, optimizer, ckpt.Progress(step=3))

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", full)
    with pytest.raises(ckpt.CheckpointWriteError) as error:
        ckpt.save_checkpoint(tmp_path, model, optimizer, ckpt.Progress(step=4))
    assert str(error.value) == (f"cannot write a checkpoint into {tmp_path} (the disk is full: OSError: [Errno 28] No "
                                f"space left on device); the checkpoint in "
                                f"force, {first.name}, is intact. Free space there (or point Tracking.checkpoint_dir "
                                "at a disk with room)")
    assert ckpt.latest_checkpoint(tmp_path) == first
    assert sorted(path.name for path in tmp_path.iterdir()) == [first.name, ckpt.LATEST]


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__, "-q"])


def test_kept_metrics_are_written_once_by_the_resume(tmp_path, monkeypatch):
    """A resume killed after writing the kept metrics but before removing their file writes none twice."""
    import json

    from gravtrain.tracking import MlflowTracker
    from gravtrain.training.run import UNWRITTEN_METRICS_FILE, RunContext

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with MlflowTracker.start(tracking_uri=str(tmp_path / "mlruns"), experiment="e", run_name="r") as tracker:
        tracker.log_metrics({"loss": 1.0}, step=1)
        tracker.log_metrics({"loss": 2.0}, step=2)
        tracker.flush(wait=True)
        context = RunContext(tracker=tracker, run_id=tracker.run_id, run_dir=tmp_path)
        kept = [("loss", 2.0, 1, 2), ("loss", 3.0, 1, 3)]  # step 2 reached the store before the kill
        (tmp_path / UNWRITTEN_METRICS_FILE).write_text("".join(json.dumps(r) + "\n" for r in kept) + '["loss", 4.')
        assert context.replay_unwritten_metrics() == 1
        assert not (tmp_path / UNWRITTEN_METRICS_FILE).exists()
        steps, values = tracker.metric_histories()["loss"]
        assert (steps, values) == ([1, 2, 3], [1.0, 2.0, 3.0])
        assert tracker.existing_metric_steps("loss") == [1, 2, 3]
        history = tracker.client.get_metric_history(tracker.run_id, "loss")
        assert sorted(m.step for m in history) == [1, 2, 3]  # each step once
