"""The study's bookkeeping on Optuna's in-memory storage: slots, surplus trials, re-queued trials, and the
random sampler whose points depend only on (seed, trial number). No training, no TensorFlow."""

from __future__ import annotations

import math
import socket
import subprocess
import sys

import optuna
import pytest

from gravtrain.tune.sampling import TrialSeededRandomSampler
from gravtrain.tune.spaces import Space
from gravtrain.tune.study import HOST, PID, SET_ASIDE, Census, next_trial, requeue_stale_trials

optuna.logging.set_verbosity(optuna.logging.WARNING)


def new_study(seed: int = 1):
    return optuna.create_study(sampler=TrialSeededRandomSampler(seed))


def test_slots_stop_new_trials_while_others_run():
    study = new_study()
    first, second = next_trial(study, 2), next_trial(study, 2)
    assert first.number == 0 and second.number == 1
    assert next_trial(study, 2) is None  # both slots taken (running)
    study.tell(first, 1.0)
    assert next_trial(study, 2) is None and Census.of(study) == Census(finished=1, running=1, waiting=0, complete=1)


def test_a_trial_beyond_the_last_slot_is_set_aside(monkeypatch):
    study = new_study()
    next_trial(study, 1)
    # Another process read the study before the first trial existed, and asks too: the later number is surplus.
    monkeypatch.setattr(Census, "of", classmethod(lambda cls, s: Census(0, 0, 0, 0)))
    assert next_trial(study, 1) is None
    surplus = study.trials[1]
    assert surplus.state.name == "FAIL" and surplus.user_attrs[SET_ASIDE] == "surplus"
    monkeypatch.undo()
    assert Census.of(study).running == 1


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_trial_of_a_dead_process_is_requeued_with_its_point():
    study = new_study()
    trial = next_trial(study, 3)
    value = Space("uniform", (0.1, 1.0)).suggest(trial, "x")
    trial.set_user_attr(PID, dead_pid())
    alive = next_trial(study, 3)  # this process's own running trial stays
    Space("uniform", (0.1, 1.0)).suggest(alive, "x")
    assert requeue_stale_trials(study) == [0]
    assert study.trials[0].user_attrs[SET_ASIDE] == "requeued" and study.trials[0].state.name == "FAIL"
    assert study.trials[1].state.name == "RUNNING"
    again = next_trial(study, 3)  # the queued copy is taken first
    assert again.number == 2 and Space("uniform", (0.1, 1.0)).suggest(again, "x") == value
    assert Census.of(study) == Census(finished=0, running=2, waiting=0, complete=0)


def test_a_queued_point_whose_process_died_before_suggesting_it_is_queued_again():
    study = new_study()
    study.enqueue_trial({"x": 0.25})  # a grid point, or an earlier re-queued one
    trial = next_trial(study, 2)
    trial.set_user_attr(PID, dead_pid())  # died before `suggest`: the trial has no params yet
    assert study.trials[0].params == {}
    assert requeue_stale_trials(study) == [0]
    again = next_trial(study, 2)
    assert again.number == 1 and Space("uniform", (0.1, 1.0)).suggest(again, "x") == 0.25


def test_a_trial_killed_between_two_suggests_is_requeued_with_the_part_it_had():
    study = new_study()
    trial = next_trial(study, 2)
    x = Space("uniform", (0.1, 1.0)).suggest(trial, "x")  # died before suggesting "y"
    trial.set_user_attr(PID, dead_pid())
    assert requeue_stale_trials(study) == [0]
    again = next_trial(study, 2)
    assert Space("uniform", (0.1, 1.0)).suggest(again, "x") == x  # the part it had is kept
    y = Space("uniform", (2.0, 3.0)).suggest(again, "y")  # the rest is sampled
    assert 2.0 <= y <= 3.0 and study.trials[1].params == {"x": x, "y": y}


def test_a_trial_whose_process_died_before_it_had_a_point_only_frees_its_slot():
    study = new_study()
    trial = next_trial(study, 2)
    trial.set_user_attr(PID, dead_pid())
    assert requeue_stale_trials(study) == []
    assert study.trials[0].user_attrs[SET_ASIDE] == "unstarted" and study.trials[0].state.name == "FAIL"
    assert Census.of(study) == Census(finished=0, running=0, waiting=0, complete=0)
    fresh = next_trial(study, 2)  # sampled anew: nothing was queued
    assert fresh.number == 1 and "fixed_params" not in study.trials[1].system_attrs


def test_a_trial_on_another_machine_is_stale_only_when_its_heartbeat_is_old():
    import time

    from gravtrain.tune.study import HEARTBEAT, STALE_AFTER_SECONDS, is_stale

    study = new_study()
    trial = next_trial(study, 2)
    trial.set_user_attr(HOST, socket.gethostname() + "-elsewhere")
    frozen = study.trials[0]
    assert not is_stale(frozen)
    assert is_stale(frozen, now=frozen.user_attrs[HEARTBEAT] + STALE_AFTER_SECONDS + 1)
    assert time.time() - frozen.user_attrs[HEARTBEAT] < STALE_AFTER_SECONDS


def test_random_points_depend_only_on_the_seed_and_the_trial_number():
    space = {"lr": Space("loguniform", (1e-4, 1e-2)), "n": Space("int", (4, 16), step=4),
             "act": Space("choice", ("elu", "relu", [1, 2]))}

    def points(study, count):
        drawn = []
        for _ in range(count):
            trial = study.ask()
            drawn.append({name: s.suggest(trial, name) for name, s in space.items()})
            study.tell(trial, 0.0)
        return drawn

    a, b = points(new_study(5), 6), points(new_study(5), 6)
    assert a == b and points(new_study(6), 6) != a
    assert all(1e-4 <= p["lr"] <= 1e-2 and p["n"] in (4, 8, 12, 16) and p["act"] in ("elu", "relu", [1, 2])
               for p in a)
    many = [p["lr"] for p in points(new_study(1), 400)]
    below = sum(math.log10(lr) < -3 for lr in many) / len(many)
    assert below == pytest.approx(0.5, abs=0.1)  # uniform in log: half below the geometric middle


def test_space_points_and_descriptions():
    assert Space("int", (4, 16), step=5).points() == [4, 9, 14] and Space("int", (4, 16), step=5).ends() == [4, 14]
    assert Space("choice", (1, [2, 3])).describe() == "one of [1, [2, 3]] (2 values)"
    assert Space("loguniform", (1e-4, 1e-2)).describe() == "a number from 0.0001 to 0.01, log-uniform"
    assert Space("uniform", (0.0, 1.0)).size() == math.inf


def test_the_median_pruner_lets_the_warmup_epochs_train():
    """``pruner_warmup_epochs: W``: a trial trailing the median is stopped at its epoch W + 1, not before."""
    from gravtrain.tune.sampling import make_pruner

    def first_pruned_epoch(warmup: int) -> int | None:
        study = optuna.create_study(direction="maximize", pruner=make_pruner("median", warmup))
        for _ in range(5):  # Optuna's MedianPruner never prunes before five finished trials
            trial = study.ask()
            for epoch in range(1, 7):
                trial.report(0.8, epoch)
            study.tell(trial, 0.8)
        trailing = study.ask()
        for epoch in range(1, 7):
            trailing.report(0.1, epoch)
            if trailing.should_prune():
                return epoch
        return None

    assert first_pruned_epoch(0) == 1
    assert first_pruned_epoch(3) == 4
    assert first_pruned_epoch(6) is None
    assert isinstance(make_pruner("none", 3), optuna.pruners.NopPruner)


def test_every_sampler_and_pruner_a_sweep_file_offers_is_made_and_no_other():
    from gravtrain.tune.sampling import PRUNER_FACTORIES, SAMPLER_FACTORIES, make_pruner, make_sampler
    from gravtrain.tune.sweep_file import PRUNERS, SAMPLERS

    assert tuple(SAMPLER_FACTORIES) == SAMPLERS and tuple(PRUNER_FACTORIES) == PRUNERS
    assert isinstance(make_sampler("tpe", 3), optuna.samplers.TPESampler)
    assert isinstance(make_pruner("median"), optuna.pruners.MedianPruner)
    with pytest.raises(ValueError, match="unknown sampler 'cmaes'; one of grid, random, tpe"):
        make_sampler("cmaes", 3)
    with pytest.raises(ValueError, match="unknown pruner 'hyperband'; one of none, median"):
        make_pruner("hyperband")
