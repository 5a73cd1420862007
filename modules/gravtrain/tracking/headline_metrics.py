"""The headline metrics: the names that `runs list`, `runs compare`, the UI's runs table and the end of training
show first. One place for them; a test pins each against the names a run logs (`gravtrain.training.metric_names`
and a tiny run), so a metric renamed at its source and not here, or here and not there, fails CI.

    physics/efficiency, physics/fake_rate, physics/response   a condensation model's shower headline, above
                                                               Evaluation.energy_threshold
    physics/signal_efficiency, physics/noise_rejection         a noise filter's, at its threshold
    val/objective, val/loss/total                              what training minimises, on the validation events
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
