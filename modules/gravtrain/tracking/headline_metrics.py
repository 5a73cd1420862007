"""The headline metrics: the names that `runs list`, `runs compare`, the UI's runs table and the end of training
show first. One place for them; a test pins each against the names a run logs (`gravtrain.training.metric_names`
and a tiny run), so a metric renamed at its source and not here, or here and not there, fails CI.

    physics/efficiency, physics/fake_rate, physics/response   a condensation model's shower headline, above
                                                               Evaluation.energy_threshold
    physics/signal_efficiency, physics/noise_rejection         a noise filter's, at its threshold
    val/objective, val/loss/total                              what training minimises, on the validation events

The UI's chart view groups a run's metrics in sections, one per name prefix (``physics/efficiency`` is in
``physics``; a name without ``/`` in MLflow's "Model metrics"). `CHART_SECTIONS` orders them, physics first.
"""

from __future__ import annotations

#: A condensation model's physics headline.
SHOWER_HEADLINE = ("physics/efficiency", "physics/fake_rate", "physics/response")
#: A noise filter's physics headline.
NOISE_FILTER_HEADLINE = ("physics/signal_efficiency", "physics/noise_rejection")
#: The objective training minimises (the validation loss with the regularisers), and the loss alone.
OBJECTIVE = "val/objective"
TOTAL_LOSS = "val/loss/total"

#: The columns of `runs list` and the UI's runs table, in order: a run lacking one shows "-".
LIST_METRICS = SHOWER_HEADLINE + NOISE_FILTER_HEADLINE + (OBJECTIVE,)
#: Short column headings of `LIST_METRICS`.
METRIC_HEADINGS = {"physics/efficiency": "eff", "physics/fake_rate": "fake", "physics/response": "resp",
                   "physics/signal_efficiency": "sig_eff", "physics/noise_rejection": "noise_rej",
                   OBJECTIVE: "val/objective"}  # the validation objective, not the last step's
#: The metrics `runs compare` shows first, in this order; the others follow alphabetically.
COMPARE_FIRST = SHOWER_HEADLINE + (OBJECTIVE, TOTAL_LOSS)

#: Every headline name.
HEADLINE_NAMES = tuple(dict.fromkeys(LIST_METRICS + COMPARE_FIRST))

#: MLflow's own chart sections: the metrics named without a "/", and its system metrics (``system/...``).
MODEL_METRICS_SECTION = "Model metrics"
SYSTEM_METRICS_SECTION = "System metrics"
#: The order of the chart sections in the UI's chart view of a gravtrain experiment: the physics first, then what
#: training minimises, the steps' own metrics, the epoch averages, the regularisers and the data bookkeeping.
#: MLflow would sort them alphabetically (``data`` first); a test pins that every section a run logs is here.
CHART_SECTIONS = ("physics", "val", "val/loss", MODEL_METRICS_SECTION, "loss", "epoch", "epoch/loss", "regularizer",
                  "val/regularizer", "epoch/regularizer", "data", SYSTEM_METRICS_SECTION)


def chart_section(metric: str) -> str:
    """The chart section of a metric, as MLflow's UI groups it: its name up to the last "/"."""
    if metric.startswith("system/"):
        return SYSTEM_METRICS_SECTION
    return metric.rsplit("/", 1)[0] if "/" in metric else MODEL_METRICS_SECTION
