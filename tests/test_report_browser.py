"""The report's HTML page in a real browser (headless Chromium, Debian's package, through Selenium): what a reader
sees. Every table with its rows, every figure decoded at a non-zero size, sorting by a column, a best cell's
configuration opening on a click, and nothing in the console.

Without Chromium this test fails, saying how to install it (`make test` does so first, through `make browser`);
SPARSITY_NO_BROWSER=1 skips it on a machine that cannot have one."""

from __future__ import annotations

import os

import pytest

from analysis.report import write_report
from tests import browser
from tests.report_fixture import markdown_tables, write_sweep


@pytest.fixture(scope="module")
def driver():
    why = browser.missing()
    if why and os.environ.get("SPARSITY_NO_BROWSER"):
        pytest.skip(f"SPARSITY_NO_BROWSER is set and {why}")
    assert why is None, why
    chrome = browser.start()
    yield chrome
    chrome.quit()


@pytest.fixture
def page(tmp_path, driver):
    write_sweep(tmp_path)
    write_report(str(tmp_path))
    driver.get_log("browser")  # drop what an earlier page left
    driver.get((tmp_path / "report" / "index.html").as_uri())
    return tmp_path


def _rows(driver):
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('table')).map(t => t.tBodies[0].rows.length)"
    )


def _column(driver, table: int, col: int) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('table')[arguments[0]].tBodies[0].rows)"
        ".map(r => r.cells[arguments[1]].dataset.key ?? r.cells[arguments[1]].textContent)",
        table,
        col,
    )


def test_a_reader_sees_every_table_and_figure_and_no_console_error(page, driver):
    from selenium.webdriver.common.by import By

    assert driver.title == f"Sweep report: {page.name}"
    assert _rows(driver) == markdown_tables((page / "report" / "README.md").read_text())
    images = driver.execute_script(
        "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight])"
    )
    assert len(images) == 3 and all(ok and w > 100 and h > 100 for _, ok, w, h in images), images
    shown = [e for e in driver.find_elements(By.TAG_NAME, "img") if e.size["width"] > 100 and e.size["height"] > 100]
    assert len(shown) == 3  # laid out at a readable size, not only decoded
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
    driver.execute_script("console.error('probe')")  # the console is read: an error would have been seen
    assert any("probe" in e["message"] for e in driver.get_log("browser"))


def test_clicking_a_header_sorts_its_table_numbers_first_and_again_reverses(page, driver):
    from selenium.webdriver.common.by import By

    details = 1  # the Details table: method, target, achieved, value, seeds, configs tried, best config
    head = driver.find_elements(By.CSS_SELECTOR, "table")[details].find_elements(By.TAG_NAME, "th")
    value = head[3]
    value.click()
    ascending = [float(v) for v in _column(driver, details, 3)]
    assert ascending == sorted(ascending) and ascending[0] < ascending[-1]
    assert value.get_attribute("aria-sort") == "ascending"
    value.click()
    assert [float(v) for v in _column(driver, details, 3)] == sorted(ascending, reverse=True)
    head[0].click()  # text: alphabetical
    methods = _column(driver, details, 0)
    assert methods == sorted(methods) and methods[0] == "dense"


def test_a_best_cell_opens_on_a_click_to_its_configuration_and_seeds(page, driver):
    from selenium.webdriver.common.by import By

    main = driver.find_elements(By.CSS_SELECTOR, "table")[0]
    cell = next(c for c in main.find_elements(By.TAG_NAME, "td") if c.text.startswith("86.50 ± 0.71 (0.900)"))
    detail = cell.find_element(By.TAG_NAME, "details")
    assert detail.get_attribute("open") is None
    body = detail.find_element(By.TAG_NAME, "div")
    assert not body.is_displayed()
    detail.find_element(By.TAG_NAME, "summary").click()
    assert detail.get_attribute("open") is not None and body.is_displayed()
    assert "seed 0: 87.00 (sparsity 0.9000)" in body.text and "lr=0.1" in body.text
