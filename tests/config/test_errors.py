"""Each kind of config mistake: reported at its exact line, with the fix suggested, all in one go."""

from __future__ import annotations

import pytest

from gravtrain.config import ConfigError, load_config
from tests.config.helpers import MINIMAL, line_of


def errors_of(write_config, text: str):
    with pytest.raises(ConfigError) as info:
        load_config(write_config(text))
    return info.value.errors


def only_error(write_config, text: str):
    errors = errors_of(write_config, text)
    assert len(errors) == 1, [str(e) for e in errors]
    return errors[0]


def test_minimal_config_is_valid(write_config):
    config = load_config(write_config(MINIMAL))
    assert config.General.name == "minimal"
    assert config.Training[0].learning_rate == pytest.approx(1e-3)


def test_misspelt_key_gets_line_and_suggestion(write_config):
    text = MINIMAL.replace("  dense_final:", "  n_grav_net_space_coordinates: 4\n  dense_final:")
    issue = only_error(write_config, text)
    assert issue.line == line_of(text, "n_grav_net_space_coordinates")
    assert issue.path == "Architecture.n_grav_net_space_coordinates"
    assert issue.suggestions[0] == "n_gravnet_space_coordinates"
    assert "unknown key" in issue.message


def test_stray_quote_in_key(write_config):
    text = MINIMAL + "LossOptions:\n  beta_push': 0.1\n"
    issue = only_error(write_config, text)
    assert issue.line == line_of(text, "beta_push'")
    assert issue.suggestions == ("beta_push",)


def test_key_in_the_wrong_place_points_to_the_right_one(write_config):
    text = MINIMAL + "    q_min: 0.5\n"  # a LossOptions key written directly in a stage
    issue = only_error(write_config, text)
    assert issue.line == line_of(text, "q_min")
    assert issue.suggestions[0] == "Training.0.LossOptions.q_min"


def test_unknown_section_suggests_the_section(write_config):
    text = MINIMAL + "LossOption:\n  q_min: 0.5\n"
    issue = only_error(write_config, text)
    assert issue.line == line_of(text, "LossOption:")
    assert issue.suggestions[0] == "LossOptions"


def test_quoted_number_is_a_string_not_a_number(write_config):
    text = MINIMAL + "LossOptions:\n  q_min: '1e-3'\n"
    issue = only_error(write_config, text)
    assert issue.line == line_of(text, "q_min")
    assert "expected a number, got the string '1e-3'" in issue.message and "remove the quotes" in issue.message


def test_unquoted_exponent_is_a_float(write_config):
    config = load_config(write_config(MINIMAL + "LossOptions:\n  q_min: 1e-3\n  beta_push: .5\n"))
    assert config.LossOptions.q_min == pytest.approx(1e-3)
    assert config.LossOptions.beta_push == 0.5


def test_bool_is_not_an_int(write_config):
    text = MINIMAL.replace("name: minimal", "name: minimal\n  seed: true")
    issue = only_error(write_config, text)
    assert issue.line == line_of(text, "seed: true")
    assert "expected an integer, got the boolean true" in issue.message


def test_float_is_not_an_int(write_config):
    text = MINIMAL.replace("epochs: 1", "epochs: 2.0")
    issue = only_error(write_config, text)
    assert issue.line == line_of(text, "epochs: 2.0")
    assert "write 2" in issue.message


def test_int_is_accepted_as_float(write_config):
    config = load_config(write_config(MINIMAL.replace("learning_rate: 1e-3", "learning_rate: 1")))
    assert config.Training[0].learning_rate == 1.0 and isinstance(config.Training[0].learning_rate, float)


def test_yes_is_not_a_boolean(write_config):
    text = MINIMAL.replace("  name: minimal", "  name: minimal\n  use_fill_space: yes")
    issue = only_error(write_config, text)
    assert issue.line == line_of(text, "use_fill_space")
    assert "true or false" in issue.message and "yes/no" in issue.message


def test_out_of_range(write_config):
    text = MINIMAL.replace("{n: 8}", "{n: 0}")
    issue = only_error(write_config, text)
    assert issue.path == "Architecture.gravnet.0.n"
    assert issue.line == line_of(text, "{n: 0}")
    assert "must be >= 1, got 0" in issue.message


def test_bad_choice_lists_the_valid_ones(write_config):
    text = MINIMAL + "Optimizer:\n  name: adamm\n"
    issue = only_error(write_config, text)
    assert issue.line == line_of(text, "adamm")
    assert "'nadam', 'adam', 'adamw', 'sgd'" in issue.message
    assert "adam" in issue.suggestions


def test_missing_required_key_points_at_its_parent(write_config):
    text = MINIMAL.replace("    batch_size: 5000\n", "")
    issue = only_error(write_config, text)
    assert issue.path == "Training.0.batch_size"
    assert issue.line == line_of(text, "- epochs: 1")
    assert "missing required key 'batch_size'" in issue.message


def test_empty_training_list(write_config):
    text = MINIMAL[: MINIMAL.index("Training:")] + "Training: []\n"
    issue = only_error(write_config, text)
    assert issue.path == "Training" and "must not be empty" in issue.message


def test_duplicate_key_names_both_lines_and_other_errors_still_reported(write_config):
    text = MINIMAL + "LossOptions:\n  q_min: 0.5\n  q_min: 0.7\nOptimizer:\n  name: adamm\n"
    errors = errors_of(write_config, text)
    assert len(errors) == 2
    duplicate, choice = errors
    assert duplicate.line == line_of(text, "q_min", 2)
    assert f"first at line {line_of(text, 'q_min', 1)}, again at line {line_of(text, 'q_min', 2)}" in duplicate.message
    assert choice.path == "Optimizer.name"


def test_cross_field_pre_model_path(write_config):
    text = MINIMAL.replace("name: minimal", "name: minimal\n  pre-model-type: noise-filter")
    issue = only_error(write_config, text)
    assert issue.path == "General.pre-model-path" and "required when pre-model-type" in issue.message


def test_cross_field_ranges(write_config):
    text = MINIMAL + "Data:\n  toy:\n    n_particles: [5, 2]\n    energy_range: [10, 1]\n"
    errors = errors_of(write_config, text)
    assert [e.path for e in errors] == ["Data.toy.n_particles", "Data.toy.energy_range"]
    assert [e.line for e in errors] == [line_of(text, "n_particles"), line_of(text, "energy_range")]


def test_files_source_needs_patterns(write_config):
    issue = errors_of(write_config, MINIMAL + "Data:\n  source: files\n")[0]
    assert issue.path == "Data.source" and "glob patterns" in issue.message


def test_cluster_space_needs_two_dimensions(write_config):
    text = MINIMAL.replace("  dense_final:", "  n_cluster_space_coordinates: 1\n  dense_final:")
    issue = only_error(write_config, text)
    assert "must be >= 2" in issue.message


def test_five_mistakes_give_five_errors_sorted_by_line(write_config):
    text = (
        "General:\n"
        "  name: five\n"
        "  seed: -1\n"                                   # out of range
        "Architecture:\n"
        "  gravnet:\n"
        "    - {n: 8, n_filter: 4}\n"                    # misspelt item key
        "  message_passing: []\n"
        "  dense_pre_gravnet: []\n"
        "  dense_post_message_passing: []\n"
        "  dense_final: []\n"
        "  knn: kd-tree\n"                               # bad choice
        "DenseOptions:\n"
        "  dropout: '0.1'\n"                             # string for a number
        "Training:\n"
        "  - epochs: 1\n"
        "    batch_size: 5000\n"
        "    learning_rat: 1e-3\n"                       # misspelt key (and so a missing one)
    )
    errors = errors_of(write_config, text)
    lines = [e.line for e in errors]
    assert lines == sorted(lines)
    assert {e.line for e in errors} == {3, 6, 11, 13, 15, 17}
    assert len({e.path for e in errors}) == len(errors)


@pytest.mark.parametrize(
    "text, fragment",
    [("", "empty"), ("- a\n- b\n", "top level must be a mapping"), ("General: 5\n", "expected a mapping")],
)
def test_malformed_documents(write_config, text, fragment):
    errors = errors_of(write_config, text)
    assert any(fragment in e.message for e in errors)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)


def test_error_text_is_file_line_path_message(write_config):
    text = MINIMAL + "Optimizer:\n  name: adamm\n"
    path = write_config(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    first = str(info.value).splitlines()[1].strip()
    assert first.startswith(f"{path}:{line_of(text, 'adamm')}: Optimizer.name: 'adamm' is not a valid choice")
