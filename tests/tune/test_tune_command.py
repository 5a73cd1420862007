"""`gravtrain tune` as a user meets it: one message and exit code 2 for a mistake, never a traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gravtrain.cli import EXIT_USAGE, main
from tests.tune.test_validation import write


def test_a_missing_sweep_file_is_one_message(tmp_path, capsys):
    assert main(["tune", str(tmp_path / "nope.yaml")]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "nope.yaml: no such sweep file" in err and "Traceback" not in err


def test_a_bad_sweep_is_reported_before_anything_runs(tmp_path, capsys):
    sweep = write(tmp_path)
    sweep.write_text(sweep.read_text().replace("sampler: random", "sampler: bayes"))
    assert main(["tune", str(sweep), "--dry-run"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "sweep.yaml:3: sampler: 'bayes' is not a valid choice" in err and "Traceback" not in err


@pytest.mark.parametrize("args", [["--workers", "0"], ["--devices", "a,b"]])
def test_bad_tune_arguments(tmp_path, capsys, args):
    with pytest.raises(SystemExit) as exc:
        main(["tune", str(write(tmp_path)), *args])
    assert exc.value.code == EXIT_USAGE


def test_train_refuses_a_base_config(tmp_path, capsys):
    write(tmp_path)
    assert main(["train", str(tmp_path / "base.yaml")]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "holds 'sweep'" in err and "gravtrain tune SWEEP.yaml" in err and "Traceback" not in err


@pytest.mark.slow
def test_a_changed_sweep_cannot_join_the_old_study(tmp_path, capsys):
    from gravtrain.cli import configure_logging
    from tests.tune.test_sweeps import tune_here, write_sweep

    configure_logging(False)  # the log of the first sweep goes to this test's stderr
    sweep = write_sweep(tmp_path, {"trials": 1})
    tune_here(tmp_path, sweep)
    sweep.write_text(sweep.read_text().replace("trials: 1", "trials: 2"))
    previous = Path.cwd()
    os.chdir(tmp_path)
    try:
        assert main(["tune", str(sweep)]) == EXIT_USAGE
    finally:
        os.chdir(previous)
    err = capsys.readouterr().err
    assert "was started from another sweep file" in err and "Traceback" not in err


def test_an_objective_the_training_does_not_log(tmp_path):
    from gravtrain.config import ConfigError
    from gravtrain.tune import check_sweep
    from tests.config.helpers import line_of

    sweep = write(tmp_path)
    text = sweep.read_text() + "objective: {metric: physics/efficency, direction: maximize}\n"
    sweep.write_text(text)
    with pytest.raises(ConfigError) as exc:
        check_sweep(sweep)
    issue = exc.value.errors[0]
    assert issue.file.endswith("sweep.yaml") and issue.line == line_of(text, "objective:")
    assert "physics/efficiency" in issue.suggestions


def test_the_median_pruner_needs_the_objective_during_training(tmp_path):
    from gravtrain.config import ConfigError
    from gravtrain.tune import check_sweep
    from tests.config.helpers import line_of
    from tests.tune.test_validation import BASE

    base = BASE + "Plotting:\n  physics_frequency: 0\n"
    sweep = write(tmp_path, base=base)
    content = sweep.read_text() + "pruner: median\nobjective: {metric: physics/efficiency, direction: maximize}\n"
    sweep.write_text(content)
    with pytest.raises(ConfigError) as exc:
        check_sweep(sweep)
    issue = exc.value.errors[0]
    assert issue.file.endswith("sweep.yaml") and issue.line == line_of(content, "pruner: median")
    assert "base.yaml sets Plotting.physics_frequency to 0" in issue.message


def test_the_sweep_reference_comes_from_the_sweep_schema(capsys):
    from gravtrain.config.fields import section_keys
    from gravtrain.tune.sweep_file import SweepHeader

    assert main(["schema", "--sweep"]) == 0
    out = capsys.readouterr().out
    assert all(f"\n{info.yaml_name}:" in out for info in section_keys(SweepHeader))
    assert "sampler: string, one of grid | random | tpe, required" in out
