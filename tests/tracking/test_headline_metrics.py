"""The headline names that run lists and comparisons show are names a run logs (a run's own test checks a tiny
run logs them: tests/training/test_end_to_end.py)."""

from gravtrain.tracking.headline_metrics import (
    COMPARE_FIRST,
    HEADLINE_NAMES,
    LIST_METRICS,
    METRIC_HEADINGS,
    NOISE_FILTER_HEADLINE,
    SHOWER_HEADLINE,
)
from gravtrain.training.metric_names import epoch_metric_names


def test_every_headline_name_is_one_a_run_logs():
    logged = set(epoch_metric_names())
    assert set(HEADLINE_NAMES) <= logged, sorted(set(HEADLINE_NAMES) - logged)


def test_the_lists_are_made_of_the_headline_groups():
    assert set(SHOWER_HEADLINE + NOISE_FILTER_HEADLINE) <= set(LIST_METRICS)
    assert set(SHOWER_HEADLINE) <= set(COMPARE_FIRST)
    assert set(METRIC_HEADINGS) == set(LIST_METRICS)
    assert len(set(METRIC_HEADINGS.values())) == len(METRIC_HEADINGS)
