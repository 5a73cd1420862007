"""The sweep report's importance line: Optuna's caveats in the report's own words."""

from __future__ import annotations

import optuna

from gravtrain.tune.report import _importance, importance_caveat


def test_optunas_caveats_are_said_in_the_reports_words():
    assert importance_caveat("Target and region quantiles select the same set of trials. Parameter importances "
                             "will be equal.") == importance_caveat(
        "The number of trials is too small to compute importances. Parameter importances will be equal.")
    assert "run more trials" in importance_caveat("Target and region quantiles select the same set of trials.")
    assert importance_caveat("Some regimes for parameter `Training.0.learning_rate` have less than 2 trials. The "
                             "importance of the parameter may be inaccurate.") == (
        "some values of Training.0.learning_rate have fewer than 2 trials, so its importance is rough")
    assert importance_caveat("something new") == "Optuna: something new"  # an unknown one, named as Optuna's


def test_the_caveats_optuna_warns_while_scoring_reach_the_report_once_in_its_words(monkeypatch):
    from optuna._warnings import optuna_warn

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1) + trial.suggest_float("y", 0, 1), n_trials=3)
    real = optuna.importance.get_param_importances

    def warning_twice(study):  # as PED-ANOVA warns on a study whose quantiles select the same trials
        for _ in range(2):
            optuna_warn("Target and region quantiles select the same set of trials. Parameter importances will be "
                        "equal.")
        return real(study)

    monkeypatch.setattr(optuna.importance, "get_param_importances", warning_twice)
    importance, note = _importance(study, 3)
    assert set(importance) == {"x", "y"}
    assert note == "too few completed trials to tell the keys apart, so every key gets the same importance; run " \
                   "more trials"
