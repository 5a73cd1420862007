"""What a user sees in a real browser: the pages `gravtrain ui` serves, rendered by headless Chromium, checked for
the runs and their metrics (not MLflow 3's GenAI landing page), with screenshots to look at.

    python benchmarks/ui_browser_check.py [--store STORE] [--chromium /usr/bin/chromium] [--out ui_check]

Chromium is Debian's package (``apt-get install chromium``); the script installs nothing. Without ``--store`` it
builds a small store like a cluster's: three gravtrain-like runs (params, metrics with the physics headline,
stage and config-hash tags, artifacts) in an experiment made without the ``mlflow.experimentKind`` tag, written
at one path and then moved to another, as a laptop mounts it.

For each page (the experiment list and the runs table that `gravtrain ui` prints, and for contrast the
experiment's plain address, which MLflow 3 opens in its GenAI mode) it saves a screenshot and the rendered DOM
(``--dump-dom`` after a virtual-time budget, so the React app has loaded and asked the server for the runs), and
checks the DOM for the experiment's name, every run's name and the headline metric columns. Writes
``checks.json`` beside the screenshots; exits 1 if a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import free_port  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1600,1000", "--virtual-time-budget=20000"]
HEADLINE = ("physics/efficiency", "physics/fake_rate", "physics/response")
GENAI_LANDING = "Start tracing your LLM"
EXPERIMENT = "hgcal-endcap"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", help="a store directory to serve (default: build a small moved one)")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--out", default="ui_check", help="folder for the screenshots, DOMs and checks.json")
    return parser.parse_args(argv)


def build_store(root: Path) -> tuple[Path, list[str]]:
    """Three finished gravtrain-like runs written at ``root/cluster/mlruns``, moved to ``root/mnt/mlruns``."""
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    written = root / "cluster" / "mlruns"
    client = MlflowClient(tracking_uri=written.as_uri())
    experiment = client.create_experiment(EXPERIMENT)
    names = []
    for index in range(3):
        name = f"gravnet-k{32 + 8 * index}"
        run_id = client.create_run(experiment, run_name=name, tags={
            "gravtrain.stage": "fine-tune", "gravtrain.config_sha256": f"{index:02d}" * 32,
            "gravtrain.version": "0"}).info.run_id
        client.log_batch(run_id, params=[Param("Architecture.gravnet.0.n", str(32 + 8 * index))], metrics=[
            Metric(key, value + 0.01 * index, 0, step) for step in range(3)
            for key, value in zip(HEADLINE, (0.80 + 0.02 * step, 0.10 - 0.01 * step, 0.97 + 0.01 * step))])
        figure = root / "roc.png"
        figure.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
        client.log_artifact(run_id, str(figure), "evaluation")
        client.set_terminated(run_id)
        names.append(name)
    mounted = root / "mnt" / "mlruns"
    mounted.parent.mkdir(parents=True)
    shutil.move(str(written), str(mounted))
    return mounted, names


def render(chromium: str, url: str, out: Path, stem: str, profile: Path) -> tuple[str, float]:
    """The DOM Chromium renders for ``url`` (saved as ``stem.html``) and a screenshot (``stem.png``); the
    seconds the DOM took."""
    started = time.monotonic()
    dom = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile / stem}-dom", "--dump-dom", url],
                         capture_output=True, text=True, timeout=120).stdout
    seconds = time.monotonic() - started
    (out / f"{stem}.html").write_text(dom)
    subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile / stem}-shot",
                    f"--screenshot={out / f'{stem}.png'}", url], capture_output=True, timeout=120)
    return dom, seconds


def main(argv=None) -> int:
    args = parse_args(argv)
    if not Path(args.chromium).exists():
        print(f"no Chromium at {args.chromium}: install Debian's chromium package, or pass --chromium",
              file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="ui-check-"))
    if args.store:
        store, names, experiment = Path(args.store), [], None
    else:
        (store, names), experiment = build_store(scratch), EXPERIMENT
    port = free_port()
    log_path = out / "ui.log"
    environment = dict(os.environ, PYTHONPATH=str(REPO / "modules"))
    with open(log_path, "w") as log:
        ui = subprocess.Popen([sys.executable, "-m", "gravtrain", "ui", str(store), "--port", str(port),
                               "--mirror", str(scratch / "mirror")], env=environment, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    checks: dict = {"store": str(store), "runs": names, "pages": {}}
    try:
        deadline = time.monotonic() + 120
        while "physics metrics as columns" not in log_path.read_text() and time.monotonic() < deadline:
            if ui.poll() is not None:
                raise SystemExit(f"gravtrain ui stopped:\n{log_path.read_text()[-2000:]}")
            time.sleep(0.25)
        text = log_path.read_text()
        links = re.findall(rf"http://127\.0\.0\.1:{port}/#\S+", text)
        experiment_id = re.search(r"#/experiments/(\d+)/runs", text).group(1)
        pages = {"experiment_list": links[0], "runs_table": links[1],
                 "plain_experiment_address": f"http://127.0.0.1:{port}/#/experiments/{experiment_id}"}
        for stem, url in pages.items():
            dom, seconds = render(args.chromium, url, out, stem, scratch)
            checks["pages"][stem] = {
                "url": url, "seconds": round(seconds, 1),
                "experiment_shown": experiment in dom if experiment else None,
                "every_run_shown": all(name in dom for name in names) if names else None,
                "headline_columns_shown": all(key in dom for key in HEADLINE),
                "genai_landing_page": GENAI_LANDING in dom,
            }
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(timeout=60)
        shutil.rmtree(scratch, ignore_errors=True)
    runs_table = checks["pages"]["runs_table"]
    checks["passed"] = bool(runs_table["headline_columns_shown"] and runs_table["every_run_shown"] is not False
                            and not runs_table["genai_landing_page"]
                            and checks["pages"]["experiment_list"]["experiment_shown"] is not False
                            and not checks["pages"]["experiment_list"]["genai_landing_page"])
    (out / "checks.json").write_text(json.dumps(checks, indent=2) + "\n")
    for stem, page in checks["pages"].items():
        print(f"{stem:26s} experiment shown: {page['experiment_shown']!s:5s}  runs shown: "
              f"{page['every_run_shown']!s:5s}  headline columns: "
              f"{page['headline_columns_shown']!s:5s}  GenAI landing page: {page['genai_landing_page']!s:5s}  "
              f"({page['seconds']} s)  {out / (stem + '.png')}")
    print("passed" if checks["passed"] else "FAILED")
    return 0 if checks["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
