"""The MLflow UI a loss comparer meets (issue 23), in a real browser.

A tiny real compare (ce, focal × 2 seeds × 1 epoch on digits, an MLP) writes a SQLite store while
`mlflow server` starts over it on a free loopback port; headless Chromium (Debian's
`chromium`, driven by Playwright with `executable_path`: nothing is downloaded) opens the URLs
the compare printed, on that port, and the tests read the rendered page: MLflow's
model-training view (not its GenAI view), the parent's description opening with the winner
above "Show more", one summary run per loss in the runs table. Screenshots go to
$LOSSLAB_SCREENSHOTS, else a temporary folder (printed), for CI to keep.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import pytest

from training.compare import parse_settings
from training.study import compare as compare_module

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("no Chromium installed: apt-get install chromium (.ci/run does)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api",
                               reason="playwright is not installed (the dev extra has it)")

pytestmark = pytest.mark.slow
PRINTED_BASE = "http://127.0.0.1:5000"  # what the compare prints for a local store (make ui)
WAIT_MS = 45_000  # a busy 2-core machine renders the runs page in 10-20 s


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, server: subprocess.Popen, log: Path, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"mlflow server exited {server.returncode}:\n{log.read_text()[-2000:]}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        time.sleep(0.5)
    pytest.fail(f"mlflow server not up after {seconds} s:\n{log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def ui(tmp_path_factory, new_store):
    folder = tmp_path_factory.mktemp("ui")
    uri = new_store(folder / "mlflow.db")
    base = f"http://127.0.0.1:{_free_port()}"
    log = folder / "server.log"
    with open(log, "w") as out:  # started first: it comes up while the compare trains
        server = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri,
             "--host", "127.0.0.1", "--port", base.rsplit(":", 1)[1], "--workers", "1"],
            stdout=out, stderr=subprocess.STDOUT, cwd=folder)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("MLFLOW_TRACKING_URI", uri)
            patch.chdir(folder)
            mlflow.set_tracking_uri(uri)
            # model=mlp: the pages are the same for any model, and its train step traces in
            # a fraction of the CNN's (the compare was 52-88 s of this test with small_cnn).
            settings = parse_settings(["losses=ce,focal", "seeds=2", "epochs=1", "model=mlp",
                                       f"checkpoint_dir={folder / 'checkpoints'}"])
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                report = compare_module.compare(settings)
            while mlflow.active_run():
                mlflow.end_run()
        links = dict(re.findall(r"^(experiment|view it): (\S+)", printed.getvalue(), re.M))
        _wait_healthy(base, server, log)
        shots = Path(os.environ.get("LOSSLAB_SCREENSHOTS") or folder / "screenshots")
        shots.mkdir(parents=True, exist_ok=True)
        print(f"\nUI screenshots: {shots}")
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                                 args=["--no-sandbox"])  # root in CI
            yield {"report": report, "browser": browser, "shots": shots,
                   # the printed links, served where this test's server listens
                   "experiment": links["experiment"].replace(PRINTED_BASE, base),
                   "parent": links["view it"].replace(PRINTED_BASE, base)}
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


def _page(ui, url: str):
    """A fresh browser profile (no localStorage: MLflow's own default view) on `url`."""
    page = ui["browser"].new_context(viewport={"width": 1500, "height": 950}).new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(url)
    return page


def _training_view(page) -> None:
    """MLflow 3.17's sidebar: the training view lists Runs, Models, Traces; the GenAI view
    Overview, Training runs, Observability, Evaluation, Judges, Prompts ..."""
    nav = page.locator("nav").first.inner_text().splitlines()
    assert "Models" in nav and "Runs" in nav, nav
    assert not {"Judges", "Evaluation", "Training runs"} & set(nav), nav


def _close_assistant(page) -> None:
    """The MLflow Assistant side panel (a quarter of the screen): closed for screenshots."""
    page.locator("[data-component-id='mlflow.assistant.chat_panel.close']").click()


def test_the_printed_links_are_training_view_links(ui):
    for url in (ui["experiment"], ui["parent"]):
        assert url.endswith("?workflowType=machine_learning"), url


def test_the_experiment_link_lists_one_summary_run_per_loss(ui):
    page = _page(ui, ui["experiment"])
    parent_name = "compare-digits-2 losses"
    page.get_by_text(parent_name).first.wait_for()
    _training_view(page)
    # The parent's row holds its children: expand it.
    parent_cell = page.get_by_role("gridcell").filter(has_text=parent_name).first
    parent_cell.locator("button").first.click()
    for loss in ("ce", "focal"):
        page.get_by_text(f"{loss} · mean of 2 seeds").first.wait_for()
    names = page.get_by_role("link").filter(has_text=re.compile(r"· mean of \d+ seeds"))
    assert sorted(names.all_inner_texts()) == ["ce · mean of 2 seeds",
                                               "focal · mean of 2 seeds"]
    _close_assistant(page)
    page.screenshot(path=ui["shots"] / "compare-runs.png")
    # The chart view of the same runs, grouped by loss (the tag every child carries): one
    # group per loss holding its seeds and its summary run.
    page.goto(ui["experiment"] + "&compareRunsMode=CHART")
    page.get_by_text("Group by").first.click()
    page.get_by_text("losslab.variant", exact=True).first.click()
    page.keyboard.press("Escape")
    for loss in ("ce", "focal"):
        page.get_by_text(f"Group: {loss}").first.wait_for()
    page.get_by_placeholder("Search metric charts").fill("test/balanced_accuracy")
    page.get_by_text("test/balanced_accuracy").first.wait_for()
    page.wait_for_timeout(1500)  # charts draw after their titles (the assistant stays closed)
    page.screenshot(path=ui["shots"] / "compare-grouped-chart.png")


def test_the_parent_link_shows_the_winner_before_show_more(ui):
    page = _page(ui, ui["parent"])
    first = ui["report"].markdown.splitlines()[0]
    assert " is best on digits (classification) in test balanced acc.: " in first
    winner = page.get_by_text(first.replace("**", "")[:60]).first  # rendered: bold, no **
    winner.wait_for()
    _training_view(page)
    more = page.get_by_text("Show more", exact=True).first
    assert winner.is_visible() and more.is_visible()
    assert winner.bounding_box()["y"] < more.bounding_box()["y"]
    loss = first.split("**")[1]
    assert page.locator("strong", has_text=loss).first.is_visible()  # the winner in bold
    _close_assistant(page)
    page.screenshot(path=ui["shots"] / "compare-parent.png")
