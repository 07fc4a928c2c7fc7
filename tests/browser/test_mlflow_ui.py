"""The MLflow UI as a researcher sees it, in headless Chromium: the link a finished sweep prints opens the
model-training view, the sweep's run expands into its trials, and their names tell them apart.

Kept out of the default run (it needs Debian's chromium and the `browser` extra):

    apt-get install chromium && pip install -e '.[browser]' && pytest -m browser -s

Screenshots go to the folder the test prints.
"""
import re
import shutil
import subprocess
import sys

import pytest

from study.ops.servers import MlflowServer

from ..sweep.conftest import write_sweep

pytestmark = pytest.mark.browser
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    return path


def test_a_finished_sweep_opens_in_the_training_view_with_named_trials(tmp_path):
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    browser_path = chromium()
    sweep = subprocess.run([sys.executable, "-m", "study.sweep", write_sweep(tmp_path)], cwd=tmp_path,
                           capture_output=True, text=True, timeout=600)
    assert sweep.returncode == 0, sweep.stdout[-3000:] + sweep.stderr[-3000:]
    link = re.search(r"then http://127\.0\.0\.1:5000/(#/experiments/\S+)", sweep.stdout).group(1)
    assert "workflowType=machine_learning" in link

    shots = tmp_path / "screenshots"
    shots.mkdir()
    print(f"\nscreenshots: {shots}")
    server = MlflowServer(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "served", tmp_path / "server.log",
                          workers=1).start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=browser_path, args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{server.url}/{link}")
            parent = page.get_by_role("link", name="tiny", exact=True).first
            parent.wait_for(timeout=60_000)
            page.screenshot(path=str(shots / "1-runs.png"))
            body = page.inner_text("body")
            # the model-training view: its sidebar (runs, models, registry), not the GenAI one (prompts, gateway)
            assert "Model registry" in body and "Prompts" not in body and "AI Gateway" not in body, body[:1500]

            parent.locator("xpath=ancestor::*[@role='gridcell'][1]").locator("button").first.click()
            for name in ("wn σ*0 ft ·", "wn σ*0.077 ft ·"):
                page.get_by_text(name).first.wait_for(timeout=30_000)
            page.screenshot(path=str(shots / "2-expanded.png"))
            browser.close()
    finally:
        server.stop()
