"""The MLflow UI as a researcher sees it, in headless Chromium: the link a finished sweep prints opens the
model-training view, the sweep's run expands into its trials, their names tell them apart, and the sweep's
interactive frontier (frontier.html) renders inside MLflow's artifact viewer with every trial in it.

Kept out of the default run (it needs Debian's chromium and the `browser` extra):

    apt-get install chromium && pip install -e '.[browser]' && pytest -m browser -s

Screenshots go to the folder the test prints.
"""
import re
import shutil
import subprocess
import sys

import pytest

from mlflow.tracking import MlflowClient

from study.ops.servers import MlflowServer
from study.sweep.tracking import child_runs

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
            check_the_frontier_page(page, server.url, tmp_path, shots)
            browser.close()
    finally:
        server.stop()


def check_the_frontier_page(page, url: str, tmp_path, shots) -> None:
    """frontier.html, opened where a researcher opens it (the sweep run's Artifacts), draws its plots offline
    and names every trial: in the plotted data and in the hover box of a point."""
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tiny-study")
    parent = client.search_runs([experiment.experiment_id], filter_string="attributes.run_name = 'tiny'")[0]
    labels = {run.info.run_name for run in child_runs(client, experiment.experiment_id, parent.info.run_id)}
    assert len(labels) == 2
    page.goto(f"{url}/#/experiments/{experiment.experiment_id}/runs/{parent.info.run_id}/artifacts")
    page.get_by_text("frontier.html", exact=True).first.click()
    page.wait_for_timeout(500)  # let the viewer mount its frame (the checks below wait on conditions)
    deadline_ms = 60_000
    frame = None
    for _ in range(deadline_ms // 250):
        frame = next((f for f in page.frames if f.query_selector(".js-plotly-plot .main-svg")), None)
        if frame is not None:
            break
        page.wait_for_timeout(250)
    assert frame is not None, "frontier.html drew no Plotly figure inside MLflow's artifact viewer"
    page.screenshot(path=str(shots / "3-frontier.png"))
    plotted = frame.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot')].flatMap(
        plot => plot.data.flatMap(trace => [...(trace.customdata || [])].flat().map(String)))""")
    assert labels <= set(plotted), (labels, sorted(set(plotted))[:20])
    box = frame.locator(".js-plotly-plot .scatterlayer .points path").first.bounding_box()  # page coordinates
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)  # Plotly hovers by position
    frame.wait_for_selector(".hoverlayer .hovertext", timeout=30_000)
    hover = frame.text_content(".hoverlayer")  # SVG: its text, not innerText
    page.screenshot(path=str(shots / "4-hover.png"))
    assert any(label in hover for label in labels), hover
