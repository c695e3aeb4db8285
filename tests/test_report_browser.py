"""The HTML report as a reader opens it: `snakemake --report report.html` of the tiny run, viewed
in headless Chromium (Debian's `chromium`, driven by playwright). Every figure the report lists
must display through the report's own navigation (menu, then the figure's view button), with its
caption, no console errors and no network access; a screenshot of each view is saved under the
test's temporary directory. Skipped, with the reason, where Chromium or playwright cannot start."""

from pathlib import Path

import pytest

from conftest import run_snakemake

pytestmark = pytest.mark.pipeline

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# the figures this project puts in the report, with a phrase of each caption
OWN_FIGURES = {"psnr_by_defense.png": "What to look for", "accuracy_by_round.png": "What to look for",
               "privacy_utility.png": "What to look for", "reconstructions.png": "What to look for",
               "budget_curves.png": "still climb", "psnr_by_batch_size.png": "Privacy probes"}


def png_width(path: Path) -> int:
    return int.from_bytes(path.read_bytes()[16:20], "big")


def start_browser(sync_api, playwright):
    """Headless Chromium, or a skip naming why it cannot start."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not installed (Debian package 'chromium'; .ci/run installs it)")
    try:
        return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=60_000)
    except sync_api.Error as error:  # every launch failure (missing libraries, sandbox, crash)
        pytest.skip(f"chromium cannot start under playwright: {error}")


def view_every_figure(report: Path, workdir: Path, screenshots: Path) -> dict[str, dict]:
    """Open `report` in Chromium and show each image result through the report's navigation.

    Returns, per figure file name: the displayed image's natural width, the file's width, the
    caption text of its info view; raises on console errors or network requests.
    """
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    shown: dict[str, dict] = {}
    problems: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = start_browser(sync_api, playwright)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("console", lambda message: problems.append(f"console {message.type}: {message.text}")
                    if message.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on("request", lambda request: problems.append(f"network request: {request.url}")
                    if not request.url.startswith(("file:", "data:", "blob:", "about:")) else None)
            page.goto(report.as_uri())
            figures = page.evaluate("""() => Object.entries(categories).flatMap(([category, subcategories]) =>
                Object.values(subcategories).flat().filter(path => results[path].mime_type.startsWith("image/"))
                .map(path => [category, path]))""")
            for category, path in figures:
                name = path.rsplit("/", 1)[-1]
                page.goto(report.as_uri())
                page.get_by_text(category, exact=True).click()
                row = page.locator("tr", has_text=path)
                row.locator("a[iconname='eye']").click()
                image = page.locator(f"img[src*='filename={name};']")
                image.wait_for(timeout=30_000)
                page.wait_for_function("el => el.complete", arg=image.element_handle(), timeout=30_000)
                natural_width = image.evaluate("el => el.naturalWidth")
                page.screenshot(path=str(screenshots / f"report-{name}"))
                page.goto(report.as_uri())
                page.get_by_text(category, exact=True).click()
                page.locator("tr", has_text=path).locator("a[iconname='information-circle']").click()
                page.wait_for_timeout(300)
                shown[name] = {"natural_width": natural_width, "file_width": png_width(workdir / path),
                               "info": page.inner_text("#app")}
        finally:
            browser.close()
    assert not problems, "\n".join(problems)
    return shown


def test_every_figure_of_the_report_displays_in_chromium(finished_run, repo, tmp_path):
    workdir, config_file, _ = finished_run
    report = tmp_path / "report.html"
    run_snakemake(repo, workdir, config_file, "--report", str(report))
    shown = view_every_figure(report, workdir, tmp_path)
    assert set(OWN_FIGURES) <= set(shown), f"figures in the report: {sorted(shown)}"
    for name, view in shown.items():
        assert view["natural_width"] > 0 and view["natural_width"] == view["file_width"], (name, view)
        assert (tmp_path / f"report-{name}").read_bytes()[:4] == b"\x89PNG"
    for name, phrase in OWN_FIGURES.items():
        assert phrase in shown[name]["info"], f"{name}: caption not shown in its info view"
