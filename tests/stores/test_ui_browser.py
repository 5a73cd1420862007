"""`gravtrain ui` in a real browser (headless Chromium through Playwright): the link a training ends with opens
the run in the model-training view, the run page lists the model the run logged, and the experiment's chart view
opens on the physics.

Skipped where Playwright or Chromium is missing; CI installs neither. To run it: ``pip install playwright`` and
a Chromium (Debian's ``chromium`` package, or ``playwright install chromium``)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys

import pytest

from gravtrain.stores.ui import run_url, runs_table_url
from tests.stores.output_watch import OutputWatch
from tests.training.tiny_runs import REPO, TINY, free_port, train_in, write_config

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")

#: A Chromium on the PATH, else Playwright's own download (None: Playwright looks for it and the test skips).
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")

pytestmark = pytest.mark.slow


def _browser(playwright):
    try:
        return playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
    except sync_api.Error as error:  # no browser where Playwright looked
        pytest.skip(f"no Chromium to run: {str(error).splitlines()[0]}")


def test_the_link_a_training_ends_with_opens_the_run_and_lists_its_model(tmp_path):
    config = write_config(tmp_path, **{"Training": TINY["Training"][:1], "Plotting.physics_frequency": 0})
    result = train_in(tmp_path, config)
    port = free_port()
    ui = subprocess.Popen([sys.executable, str(REPO / "config_trainer.py"), "ui", "mlruns", "--port", str(port)],
                          cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          start_new_session=True)
    watch = OutputWatch(ui)
    try:
        assert watch.wait_for("browse http://", timeout=180), watch.text[-3000:]
        with sync_api.sync_playwright() as playwright:
            browser = _browser(playwright)
            page = browser.new_page(viewport={"width": 1600, "height": 1200})
            # the address the end of training prints (`gravtrain.stores.ui.run_url`), at this UI's port
            link = run_url(result.experiment_id, result.run_id, port=port)
            page.goto(link)
            page.get_by_text("Logged models", exact=True).wait_for(timeout=90_000)
            page.screenshot(path=str(tmp_path / "run_page.png"))
            # the model-training view: the run among the experiment's "Runs", and no GenAI evaluation pages
            assert page.get_by_role("link", name="Runs", exact=True).count() >= 1
            assert page.get_by_text("Judges", exact=True).count() == 0
            # "Logged models" lists the run's Keras model, linked to its folder of artifacts
            model = page.get_by_role("link", name="keras")
            assert model.count() == 1, page.content()[:2000]
            assert model.get_attribute("href").endswith(f"/runs/{result.run_id}/artifacts/model")

            # (MLflow's own address of the run, without the view in it, opens the GenAI view instead)
            page.goto(link.split("?")[0])
            page.get_by_text("Judges", exact=True).wait_for(timeout=60_000)

            # the experiment's chart view (the runs table's address, in chart mode) opens on the physics
            page.goto(runs_table_url("127.0.0.1", port, result.experiment_id) + "&compareRunsMode=CHART")
            page.get_by_text("Add section").wait_for(timeout=60_000)
            page.screenshot(path=str(tmp_path / "chart_view.png"))
            text = page.inner_text("body")
            order = [text.find(f"\n{name}\n") for name in ("physics", "val", "loss", "data")]
            assert -1 not in order and order == sorted(order), order
            browser.close()
    finally:
        ui.send_signal(signal.SIGTERM)
        ui.wait(timeout=60)
        watch.close()
