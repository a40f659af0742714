"""`snakemake --report` on the shared built project, opened in a headless Chromium: the report
holds every figure and table of results/report/ with its caption, and clicking through its menus
shows each of them rendered (screenshots checked for non-blank pixels)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest

from .chromium import Chromium, find_browser
from .helpers import SNAKEMAKE, run

pytestmark = pytest.mark.slow


def _report_data(html: str, name: str) -> dict:
    """A JSON object the report's page script holds (`var results = {...};`)."""
    m = re.search(rf"^\s*var {name} = (\{{.*\}});\s*$", html, flags=re.M)
    assert m, f"no `var {name}` in the report"
    return json.loads(m.group(1))


def _pixels(png: bytes) -> np.ndarray:
    import matplotlib.image

    return matplotlib.image.imread(io.BytesIO(png), format="png")[..., :3]


def _not_blank(png: bytes) -> bool:
    """Some content: more than 1% of the pixels differ from the most common colour."""
    px = (_pixels(png) * 255).round().astype(np.uint8).reshape(-1, 3)
    colours, counts = np.unique(px, axis=0, return_counts=True)
    background = colours[counts.argmax()]
    return float(np.any(px != background, axis=1).mean()) > 0.01


@pytest.fixture(scope="module")
def report(built, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("report") / "report.html"
    run([*SNAKEMAKE, "--report", str(path)], built)
    return path


def test_report_holds_every_figure_and_table_with_a_caption(built, report):
    html = report.read_text()
    results = _report_data(html, "results")
    categories = _report_data(html, "categories")
    figures = {str(p.relative_to(built)) for p in (built / "results/report/figures").rglob("*.png")}
    assert figures, "the report stage drew no figure"
    assert set(results) == figures | {"results/report/metrics.html"}
    assert set(categories) == {"Figures", "Tables"}
    # BASiS's, the trained methods', the comparison's (Table 1, the Fig. 4 sweep), Algorithm 2's
    assert set(categories["Figures"]) == {
        "embedding",
        "training",
        "anchors",
        "grid",
        "table",
        "sweep",
        "curves",  # Algorithm 2 (run.joint: blobs)
        "alignment",
    }
    for path, entry in results.items():
        caption = re.sub(r"<[^>]+>", "", entry["caption"])
        assert len(caption) > 80, f"{path}: no caption"
        if path in figures:  # figures/<dataset>/<features>/<method>/<figure>.png
            dataset, _, method, _ = Path(path).relative_to("results/report/figures").parts
            assert entry["mime_type"] == "image/png"
            assert dataset in caption and method in caption, f"{path}: caption {caption!r}"


def test_every_figure_and_table_renders_in_chromium(built, report, tmp_path):
    exe = find_browser()
    if exe is None:
        pytest.skip("needs Chromium (Debian package chromium; .ci/run installs it)")
    browser = Chromium(exe, tmp_path / "profile")
    try:
        browser.open(
            report.as_uri(), "typeof app !== 'undefined' && !!document.querySelector('nav, #app a')"
        )
        results = browser.evaluate("results")
        categories = browser.evaluate("categories")
        click = (
            "(text => { const a = [...document.querySelectorAll('#app a')]"
            ".find(a => a.textContent.trim() === text); if (a) a.click(); return !!a; })"
        )
        shown = {}
        table_rows = None
        for category, subcategories in categories.items():
            for subcategory, paths in subcategories.items():
                # As a reader does: the category in the menu, its subcategory, each row's eye.
                browser.evaluate("app.setView({navbarMode: 'menu'})")
                assert browser.wait_for(f"{click}({json.dumps(category)})")
                if len(subcategories) > 1:
                    assert browser.wait_for(f"{click}({json.dumps(subcategory)})")
                rows = browser.wait_for("document.querySelectorAll('#app table tbody tr').length")
                assert rows == len(paths), f"{category}/{subcategory}: {rows} rows"
                for i in range(rows):
                    before = browser.evaluate("app.state.resultPath || ''")
                    browser.evaluate(
                        f"document.querySelectorAll('#app table tbody tr')[{i}]"
                        ".querySelector('a').click()"
                    )
                    path = browser.wait_for(
                        f"app.state.resultPath !== {json.dumps(before)} && app.state.resultPath"
                    )
                    shown[path] = _rendered(browser, results[path], tmp_path / f"{len(shown)}.png")
                    if path.endswith("metrics.html"):
                        table_rows = _frame_eval(
                            browser, "document.querySelectorAll('tbody tr').length"
                        )
    finally:
        browser.close()
    assert set(shown) == set(results), "a result the menus never showed"
    assert table_rows == len((built / "results/report/metrics.csv").read_text().splitlines()) - 1
    blank = [path for path, ok in shown.items() if not ok]
    assert not blank, f"rendered blank: {blank}"


def _rendered(browser: Chromium, entry: dict, shot: Path) -> bool:
    """Wait until the result's image (or the table's frame) is on screen; screenshot it."""
    if entry["mime_type"] == "image/png":
        box = browser.wait_for(
            "(() => { const img = document.querySelector('#app img[src^=\"data:image/png\"]');"
            f" if (!img || img.src !== {json.dumps(entry['data_uri'])} || !img.complete"
            " || img.naturalWidth === 0) return null; const r = img.getBoundingClientRect();"
            " return {x: r.x, y: r.y, width: r.width, height: r.height,"
            " natural: [img.naturalWidth, img.naturalHeight]}; })()"
        )
        png = _pixels(_data_uri_bytes(entry["data_uri"]))
        assert box["natural"] == [png.shape[1], png.shape[0]], "decoded at another size"
        clip = {k: box[k] for k in ("x", "y", "width", "height")}
    else:
        box = browser.wait_for(
            "(() => { const f = document.querySelector('#app iframe');"
            " if (!f) return null; const r = f.getBoundingClientRect();"
            " return {x: r.x, y: r.y, width: Math.min(r.width, 1000), height: Math.min(r.height, 600)}; })()"
        )
        clip = box
    # Screenshots until the pixels show up (a frame may take a moment to paint).
    for _ in range(50):
        data = browser.screenshot(clip)
        if _not_blank(data):
            shot.write_bytes(data)
            return True
        browser.evaluate("new Promise(r => setTimeout(r, 100))", await_promise=True)
    shot.write_bytes(data)
    return False


def _frame_eval(browser: Chromium, expression: str):
    """Evaluate in the report's (one) child frame: the HTML table's own document."""
    tree = browser.send("Page.getFrameTree")["frameTree"]
    (child,) = tree.get("childFrames", [])
    world = browser.send("Page.createIsolatedWorld", frameId=child["frame"]["id"])
    result = browser.send(
        "Runtime.evaluate",
        expression=expression,
        contextId=world["executionContextId"],
        returnByValue=True,
    )
    return result["result"].get("value")


def _data_uri_bytes(uri: str) -> bytes:
    import base64

    return base64.b64decode(uri.split(",", 1)[1])
