"""Remake the documentation's images from a real toy run: the event display and the efficiency-against-energy
figure of ``gravtrain evaluate``, and the MLflow UI's runs table as ``gravtrain ui`` opens it.

    python docs/make_images.py                      # trains configs/toy.yaml first (minutes on a CPU)
    python docs/make_images.py --workdir DIR        # reuse DIR's run (its mlruns/ and checkpoints/) if it has one

The training, the store and the evaluation's output stay in ``--workdir`` (default: a new temporary folder); the
images are written to ``docs/images/``. The screenshot needs Chromium (Debian's ``chromium`` package, or
``--chromium``); without it the two figures are still made.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from _common import free_port  # noqa: E402  (the benchmarks' helper)
IMAGES = REPO / "docs" / "images"
CONFIG = REPO / "configs" / "toy.yaml"
#: The figures of ``gravtrain evaluate --out`` the pages show: file written by evaluate -> image of the site.
FIGURES = {"event_display.png": "event_display.png", "efficiency_response.png": "efficiency_response.png"}
RUNS_TABLE = "runs_table.png"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1800,600", "--virtual-time-budget=20000", "--hide-scrollbars"]

logger = logging.getLogger("make_images")


def gravtrain(*words: str, cwd: Path, **options) -> subprocess.CompletedProcess:
    """Run the ``gravtrain`` command of this checkout in ``cwd``; fail with its output if it fails."""
    done = subprocess.run([sys.executable, str(REPO / "config_trainer.py"), *words], cwd=cwd, text=True,
                          capture_output=True, **options)
    if done.returncode != 0:
        raise SystemExit(f"`gravtrain {' '.join(words)}` failed:\n{done.stderr[-3000:]}")
    return done


def trained_model(workdir: Path) -> Path:
    """The model of the toy run in ``workdir``, trained now if there is none."""
    models = sorted((workdir / "checkpoints").glob("*/model.keras"), key=lambda path: path.stat().st_mtime)
    if models:
        logger.info("using the run of %s", models[-1].parent)
        return models[-1]
    logger.info("training %s in %s (minutes on a CPU)", CONFIG.relative_to(REPO), workdir)
    gravtrain(str(CONFIG), cwd=workdir)
    return trained_model(workdir)


def evaluation_figures(workdir: Path, model: Path) -> None:
    gravtrain("evaluate", str(CONFIG), "--model", str(model), "--out", str(workdir / "eval"), cwd=workdir)
    for written, image in FIGURES.items():
        shutil.copyfile(workdir / "eval" / written, IMAGES / image)
        logger.info("wrote %s", (IMAGES / image).relative_to(REPO))


def runs_table_screenshot(workdir: Path, chromium: str) -> None:
    """Start ``gravtrain ui`` on the run's store and screenshot the runs table at the address it prints."""
    port = free_port()
    log_path = workdir / "ui.log"
    with open(log_path, "w") as log:
        ui = subprocess.Popen([sys.executable, str(REPO / "config_trainer.py"), "ui", "mlruns", "--port", str(port),
                               "--mirror", str(workdir / "mirror")], cwd=workdir, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        pattern = rf"http://127\.0\.0\.1:{port}/#/experiments/\d+/runs\S*"
        deadline = time.monotonic() + 180
        while not re.search(pattern, log_path.read_text()):
            if ui.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"gravtrain ui did not start:\n{log_path.read_text()[-2000:]}")
            time.sleep(0.5)  # another process's output: polled, with nothing to wait on
        url = re.search(pattern, log_path.read_text()).group(0)
        with tempfile.TemporaryDirectory() as profile:
            subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                            f"--screenshot={IMAGES / RUNS_TABLE}", url], capture_output=True, timeout=180,
                           check=True)
        logger.info("wrote %s (%s)", (IMAGES / RUNS_TABLE).relative_to(REPO), url)
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(timeout=60)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, help="where the run is (or is trained); default: a new temporary "
                                                     "folder")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "chromium",
                        help="the Chromium to take the screenshot with")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="gravtrain-images-"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    IMAGES.mkdir(exist_ok=True)
    model = trained_model(workdir)
    evaluation_figures(workdir, model)
    if shutil.which(args.chromium):
        runs_table_screenshot(workdir, args.chromium)
    else:
        logger.warning("no Chromium at %s: the runs table's screenshot is not remade", args.chromium)
    return 0


if __name__ == "__main__":
    sys.exit(main())
