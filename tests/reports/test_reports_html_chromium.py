"""The HTML report renders in headless Chromium: a screenshot shows every figure drawn.

Chromium runs offline: every host name resolves to nothing and background networking is off, so a page
that tried to fetch anything would show it as a missing figure here.
"""

from __future__ import annotations

import html
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from reports.compare import compare
from reports.html import render_html

CHROMIUM = next(
    (p for name in ("chromium", "chromium-browser", "google-chrome") if (p := shutil.which(name))), None
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install -y chromium); CI installs it"
)
WIDTH = 1280
# Appended to a copy of the page only: the report itself carries no script.
LAYOUT_PROBE = """<pre id="layout-probe"></pre><script>
const figs = [...document.querySelectorAll("figure.plot svg")].map(s => {
  const r = s.getBoundingClientRect();
  return [s.getAttribute("aria-label"), Math.round(r.left + scrollX), Math.round(r.top + scrollY),
          Math.round(r.width), Math.round(r.height)];
});
document.getElementById("layout-probe").textContent =
  JSON.stringify({height: document.documentElement.scrollHeight, figs: figs});
</script>"""


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={profile}",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        *args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"chromium exited {done.returncode}: {done.stderr[-2000:]}"
    return done


def test_the_report_renders_and_every_plot_draws(tmp_path: Path, make_result) -> None:  # type: ignore[no-untyped-def]
    from PIL import Image  # Pillow comes with matplotlib

    runs = [
        make_result(0, timeline=True, recovery=True),
        make_result(1, topology="tp4-pp4", tp=4, pp=4, speed=0.8),
    ]
    names = ["tp8-pp2", "tp4-pp4"]
    page = render_html(runs, names, compare(runs, names, {"tpot_ms": 40}))
    report = tmp_path / "report.html"
    report.write_text(page, encoding="utf-8")
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", LAYOUT_PROBE + "</body>"), encoding="utf-8")

    dom = chromium(tmp_path, f"--window-size={WIDTH},1000", "--dump-dom", probe.as_uri()).stdout
    start = dom.index('<pre id="layout-probe">') + len('<pre id="layout-probe">')
    layout = json.loads(html.unescape(dom[start : dom.index("</pre>", start)]))
    figures = {label: (x, y, w, h) for label, x, y, w, h in layout["figs"]}
    assert set(figures) == {
        "throughput-latency",
        "per-gpu",
        "distributions-0",
        "distributions-1",
        "timeline-0",
        "timeline-1",
        "recovery",
    }

    shot = tmp_path / "report.png"
    chromium(tmp_path, f"--window-size={WIDTH},{layout['height']}", f"--screenshot={shot}", report.as_uri())
    with Image.open(shot) as opened:
        image = np.asarray(opened.convert("RGB"), dtype=np.int16)
    assert image.shape[:2] == (layout["height"], WIDTH)

    for label, (x, y, w, h) in figures.items():
        assert w > 600 and h > 150, f"{label} laid out at {w}x{h}"
        region = image[y : y + h, x : x + w]
        ink = float((region.min(axis=2) < 200).mean())
        coloured = int((region.max(axis=2) - region.min(axis=2) > 80).sum())
        assert ink > 0.01, f"{label}: only {ink:.2%} of its area drawn"
        assert coloured > 300, f"{label}: {coloured} coloured pixels; the data series did not draw"
    # The margin beside the page is background: the counts above measure the figures, not noise.
    assert (image[:, WIDTH - 40 :] == 255).all()
