"""The sweep file and its two-way check against the base config: each mistake names the file and the line,
and hints at the fix. No TensorFlow: these run in well under a second each."""

from __future__ import annotations

from pathlib import Path

import pytest

from gravtrain.config import ConfigError, load_config
from gravtrain.tune import plan_sweep, read_sweep_file
from tests.config.helpers import line_of

BASE = """\
General:
  name: mini
  seed: 11
Architecture:
  gravnet:
    - {n: sweep}
  message_passing: [{n: 16}]
  dense_pre_gravnet: []
  dense_post_message_passing: []
  dense_final: [{n: 16}]
LossOptions:
  q_min: 1.0
Training:
  - epochs: 1
    batch_size: 5000
    learning_rate: sweep
"""

SWEEP = """\
base: base.yaml
model: mini
sampler: random
trials: 4
seed: 1
parameters:
  Training.0.learning_rate: {loguniform: [1.0e-4, 1.0e-2]}
  Architecture.gravnet.0.n: {int: [4, 12], step: 4}
"""


def write(directory: Path, sweep: str = SWEEP, base: str = BASE) -> Path:
    (directory / "base.yaml").write_text(base)
    path = directory / "sweep.yaml"
    path.write_text(sweep)
    return path


def only_issue(exc: pytest.ExceptionInfo) -> object:
    assert len(exc.value.errors) == 1, str(exc.value)
    return exc.value.errors[0]


def test_a_valid_sweep_gives_concrete_configs_with_siblings_kept(tmp_path):
    plan = plan_sweep(write(tmp_path))
    point = {("Training", 0, "learning_rate"): 3e-3, ("Architecture", "gravnet", 0, "n"): 8}
    config = plan.concrete_config(point)
    assert config.Training[0].learning_rate == 3e-3 and config.Training[0].batch_size == 5000
    assert config.Architecture.gravnet[0].n == 8 and config.Architecture.message_passing[0].n == 16
    assert config.General.seed == 11 and plan.concrete_config(point, repeat=2).General.seed == 13
    assert plan.sweep.n_trials == 4 and plan.sweep.n_trainings == 4


def test_train_refuses_a_base_config_and_lists_its_markers(tmp_path):
    write(tmp_path)
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path / "base.yaml")
    lines = sorted(issue.line for issue in exc.value.errors)
    assert lines == [line_of(BASE, "{n: sweep}"), line_of(BASE, "learning_rate: sweep")]
    assert "gravtrain tune" in str(exc.value) and "Architecture.gravnet.0.n, Training.0.learning_rate" in str(exc.value)


def test_a_misspelt_path_is_named_at_its_sweep_line_with_a_hint(tmp_path):
    sweep = SWEEP.replace("Training.0.learning_rate:", "Training.0.learnig_rate:")
    with pytest.raises(ConfigError) as exc:
        plan_sweep(write(tmp_path, sweep))
    issues = {issue.path: issue for issue in exc.value.errors}
    issue = issues["parameters.Training.0.learnig_rate"]
    assert issue.file.endswith("sweep.yaml") and issue.line == line_of(sweep, "learnig_rate")
    assert issue.suggestions == ("learning_rate",)
    # ...and the base config's marker it no longer covers is reported at the base config's line.
    marker = issues["Training.0.learning_rate"]
    assert marker.file.endswith("base.yaml") and marker.line == line_of(BASE, "learning_rate: sweep")
    assert "sweep.yaml" in marker.message


def test_a_swept_key_without_its_marker_names_both_files(tmp_path):
    base = BASE.replace("learning_rate: sweep", "learning_rate: 1e-3")
    with pytest.raises(ConfigError) as exc:
        plan_sweep(write(tmp_path, base=base))
    issue = only_issue(exc)
    assert issue.file.endswith("sweep.yaml") and issue.line == line_of(SWEEP, "Training.0.learning_rate")
    assert f"base.yaml:{line_of(base, 'learning_rate: 1e-3')}" in issue.message
    assert "learning_rate: sweep" in issue.message


def test_a_swept_key_the_base_config_leaves_to_its_default(tmp_path):
    sweep = SWEEP + "  LossOptions.beta_loss_scale: {uniform: [1.0, 2.0]}\n"
    with pytest.raises(ConfigError) as exc:
        plan_sweep(write(tmp_path, sweep))
    issue = only_issue(exc)
    assert issue.line == line_of(sweep, "beta_loss_scale") and "does not set it" in issue.message
    assert f"base.yaml:{line_of(BASE, 'LossOptions:')}" in issue.message


def test_a_marker_no_parameter_covers_is_named_at_the_base_line(tmp_path):
    base = BASE.replace("q_min: 1.0", "q_min: sweep")
    with pytest.raises(ConfigError) as exc:
        plan_sweep(write(tmp_path, base=base))
    issue = only_issue(exc)
    assert issue.file.endswith("base.yaml") and issue.line == line_of(base, "q_min: sweep")
    assert f"line {line_of(SWEEP, 'parameters:')}" in issue.message and "sweep.yaml" in issue.message


def test_a_value_outside_the_schema_range_is_named_at_its_space(tmp_path):
    sweep = SWEEP.replace("{int: [4, 12], step: 4}", "{int: [0, 12], step: 4}")
    with pytest.raises(ConfigError) as exc:
        plan_sweep(write(tmp_path, sweep))
    issue = only_issue(exc)
    assert issue.file.endswith("sweep.yaml") and issue.line == line_of(sweep, "gravnet.0.n")
    assert "the value 0 of its int space is refused" in issue.message and "must be >= 1" in issue.message
    assert f"base.yaml:{line_of(BASE, '{n: sweep}')}" in issue.message


def test_a_choice_of_the_wrong_type_gets_the_validators_hint(tmp_path):
    sweep = SWEEP + "  DenseOptions.activation: {choice: [elu, rleu]}\n"
    base = BASE + "DenseOptions:\n  activation: sweep\n"
    with pytest.raises(ConfigError) as exc:
        plan_sweep(write(tmp_path, sweep, base))
    issue = only_issue(exc)
    assert issue.line == line_of(sweep, "activation") and "rleu" in issue.message
    assert "relu" in issue.suggestions


def test_a_fractional_range_on_an_integer_key(tmp_path):
    sweep = SWEEP.replace("{int: [4, 12], step: 4}", "{uniform: [4, 12]}")
    with pytest.raises(ConfigError) as exc:
        plan_sweep(write(tmp_path, sweep))
    issue = only_issue(exc)
    assert issue.line == line_of(sweep, "gravnet.0.n") and "int: [lo, hi]" in issue.message


@pytest.mark.parametrize("space, message", [
    ("{choice: []}", "non-empty list"),
    ("{uniform: [2.0, 1.0]}", "the space is empty"),
    ("{int: [3, 3]}", "a single value is no space"),
    ("{loguniform: [0.0, 1.0]}", "lo > 0"),
])
def test_an_empty_space(tmp_path, space, message):
    sweep = SWEEP.replace("{loguniform: [1.0e-4, 1.0e-2]}", space)
    with pytest.raises(ConfigError) as exc:
        read_sweep_file(write(tmp_path, sweep))
    issue = only_issue(exc)
    assert issue.file.endswith("sweep.yaml") and issue.line == line_of(sweep, "learning_rate") and message in issue.message


def test_a_misspelt_space_and_header_key(tmp_path):
    sweep = SWEEP.replace("loguniform:", "logunifrom:").replace("sampler: random", "smapler: random")
    with pytest.raises(ConfigError) as exc:
        read_sweep_file(write(tmp_path, sweep))
    by_line = {issue.line: issue for issue in exc.value.errors}
    assert "loguniform" in by_line[line_of(sweep, "logunifrom")].suggestions
    assert "sampler" in by_line[line_of(sweep, "smapler")].suggestions
    assert "the sweep file" in str(exc.value).splitlines()[0]


def test_a_grid_larger_than_trials(tmp_path):
    sweep = SWEEP.replace("sampler: random", "sampler: grid").replace("trials: 4", "trials: 5").replace(
        "{loguniform: [1.0e-4, 1.0e-2]}", "{choice: [1.0e-3, 1.0e-2]}")
    with pytest.raises(ConfigError) as exc:
        read_sweep_file(write(tmp_path, sweep))
    issue = only_issue(exc)
    assert issue.line == line_of(sweep, "trials: 5") and "the grid has 6 points (2 x 3)" in issue.message


def test_a_grid_needs_finite_spaces(tmp_path):
    sweep = SWEEP.replace("sampler: random", "sampler: grid").replace("trials: 4\n", "")
    with pytest.raises(ConfigError) as exc:
        read_sweep_file(write(tmp_path, sweep))
    issue = only_issue(exc)
    assert issue.line == line_of(sweep, "learning_rate") and "use choice or int" in issue.message


def test_a_repeated_path(tmp_path):
    sweep = SWEEP + "  Training.00.learning_rate: {uniform: [0.1, 0.2]}\n"
    with pytest.raises(ConfigError) as exc:
        read_sweep_file(write(tmp_path, sweep))
    issue = only_issue(exc)
    assert issue.line == line_of(sweep, "Training.00") and f"line {line_of(SWEEP, 'Training.0.learning_rate')}" in issue.message


def test_a_yaml_duplicate_key_in_the_sweep_file(tmp_path):
    sweep = SWEEP + "  Training.0.learning_rate: {uniform: [0.1, 0.2]}\n"
    with pytest.raises(ConfigError) as exc:
        read_sweep_file(write(tmp_path, sweep))
    assert any(issue.line == len(sweep.splitlines()) for issue in exc.value.errors)


def test_a_swept_key_fixed_by_a_set_override(tmp_path):
    with pytest.raises(ConfigError) as exc:
        plan_sweep(write(tmp_path), ["Training.0.learning_rate=1e-3"])
    messages = [issue for issue in exc.value.errors if issue.path == "parameters.Training.0.learning_rate"]
    assert len(messages) == 1 and messages[0].line == line_of(SWEEP, "Training.0.learning_rate")
    assert "--set Training.0.learning_rate=1e-3" in messages[0].message and "drop the --set" in messages[0].message


def test_a_sweep_written_for_another_model(tmp_path):
    sweep = SWEEP.replace("model: mini", "model: hgcal")
    with pytest.raises(ConfigError) as exc:
        plan_sweep(write(tmp_path, sweep))
    issue = only_issue(exc)
    assert issue.line == line_of(sweep, "model: hgcal")
    assert f"base.yaml:{line_of(BASE, 'name: mini')} names it 'mini'" in issue.message


def test_a_missing_base_config(tmp_path):
    sweep = SWEEP.replace("base: base.yaml", "base: nowhere.yaml")
    with pytest.raises(ConfigError) as exc:
        plan_sweep(write(tmp_path, sweep))
    issue = only_issue(exc)
    assert issue.line == 1 and "nowhere.yaml" in issue.message


def test_a_random_sweep_needs_trials(tmp_path):
    with pytest.raises(ConfigError) as exc:
        read_sweep_file(write(tmp_path, SWEEP.replace("trials: 4\n", "")))
    assert only_issue(exc).path == "trials"


def test_a_metric_direction_must_be_given_for_any_other_metric(tmp_path):
    sweep = SWEEP + "objective: {metric: physics/efficiency}\n"
    with pytest.raises(ConfigError) as exc:
        read_sweep_file(write(tmp_path, sweep))
    assert only_issue(exc).line == line_of(sweep, "objective:")


def test_the_example_sweeps_are_valid(repo_root):
    sweeps = sorted((repo_root / "configs" / "sweeps").glob("*.yaml"))
    checked = [path for path in sweeps if not path.stem.endswith("_base")]
    models = {path.stem: load_config(path).General.name for path in (repo_root / "configs").glob("*.yaml")}
    # A sweep for every config, named after it; a quality reference (toy_long: the toy's recipe, trained an hour)
    # is swept through the config it lengthens.
    swept = {stem for stem in models if not (stem.endswith("_long") and stem[:-len("_long")] in models)}
    assert swept <= {path.stem for path in checked}
    for path in checked:
        plan = plan_sweep(path)
        assert plan.sweep.header.model == models.get(path.stem, plan.sweep.header.model)
        assert plan.sweep.header.model in models.values()  # more sweeps of a model (toy_capacity) are named freely


VISCOSITY = "BatchNormOptions:\n  viscosity: sweep\n  max_viscosity: sweep\n"


def test_a_sampled_sweep_whose_keys_can_conflict_is_warned_of(tmp_path):
    sweep = SWEEP + ("  BatchNormOptions.viscosity: {uniform: [0.1, 0.99]}\n"
                     "  BatchNormOptions.max_viscosity: {uniform: [0.5, 0.999]}\n")
    plan = plan_sweep(write(tmp_path, sweep, BASE + VISCOSITY))
    assert any("0.99 is above max_viscosity 0.5" in warning and f"sweep.yaml:{line_of(sweep, 'viscosity:')}" in warning
               for warning in plan.warnings)


def test_a_grid_point_that_is_no_valid_config_is_an_error(tmp_path):
    sweep = (SWEEP.replace("sampler: random", "sampler: grid").replace("trials: 4\n", "")
             .replace("{loguniform: [1.0e-4, 1.0e-2]}", "{choice: [1.0e-3]}")
             + "  BatchNormOptions.viscosity: {choice: [0.1, 0.9]}\n"
               "  BatchNormOptions.max_viscosity: {choice: [0.5, 0.99]}\n")
    with pytest.raises(ConfigError) as exc:
        plan_sweep(write(tmp_path, sweep, BASE + VISCOSITY))
    issues = {issue.line for issue in exc.value.errors}
    assert line_of(sweep, "BatchNormOptions.viscosity") in issues
    assert any("0.9 is above max_viscosity 0.5" in issue.message for issue in exc.value.errors)


def test_every_mistake_of_a_sweep_file_comes_in_one_report_with_its_line(tmp_path, capsys):
    """A typo'd path, a key swept without its marker and a value its key does not take: one run names all three."""
    sweep = (SWEEP.replace("Training.0.learning_rate:", "Training.0.learnig_rate:")
             .replace("{int: [4, 12], step: 4}", "{choice: [four, 8]}")
             + "  LossOptions.q_min: {uniform: [0.5, 2.0]}\n")
    path = write(tmp_path, sweep)
    with pytest.raises(ConfigError) as exc:
        plan_sweep(path)
    lines = {issue.path: issue.line for issue in exc.value.errors}
    assert lines["parameters.Training.0.learnig_rate"] == line_of(sweep, "learnig_rate:")
    assert lines["parameters.LossOptions.q_min"] == line_of(sweep, "LossOptions.q_min:")
    assert lines["parameters.Architecture.gravnet.0.n"] == line_of(sweep, "{choice: [four, 8]}")
    assert "four" in str(exc.value)

    from gravtrain.cli import main

    assert main(["tune", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and all(f"sweep.yaml:{lines[key]}: {key}:" in err for key in (
        "parameters.Training.0.learnig_rate", "parameters.LossOptions.q_min", "parameters.Architecture.gravnet.0.n"))
