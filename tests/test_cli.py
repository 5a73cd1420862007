"""The command line as a user meets it: exit codes, one clear message, no traceback."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.config.helpers import MINIMAL, line_of

REPO = Path(__file__).resolve().parent.parent
GRAVTRAIN = Path(sys.executable).parent / "gravtrain"


def run(*args: str, cwd: Path = REPO, entry: str = "config_trainer", env: dict | None = None
        ) -> subprocess.CompletedProcess:
    command = [sys.executable, str(REPO / "config_trainer.py")] if entry == "config_trainer" else [str(GRAVTRAIN)]
    return subprocess.run(command + list(args), cwd=cwd, capture_output=True, text=True, timeout=120, env=env)


#: TensorFlow's start-up lines on a CPU-only machine (CUDA probing, CPU features, absl's note, XLA).
TENSORFLOW_NOISE = re.compile(r"cuda|cuInit|xla|cpu_feature|absl|oneDNN", re.IGNORECASE)


def test_check_prints_the_resolved_config():
    # as a user's shell runs it: no TensorFlow log level chosen, no devices hidden (the suite sets both)
    user_environment = {k: v for k, v in os.environ.items()
                        if k not in ("TF_CPP_MIN_LOG_LEVEL", "CUDA_VISIBLE_DEVICES")}
    result = run("check", "configs/toy.yaml", env=user_environment)
    assert result.returncode == 0, result.stderr
    assert not TENSORFLOW_NOISE.findall(result.stderr), result.stderr  # gravtrain -v shows them
    resolved = yaml.safe_load(result.stdout)
    assert resolved["General"]["name"] == "toy"
    assert resolved["Optimizer"]["epsilon"] == pytest.approx(1e-7)  # a default, filled in
    assert "is valid" in result.stderr
    assert "gravnet_0 " in result.stderr and "condensation_heads" in result.stderr  # the model summary
    assert "Parameters: " in result.stderr and "Traceback" not in result.stderr


def test_a_field_style_config_passes_check_unchanged():
    """Configs guide: a config in the field's style (its key spellings, `- stage_1:` stages, no name) passes `check`
    as it is, model build included, and is named after its file."""
    result = run("check", "tests/config/field_style.yaml")
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    assert resolved["General"]["name"] == "field_style"
    assert resolved["General"]["pre-model-type"] == "none" and resolved["General"]["use_fill_space"] is False
    assert [stage["name"] for stage in resolved["Training"]] == ["stage_1", "stage_2"]
    assert "General.name is not set: it defaults to 'field_style'" in result.stderr
    assert 'Model "field_style"' in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [["train", "nope.yaml"], ["nope.yaml"], ["evaluate", "nope.yaml", "--model", "m.keras"]])
def test_a_missing_config_is_reported_before_tensorflow_loads(args):
    code = (f"import sys; from gravtrain.cli import main; code = main({args!r});"
            "assert 'tensorflow' not in sys.modules, 'TensorFlow imported'; sys.exit(code)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "nope.yaml: no such file" in result.stderr and "Traceback" not in result.stderr


def test_check_without_the_model_does_not_import_tensorflow():
    code = ("import sys; from gravtrain.cli import main; code = main(['check', '--no-model', 'configs/toy.yaml']);"
            "assert 'tensorflow' not in sys.modules, 'TensorFlow imported'; sys.exit(code)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "is valid" in result.stderr and "Parameters:" not in result.stderr


@pytest.mark.skipif(not GRAVTRAIN.exists(), reason="console script not installed in this environment")
def test_console_script_behaves_like_config_trainer():
    a = run("check", "--no-model", "configs/hgcal.yaml")
    b = run("check", "--no-model", "configs/hgcal.yaml", entry="gravtrain")
    assert (a.returncode, a.stdout) == (b.returncode, b.stdout) == (0, a.stdout)


def test_check_with_five_mistakes(tmp_path):
    text = (
        MINIMAL.replace("name: minimal", "name: minimal\n  sed: 3")
        .replace("{n: 8}", "{n: -8}")
        .replace("epochs: 1", "epochs: one")
        + "Optimizer:\n  name: adamm\nLossOptions:\n  beta_push': 0.1\n"
    )
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = run("check", str(path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    error_lines = [line.strip() for line in result.stderr.splitlines() if line.startswith("  ")]
    assert len(error_lines) == 5
    expected = [line_of(text, s) for s in ("sed: 3", "{n: -8}", "epochs: one", "adamm", "beta_push'")]
    assert [int(line.split(":")[1]) for line in error_lines] == sorted(expected)
    assert "5 errors in config" in result.stderr


def test_override_on_the_command_line():
    result = run("check", "--no-model", "configs/toy.yaml", "--set", "Training.1.learning_rate=1e-5",
                 "--set", "General.seed=3")
    resolved = yaml.safe_load(result.stdout)
    assert resolved["Training"][1]["learning_rate"] == pytest.approx(1e-5) and resolved["General"]["seed"] == 3


def test_explicit_flag_lists_defaults(tmp_path):
    path = tmp_path / "minimal.yaml"
    path.write_text(MINIMAL)
    result = run("check", str(path), "--explicit")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "General.seed: not set; it would default to 42" in result.stderr
    assert "--explicit:" in result.stderr


@pytest.mark.parametrize(
    "args, fragment",
    [
        (("check", "configs/missing.yaml"), "no such file"),
        (("check",), "the following arguments are required: config"),
        (("frobnicate.yaml",), "no such file"),
        (("frobnicate",), "unknown command 'frobnicate'; the commands are check, schema, train"),
        (("simulate", "--events", "2", "--out", "/dev/null/x"), "cannot write shards to /dev/null/x: Not a directory"),
        (("ui", "--port", "99999"), "99999 is not a port number: ports go from 1 to 65535"),
        (("ui", "--refresh", "0"), "0 is not a duration: give a number of seconds above 0"),
        (("ui", "mlruns", "--store", "other"), "name the store once: either STORE or --store."),
        (("ui", "/nonexistent/mnt/mlruns", "--port", "5999"), "/nonexistent/mnt/mlruns does not exist"),
        (("runs", "list", "/nonexistent/mnt/mlruns"), "/nonexistent/mnt/mlruns does not exist"),
        (("chek", "configs/toy.yaml"), "Did you mean 'check'?"),
        (("check", "configs/toy.yaml", "--set", "Training.-1.epochs=9"), "negative index -1"),
        (("check", "configs/toy.yaml", "--set", "Tracking.tags.a.b=1"), "--set Tracking.tags.a.b=1: Tracking.tags.a:"),
        (("check", "configs/toy.yaml", "--set", "General"), "Section.key=value"),
        (("--no-such-flag",), "unrecognized arguments"),
    ],
)
def test_user_mistakes_exit_2_without_traceback(args, fragment):
    result = run(*args)
    assert result.returncode == 2
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr


def config_with_pre_model(directory: Path, source: str) -> tuple[Path, int]:
    """The toy config with a noise-filter pre-model at ``source``: its path and the line of pre-model-path."""
    config = (REPO / "configs" / "toy.yaml").read_text().replace(
        "  seed: 42\n", f"  seed: 42\n  pre-model-type: noise-filter\n  pre-model-path: {source}\n", 1)
    path = directory / "main.yaml"
    path.write_text(config)
    return path, config.splitlines().index(f"  pre-model-path: {source}") + 1


def test_a_missing_pre_model_is_one_message_before_training(tmp_path):
    """`check` is all or nothing: a pre-model that cannot be read is one error at its file:line, with no "valid"
    and nothing on stdout (so `check x.yaml > resolved.yaml` writes no file's worth of a failing config)."""
    path, line = config_with_pre_model(tmp_path, "filters/none.keras")
    for options in ((), ("--no-model",)):
        result = run("check", *options, str(path))
        assert result.returncode == 2 and "Traceback" not in result.stderr, options
        assert f"{path}:{line}: General.pre-model-path: '{tmp_path.as_posix()}/filters/none.keras' does not " \
               "exist" in result.stderr, options
        assert "is valid" not in result.stderr and result.stdout == "", options


def test_check_without_the_model_asks_the_store_for_a_pre_model_run_without_tensorflow(tmp_path):
    path, line = config_with_pre_model(tmp_path, f"runs:/{'0' * 32}/model")
    code = ("import sys; from gravtrain.cli import main; code = main(['check', '--no-model', 'main.yaml']);"
            "assert 'tensorflow' not in sys.modules, 'TensorFlow imported'; sys.exit(code)")
    environment = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120, env=dict(environment, PYTHONPATH=str(REPO / "modules")))
    assert result.returncode == 2, result.stderr
    assert f"main.yaml:{line}: General.pre-model-path: 'runs:/{'0' * 32}/model' could not be read from the " \
           "store" in result.stderr
    assert "is valid" not in result.stderr and result.stdout == ""


def test_check_refuses_more_devices_than_tensorflow_sees():
    # A CPU-only process sees no GPU: General.devices 2 is a config mistake that check reports, before training.
    result = run("check", "configs/toy.yaml", "--set", "General.devices=2")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "General.devices: is 2, but TensorFlow sees 0 GPU(s)" in result.stderr


def test_syntax_error_is_one_message(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("General:\n  name: [unclosed\nTraining: []\n")
    result = run("check", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{path}:" in result.stderr and "YAML syntax error" in result.stderr


def test_schema_prints_every_section():
    result = run("schema")
    assert result.returncode == 0
    for section in ("General", "Data", "Architecture", "DenseOptions", "BatchNormOptions", "LossOptions",
                    "Optimizer", "Training", "Plotting", "Evaluation", "Tracking"):
        assert f"\n{section}:" in result.stdout


def test_bare_config_argument_means_train():
    """`config_trainer.py CONFIG` is `train CONFIG`: its own options parse, and a bad value stops it at once."""
    result = run("configs/toy.yaml", "--no-tracking", "--set", "Training.0.epochs=0")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "Training.0.epochs: must be >= 1, got 0" in result.stderr


def test_python_dash_m_gravtrain():
    result = subprocess.run([sys.executable, "-m", "gravtrain", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("gravtrain ")


def test_hostile_yaml_is_one_message(tmp_path):
    from tests.config.test_yaml_bounds import alias_bomb
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb(levels=9, width=10) + "x: " + "[" * 5000 + "]" * 5000 + "\n")
    result = run("check", "--no-model", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{path}:10: lists and mappings nested more than" in result.stderr
    path.write_text(alias_bomb(levels=9, width=10))
    result = run("check", "--no-model", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "values through its aliases" in result.stderr


def test_cli_returns_only_its_named_exit_codes():
    """The cli package returns EXIT_* names, never a bare number (argparse's own exit 2 aside)."""
    bare = []
    for path in sorted((REPO / "modules" / "gravtrain" / "cli").glob("*.py")):
        tree = ast.parse(path.read_text())
        bare += [f"{path.name}:{node.lineno}" for node in ast.walk(tree)
                 if (isinstance(node, ast.Return) and isinstance(node.value, ast.Constant)
                     and isinstance(node.value.value, int))
                 or (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "exit"
                     and any(isinstance(arg, ast.Constant) for arg in node.args))]
    assert bare == []


def test_simulate_writes_refuses_and_overwrites(tmp_path):
    out = tmp_path / "shards"
    first = run("simulate", "--events", "3", "--events-per-shard", "2", "--out", str(out), "--seed", "4")
    assert first.returncode == 0, first.stderr
    assert f"wrote 3 train events in 2 shard(s) to {out}" in first.stderr
    again = run("simulate", "--events", "1", "--out", str(out))
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert f"{out} already holds 2 shard(s); choose another --out or pass --overwrite." in again.stderr
    replaced = run("simulate", "--events", "1", "--out", str(out), "--overwrite", "--split", "val")
    assert replaced.returncode == 0 and sorted(p.name for p in out.iterdir()) == ["shard_00000.npz"]
