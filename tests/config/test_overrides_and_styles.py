"""``--set`` overrides, the field's ``- stage_1:`` style, and explicit mode."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from gravtrain.config import Config, ConfigError, load_config, resolve_config
from gravtrain.config.reference import schema_reference
from tests.config.helpers import MINIMAL, line_of

FIELD_STYLE_FILE = Path(__file__).with_name("field_style.yaml")

TWO_STAGES = MINIMAL + "  - epochs: 2\n    batch_size: 8000\n    learning_rate: 1e-4\n"


def test_override_scalar_and_list_index(write_config):
    path = write_config(TWO_STAGES)
    config = load_config(path, ["Training.1.learning_rate=3e-5", "General.seed=7", "Architecture.gravnet.0.n=12"])
    assert config.Training[1].learning_rate == pytest.approx(3e-5)
    assert config.Training[0].learning_rate == pytest.approx(1e-3)
    assert config.General.seed == 7 and config.Architecture.gravnet[0].n == 12


def test_override_creates_stage_overrides_and_whole_lists(write_config):
    config = load_config(
        write_config(MINIMAL), ["Training.0.LossOptions.q_min=0.5", "Data.toy.n_particles=[3, 4]"]
    )
    assert config.Training[0].LossOptions.q_min == 0.5
    assert config.Data.toy.n_particles == (3, 4)


def test_override_errors_name_the_override(write_config):
    path = write_config(TWO_STAGES)
    with pytest.raises(ConfigError) as info:
        load_config(path, ["Training.1.learning_rate=fast", "General.sed=3", "Training.4.epochs=1", "nonsense"])
    by_file = {e.file: e for e in info.value.errors}
    rate = by_file["--set Training.1.learning_rate=fast"]
    assert rate.line is None and "expected a number, got the string 'fast'" in rate.message
    assert by_file["--set General.sed=3"].suggestions == ("seed",)
    assert "has 2 items; index 4 does not exist" in by_file["--set Training.4.epochs=1"].message
    assert "Section.key=value" in by_file["--set nonsense"].message


def test_override_errors_and_file_errors_come_together(write_config):
    text = MINIMAL + "Optimizer:\n  name: adamm\n"
    with pytest.raises(ConfigError) as info:
        load_config(write_config(text), ["General.seed=-3"])
    assert [(e.path, e.line) for e in info.value.errors] == [
        ("Optimizer.name", line_of(text, "adamm")),
        ("General.seed", None),
    ]


FIELD_STYLE = """\
General:
  name: field-style
  description-string: written as the field writes configs
Architecture:
  gravnet:
    - n: 16
    - n: 32
  message_passing:
    - n: 32
  dense_pre_gravnet:
    - n: 64
  dense_post_message_passing:
    - n: 64
  dense_final:
    - n: 64
  n_cluster_space_coordinates: 3
  n_gravnet_space_coordinates: 4
LossOptions:
  q_min: 1.0
  use_average_cc_pos: 0.9999
BatchNormOptions:
  max_viscosity: 0.9999
  learn: false
Training:
  - stage_1:
    batch_size: 100000
    learning_rate: 0.001
    epochs: 5
  - stage_2:
    batch_size: 150000
    learning_rate: 0.0001
    epochs: 3
    LossOptions:
      beta_push: 0.05
"""


def test_field_stage_style_passes_unchanged(write_config):
    config = load_config(write_config(FIELD_STYLE))
    assert [s.name for s in config.Training] == ["stage_1", "stage_2"]
    assert config.Training[1].LossOptions.beta_push == 0.05
    assert config.Training[1].LossOptions.q_min is None  # not overridden: the section's value applies


def test_field_stage_style_errors_keep_their_lines(write_config):
    text = FIELD_STYLE.replace("    epochs: 3", "    epoch: 3")
    with pytest.raises(ConfigError) as info:
        load_config(write_config(text))
    lines = {e.path: e.line for e in info.value.errors}
    assert lines["Training.1.epoch"] == line_of(text, "epoch: 3")
    assert lines["Training.1.epochs"] == line_of(text, "- stage_2:")


def test_nested_stage_style(write_config):
    text = MINIMAL[: MINIMAL.index("Training:")] + (
        "Training:\n  - warmup:\n      epochs: 1\n      batch_size: 100\n      learning_rate: 1e-3\n"
    )
    config = load_config(write_config(text))
    assert config.Training[0].name == "warmup"


def test_stage_names_default_to_position(write_config):
    config = load_config(write_config(TWO_STAGES))
    assert [config.stage_name(i) for i in range(2)] == ["stage_1", "stage_2"]


def test_override_into_field_style_stage(write_config):
    config = load_config(write_config(FIELD_STYLE), ["Training.0.epochs=9"])
    assert config.Training[0].epochs == 9 and config.Training[0].name == "stage_1"


def test_field_style_file_is_in_the_field_style():
    """The file the configs guide's claim is tested on keeps the field's spellings and has no name."""
    text = FIELD_STYLE_FILE.read_text()
    for spelling in ("pre-model-type: none", "description-string:", "use_fill_space:", "  - stage_1:\n"):
        assert spelling in text
    assert "name:" not in text


def test_name_defaults_to_the_file_stem_and_is_logged_as_a_default(caplog):
    with caplog.at_level(logging.INFO, logger="gravtrain.config"):
        validated = resolve_config(FIELD_STYLE_FILE)
    assert validated.config.General.name == "field_style"
    assert (("General", "name"), "field_style") in validated.defaulted
    assert [r.getMessage() for r in caplog.records if "General.name" in r.getMessage()] == [
        f"General.name is not set: it defaults to 'field_style', the name of {FIELD_STYLE_FILE}."]
    assert validated.config.to_dict()["General"]["name"] == "field_style"


def test_a_quiet_read_reports_no_default_but_returns_it(caplog):
    """``gravtrain train`` checks the file quietly before TensorFlow loads, and train() reports the default once."""
    with caplog.at_level(logging.INFO, logger="gravtrain.config"):
        validated = resolve_config(FIELD_STYLE_FILE, quiet=True)
    assert validated.file_stem_defaults == [(("General", "name"), "field_style")]
    assert not [r for r in caplog.records if "General.name" in r.getMessage()]


def test_name_default_is_listed_by_explicit_mode(write_config):
    path = write_config(MINIMAL.replace("  name: minimal\n", "  seed: 3\n"), name="no-name.v2.yaml")
    with pytest.raises(ConfigError) as info:
        load_config(path, explicit=True)
    assert "not set; it would default to no-name.v2." in {e.message for e in info.value.errors if e.path == "General.name"}
    assert yaml.safe_load(info.value.hint.split("\n\n", 1)[1])["General"]["name"] == "no-name.v2"


def test_a_written_or_overridden_name_is_no_default(write_config, caplog):
    named = resolve_config(write_config(MINIMAL))
    assert named.config.General.name == "minimal" and ("General", "name") not in dict(named.defaulted)
    with caplog.at_level(logging.INFO, logger="gravtrain.config"):
        overridden = resolve_config(FIELD_STYLE_FILE, ["General.name=renamed"])
    assert overridden.config.General.name == "renamed" and ("General", "name") not in dict(overridden.defaulted)
    assert not [r for r in caplog.records if "General.name" in r.getMessage()]


def test_a_config_not_read_from_a_file_must_name_itself(write_config):
    data = load_config(write_config(MINIMAL)).to_dict()
    del data["General"]["name"]
    with pytest.raises(ConfigError) as info:
        Config.from_dict(data)
    (issue,) = info.value.errors
    assert issue.path == "General.name" and "only when the config is read from a file" in issue.message
    assert Config.from_dict({**data, "General": {**data["General"], "name": "given"}}).General.name == "given"


def test_reference_documents_the_name_default():
    line = next(line for line in schema_reference().splitlines() if line.strip().startswith("name: string"))
    assert "default the config file's name without its extension" in line


def deep_merge(base, extra):
    if isinstance(base, dict) and isinstance(extra, dict):
        return {**base, **{k: deep_merge(base.get(k), v) if k in base else v for k, v in extra.items()}}
    if isinstance(base, list) and isinstance(extra, list):
        return [deep_merge(b, e) for b, e in zip(base, extra)] + base[len(extra):]
    return base if extra is None else extra


def test_explicit_mode_lists_defaults_as_yaml(write_config):
    path = write_config(MINIMAL)
    with pytest.raises(ConfigError) as info:
        load_config(path, explicit=True)
    paths = {e.path for e in info.value.errors}
    assert {"General.seed", "Optimizer.name", "Training.0.freeze", "Data.toy.n_particles"} <= paths
    assert "Training.0.LossOptions.q_min" not in paths  # unset stage overrides are not defaults
    snippet = yaml.safe_load(info.value.hint.split("\n\n", 1)[1])
    assert snippet["General"]["seed"] == 42 and snippet["Optimizer"]["name"] == "nadam"

    # Pasting the snippet in (merging each section) makes the config fully explicit.
    merged = deep_merge(yaml.safe_load(MINIMAL), snippet)
    explicit_path = write_config(yaml.safe_dump(merged, sort_keys=False), name="explicit.yaml")
    assert resolve_config(explicit_path, explicit=True).defaulted == []


def test_explicit_mode_passes_a_fully_written_config(write_config, repo_root):
    from gravtrain.config import resolved_yaml

    resolved = resolved_yaml(load_config(repo_root / "configs" / "toy.yaml"))
    assert load_config(write_config(resolved), explicit=True) == load_config(repo_root / "configs" / "toy.yaml")
