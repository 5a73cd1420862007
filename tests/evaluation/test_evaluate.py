"""Evaluation: a model over events gives metrics and figures; the `evaluate` command from files."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from matplotlib.figure import Figure

from gravtrain.config.schema import Evaluation
from gravtrain.data import PID_NAMES, DataError, FeatureStats, simulate_events
from gravtrain.evaluation import (
    PHYSICS_METRIC_NAMES, busiest_event, evaluate_model, predict_events, save_result, shown_event,
)
from gravtrain.layers import HEAD_NAMES
from gravtrain.model import build_model
from tests.model.conftest import SMALL, small_config

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def events():
    return simulate_events(6, n_particles=(2, 4), energy_range=(2.0, 30.0), noise_hits=15, seed=8)


@pytest.fixture(scope="module")
def model(events):
    return build_model(small_config(), FeatureStats.from_store(events))


def test_predictions_line_up_with_the_store(model, events):
    small_budget = predict_events(model, events, hit_budget=1)  # one event per batch
    one_batch = predict_events(model, events, hit_budget=10**7)
    assert set(one_batch) == set(HEAD_NAMES)
    for name in HEAD_NAMES:
        assert one_batch[name].shape[0] == events.n_hits
        np.testing.assert_allclose(small_budget[name], one_batch[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_repeated_predictions_trace_the_model_once(events):
    from gravtrain.evaluation.runner import _forward_function

    fresh = build_model(small_config(), FeatureStats.from_store(events))
    predict_events(fresh, events, hit_budget=1)
    predict_events(fresh, simulate_events(3, n_particles=(1, 2), noise_hits=5, seed=9))  # other shapes
    assert _forward_function(fresh).experimental_get_tracing_count() == 1


def test_evaluate_model_gives_metrics_and_figures(model, events, tmp_path):
    result = evaluate_model(model, events, Evaluation())
    m = result.metrics
    assert m.n_events == events.n_events and m.n_truth > 0
    assert 0.0 <= m.efficiency <= 1.0 or np.isnan(m.efficiency)
    assert {"efficiency_response", "energy_scatter", "event_display", "cluster_space"} <= set(result.figures)
    assert all(isinstance(figure, Figure) for figure in result.figures.values())
    # the events' counts add up, and the display shows the event the model matched most objects in
    assert len(m.truth_per_event) == len(m.matched_per_event) == events.n_events
    assert m.truth_per_event.sum() == m.n_truth and m.matched_per_event.sum() == m.n_matched
    assert result.display_event == shown_event(m, events)
    assert "efficiency" in result.summary()
    # the efficiency of each species with an object above the threshold, under its PID name
    above = events.truth["t_energy"][:, 0] > m.energy_threshold
    present = {PID_NAMES[c] for c in np.argmax(events.truth["t_pid"][above & (events.truth["t_idx"][:, 0] >= 0)], 1)}
    assert present and set(m.class_efficiency) == present
    assert {f"efficiency_{name}" for name in present} <= set(m.to_dict()) <= set(PHYSICS_METRIC_NAMES)
    assert "efficiency by species above 10 GeV: " in result.summary()
    paths = save_result(result, tmp_path / "out")
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["scalars"]["n_events"] == events.n_events
    assert len(saved["bin_counts"]) == len(saved["energy_bins"]) - 1
    assert all(path.exists() and path.stat().st_size > 0 for path in paths)


def test_the_display_shows_the_event_with_the_most_matches_then_the_most_objects(model, events):
    metrics = evaluate_model(model, events, Evaluation(), figures=False).metrics
    counts = lambda *values: np.array(values, np.int64)  # noqa: E731
    # the busiest event (0) has no match: the display shows the one with the most, of equals the busier one
    chosen = replace(metrics, truth_per_event=counts(5, 2, 3, 1, 1, 1), matched_per_event=counts(0, 2, 2, 0, 0, 0))
    assert shown_event(chosen, events) == 2
    # nothing matched anywhere: the first of the busiest events
    unmatched = replace(metrics, truth_per_event=counts(1, 4, 4, 2, 0, 1), matched_per_event=counts(0, 0, 0, 0, 0, 0))
    assert shown_event(unmatched, events) == 1
    # metrics without the events' numbering: the busiest of the store's events, as during training
    assert shown_event(replace(metrics, matched_per_event=None), events) == busiest_event(events)


def test_a_display_event_out_of_range_is_a_data_error(model, events):
    with pytest.raises(DataError, match="does not exist"):
        evaluate_model(model, events, Evaluation(), display_event=events.n_events)


@pytest.mark.slow
def test_evaluate_command_end_to_end(model, tmp_path):
    config = dict(SMALL, Data={"toy": {"n_train_events": 8, "n_val_events": 4, "noise_hits": 10,
                                       "n_particles": [1, 3]}})
    config_path = tmp_path / "small.yaml"
    config_path.write_text(yaml.safe_dump(config))
    model_path = tmp_path / "model.keras"
    model.save(model_path)
    command = [sys.executable, str(REPO / "config_trainer.py"), "evaluate", str(config_path), "--model",
               str(model_path), "--out", str(tmp_path / "eval")]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "efficiency" in result.stdout and "fake rate" in result.stdout
    assert (tmp_path / "eval" / "event_display.png").stat().st_size > 0

    missing = subprocess.run(command[:5] + [str(tmp_path / "nope.keras")], cwd=tmp_path, capture_output=True,
                             text=True, timeout=300)
    assert missing.returncode == 2 and "no such model file" in missing.stderr
    assert "Traceback" not in missing.stderr
