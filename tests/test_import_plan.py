"""The house's import plan (setup.cfg's import-linter contracts) holds, and covers every room."""

import configparser
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
