"""Take docs/report-demo.png: the demo's report page in headless Chromium, with one best cell opened.

    make demo && .venv/bin/python docs/screenshot.py sweeps/demo/report/index.html docs/report-demo.png

Uses the browser test's set-up (tests/browser.py: Debian's chromium and chromium-driver, `make browser`)."""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from tests import browser  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", help="a report's index.html")
    parser.add_argument("out", help="the PNG to write")
    parser.add_argument("--open", default="magnitude", help="open the detail of this method's cells (first one)")
    parser.add_argument("--height", type=int, default=2200, help="the most pixels of the page to keep")
    args = parser.parse_args()
    why = browser.missing()
    if why:
        print(f"screenshot: {why}", file=sys.stderr)
        return 2
    driver = browser.start()
    try:
        driver.get(pathlib.Path(args.page).resolve().as_uri())
        column = driver.execute_script(
            "return Array.from(document.querySelector('table').tHead.rows[0].cells).map(c => c.textContent)"
        ).index(args.open)
        driver.execute_script(
            "const rows = document.querySelector('table').tBodies[0].rows;"
            "const cell = Array.from(rows).map(r => r.cells[arguments[0]]).find(c => c.querySelector('details'));"
            "cell.querySelector('details').open = true;",
            column,
        )
        size = browser.screenshot(driver, args.out, max_height=args.height)
    finally:
        driver.quit()
    print(f"{args.out}: {size[0]}x{size[1]} px, {os.path.getsize(args.out):,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
