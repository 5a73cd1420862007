"""The house's import plan (setup.cfg's import-linter contracts) holds, and covers every room."""

import ast
import configparser
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "modules" / "gravtrain"


def test_the_import_contracts_hold():
    # In a process of its own: import-linter's command sets up its own console output.
    lint_imports = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(lint_imports), "--config", "setup.cfg", "--no-cache"], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_every_room_has_its_place_in_the_plan():
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    layers = parser["importlinter:contract:rooms"]["layers"]
    planned = {name.strip() for line in layers.split("\n") for name in line.split("|") if name.strip()}
    packages = {f"gravtrain.{path.name}" for path in PACKAGE.iterdir() if (path / "__init__.py").is_file()}
    assert packages <= planned, f"a room (a package of gravtrain) must take a line of the rooms contract in " \
                                f"setup.cfg: {sorted(packages - planned)}"
    exists = {name for name in planned
              if (PACKAGE / name.split(".", 1)[1]).is_dir() or (PACKAGE / f"{name.split('.', 1)[1]}.py").is_file()}
    assert exists == planned, f"the rooms contract names no such module: {sorted(planned - exists)}"


def layer_name_prefixes() -> tuple[str, ...]:
    """model/builder.py's ITERATION_LAYER_PREFIXES and the other layer names it makes, read without importing
    TensorFlow."""
    tree = ast.parse((PACKAGE / "model" / "builder.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "ITERATION_LAYER_PREFIXES":
            return tuple(ast.literal_eval(node.value)) + ("dense_final", "condensation_heads", "pre_pooling")
    raise AssertionError("model/builder.py has no ITERATION_LAYER_PREFIXES")


def test_no_module_outside_model_and_layers_spells_a_layer_name():
    """A layer's name is model/'s to make and to read (`model.anatomy`, `model.freezing`): code elsewhere that
    wrote `gravnet_{i}` or matched `message_passing_0` would break silently when model/ renamed a layer."""
    pattern = re.compile(rf"^({'|'.join(layer_name_prefixes())})_?(\d|{{|\*|$)")
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(PACKAGE).parts[0] in ("model", "layers"):
            continue
        tree = ast.parse(path.read_text())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and node.body and isinstance(node.body[0], ast.Expr)}
        for node in ast.walk(tree):
            text = None
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                text = node.value
            elif isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
                text = str(node.values[0].value)
            if text is not None and pattern.search(text):
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {text[:40]!r}")
    assert found == []
