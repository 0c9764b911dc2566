"""The web console at `/`, in a real browser: Playwright driving Debian's
chromium (headless, no network) against the real server. Logs in, runs a
query and sees rows and a chart, pages through a large result, uploads a
CSV and watches the progress bar complete and the table appear in the
catalog, travels back to an older version, and runs a semantic search.
With LAKEHOUSE_UPDATE_DOCS=1 it also writes the README's screenshot."""

import gzip
import math
import os
import pathlib
import shutil

import pytest
import requests
from playwright.sync_api import expect, sync_playwright

from conftest import PASSWORDS, ROLES, secured_server

SCREENSHOT = pathlib.Path(__file__).resolve().parents[2] / "docs" / "images" / "console.png"
UPLOAD_ROWS = 200_000


def chromium_path() -> str:
    for candidate in (os.environ.get("LAKEHOUSE_CHROMIUM"), "/usr/lib/chromium/chromium", shutil.which("chromium")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail("chromium is missing: ./dev test installs it (Debian package chromium)")


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path())
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 760})
    opened = context.new_page()
    errors = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    context.close()
    assert errors == [], f"the console threw: {errors}"


def base(server) -> str:
    return f"http://{server.http_address}"


def run_sql(page, statement: str) -> None:
    """Types a statement into the editor (as a user would) and runs it."""
    page.click(".cm-content")
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.type(statement)
    page.keyboard.press("Escape")
    page.click("#run")


def log_in(page, server, user: str) -> None:
    page.goto(base(server) + "/")
    page.fill("input[name=user]", user)
    page.fill("input[name=password]", PASSWORDS[user])
    page.click("#login button[type=submit]")
    expect(page.locator("#who")).to_have_text(f"{user} ({ROLES[user]})")


def canvas_is_drawn(page) -> bool:
    return page.evaluate(
        """() => {
            const canvas = document.getElementById('chart-canvas');
            const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
            let painted = 0;
            for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted += 1;
            return painted > 1000;
        }"""
    )


def test_console_files_are_embedded_and_served(server):
    page = requests.get(base(server) + "/", timeout=30)
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert '<script type="module" src="console/console.js">' in page.text

    script = requests.get(base(server) + "/console/console.js", headers={"Accept-Encoding": "gzip"}, stream=True, timeout=30)
    assert script.headers["content-encoding"] == "gzip"
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    compressed = script.raw.read()
    plain = requests.get(base(server) + "/console/console.js", headers={"Accept-Encoding": "identity"}, timeout=30)
    assert "content-encoding" not in plain.headers
    assert gzip.decompress(compressed) == plain.content
    assert len(compressed) < len(plain.content) / 2

    again = requests.get(base(server) + "/console/console.js", headers={"If-None-Match": plain.headers["etag"], "Accept-Encoding": "identity"}, timeout=30)
    assert again.status_code == 304 and again.content == b""

    licences = requests.get(base(server) + "/console/LICENSES.txt", timeout=30)
    for library in ("@codemirror/view", "chart.js", "apache-arrow"):
        assert library in licences.text
    for missing in ("/console/nope.js", "/console/console.js.gz", "/console/index.html"):
        assert requests.get(base(server) + missing, timeout=30).status_code == 404


def test_console_without_credentials_opens_as_the_anonymous_admin(server, page):
    page.goto(base(server) + "/")
    expect(page.locator("#who")).to_have_text("anonymous (admin)")
    expect(page.locator("#login")).to_be_hidden()
    run_sql(page, "SELECT 1 + 1 AS two")
    expect(page.locator("#query-grid table.grid tbody td")).to_have_text("2")


def test_console_session(tmp_path, auth_config, page):
    config, _ = auth_config
    served = secured_server(tmp_path / "storage", config)
    try:
        session(page, served, tmp_path)
    finally:
        served.stop()


def session(page, server, tmp_path):
    # Index a few profiles through the API as the admin, for the search box.
    added = requests.post(
        base(server) + "/v1/vectors/index/profiles/add",
        auth=("ada", PASSWORDS["ada"]),
        json={
            "ids": ["p1", "p2", "p3", "p4"],
            "texts": [
                "forklift operator with OSHA certification, night shifts",
                "senior Rust engineer, distributed databases, Lyon",
                "pastry chef, French bakery, early mornings",
                "registered nurse, intensive care unit",
            ],
        },
        timeout=120,
    )
    assert added.status_code == 200, added.text

    # A wrong password is refused with the server's message.
    page.goto(base(server) + "/")
    page.fill("input[name=user]", "ada")
    page.fill("input[name=password]", "not-the-password")
    page.click("#login button[type=submit]")
    expect(page.locator("#login-error")).not_to_be_empty()
    expect(page.locator("#app")).to_be_hidden()

    log_in(page, server, "ada")
    expect(page.locator("#catalog-list button[data-table='public.profiles']")).to_be_visible()

    # A query: its rows, then a chart of them.
    run_sql(page, "SELECT city, sum(km) AS km FROM (VALUES ('Lyon', 12.5), ('Paris', 4.0), ('Lyon', 3.0)) AS v(city, km) GROUP BY city ORDER BY city")
    grid = page.locator("#query-grid")
    expect(grid.locator("tbody tr")).to_have_count(2)
    expect(grid.locator("tbody tr").first).to_contain_text("Lyon")
    expect(grid.locator("tbody tr").first).to_contain_text("15.5")
    page.click("[data-view=chart]")
    expect(page.locator("#chart-x")).to_have_value("0")
    expect(page.locator("#chart-y")).to_have_value("1")
    page.wait_for_function("() => document.getElementById('chart-canvas').width > 0")
    assert canvas_is_drawn(page)
    page.select_option("#chart-kind", "line")
    assert canvas_is_drawn(page)
    page.click("[data-view=grid]")

    # Bad SQL shows the server's message; the history keeps both statements.
    run_sql(page, "SELEC 1")
    expect(page.locator("#query-grid .error")).to_contain_text("SELEC")
    assert page.locator("#history option").count() == 3

    # Upload a CSV: the progress bar fills, the table appears in the catalog.
    csv = tmp_path / "Trips 2026.csv"
    with csv.open("w") as out:
        out.write("id,city,km\n")
        for i in range(UPLOAD_ROWS):
            out.write(f"{i},{['Lyon', 'Paris', 'Nice'][i % 3]},{20 + 15 * math.sin(i / 15_000) + i % 7:.1f}\n")
    page.click("[data-tab=upload]")
    page.set_input_files("#upload-file", str(csv))
    expect(page.locator("#upload-table")).to_have_value("trips_2026")
    page.click("#upload-form button[type=submit]")
    expect(page.locator("#upload-status")).to_contain_text(
        f"Loaded {UPLOAD_ROWS:,} rows into public.trips_2026 (version 1)", timeout=120_000
    )
    progress = page.locator("#upload-progress")
    expect(progress).to_be_visible()
    assert progress.evaluate("bar => bar.value === bar.max && bar.max === " + str(csv.stat().st_size))
    expect(page.locator("#catalog-list button[data-table='public.trips_2026']")).to_be_visible()

    # The editor completes the new table's columns (from information_schema).
    page.click("[data-tab=query]")
    page.click(".cm-content")
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.type("SELECT public.trips_2026.")
    expect(page.locator(".cm-tooltip-autocomplete")).to_contain_text("city")
    page.keyboard.press("Escape")
    page.click("[data-tab=upload]")

    # A second upload appends: version 2.
    page.select_option("#upload-mode", "append")
    page.click("#upload-form button[type=submit]")
    expect(page.locator("#upload-status")).to_contain_text("(version 2)", timeout=120_000)

    # A large result pages through the grid.
    page.click("[data-tab=query]")
    run_sql(page, "SELECT * FROM trips_2026 ORDER BY id")
    info = page.locator("#query-grid .page-info")
    expect(info).to_have_text(f"rows 1–100 of {2 * UPLOAD_ROWS:,}", timeout=120_000)
    page.click("#query-grid .pager button:has-text('Next')")
    expect(info).to_have_text(f"rows 101–200 of {2 * UPLOAD_ROWS:,}")
    expect(page.locator("#query-grid tbody tr").first.locator("td").first).to_have_text("50")

    # The catalog browser: columns, versions, and time travel to version 1.
    page.click("#catalog-list button[data-table='public.trips_2026']")
    expect(page.locator("#table-title")).to_have_text("public.trips_2026")
    expect(page.locator("#table-columns")).to_contain_text("city")
    expect(page.locator("#table-versions button")).to_have_count(2)
    page.click("#table-versions button[data-version='1']")
    expect(page.locator("#query-grid .page-info")).to_have_text("rows 1–100 of 1,000", timeout=60_000)
    page.click("[data-tab=query]")
    run_sql(page, "SELECT count(*) AS n FROM trips_2026 VERSION AS OF 1")
    expect(page.locator("#query-grid tbody td")).to_have_text(f"{UPLOAD_ROWS}")
    expect(page.locator("#query-status")).to_contain_text("1 row in")

    # Semantic search over the vector table.
    page.click("[data-tab=search]")
    page.select_option("#search-table", "public.profiles")
    expect(page.locator("#search-column")).to_have_value("vector")
    page.fill("#search-text", "software developer who knows databases")
    page.fill("#search-k", "2")
    page.click("#search-form button[type=submit]")
    hits = page.locator("#search-grid tbody tr")
    expect(hits).to_have_count(2)
    expect(hits.first).to_contain_text("p2")

    # The README's picture: a query and its chart beside the catalog.
    page.click("[data-tab=query]")
    run_sql(page, "SELECT id / 5000 AS block, count(*) AS trips, round(avg(km), 2) AS avg_km FROM trips_2026 GROUP BY block ORDER BY block")
    expect(page.locator("#query-grid tbody tr")).to_have_count(40)
    page.click("[data-view=chart]")
    page.select_option("#chart-kind", "bar")
    expect(page.locator("#chart-y")).to_have_value("2")
    path = SCREENSHOT if os.environ.get("LAKEHOUSE_UPDATE_DOCS") == "1" else tmp_path / "console.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path))

    page.click("#logout")
    expect(page.locator("#login")).to_be_visible()


def test_console_shows_refusals_to_a_reader(tmp_path, auth_config, page):
    config, _ = auth_config
    served = secured_server(tmp_path / "storage", config)
    try:
        log_in(page, served, "rita")
        csv = tmp_path / "notes.csv"
        csv.write_text("id,note\n1,hello\n")
        page.click("[data-tab=upload]")
        page.set_input_files("#upload-file", str(csv))
        page.click("#upload-form button[type=submit]")
        expect(page.locator("#upload-status")).to_have_class("error")
        expect(page.locator("#upload-status")).to_contain_text("rita")
        page.click("[data-tab=query]")
        run_sql(page, "CREATE TABLE t AS SELECT 1 AS x")
        expect(page.locator("#query-grid .error")).to_contain_text("rita")
    finally:
        served.stop()
