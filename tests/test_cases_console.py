"""The cases page (案卷) in a real browser (Debian's Chromium, driven by Playwright), on the real
services of tests/test_cases_api.py (routing by grid and by subcategory, incidents published by a
real NATS client logged in as a worker, one of them with a snapshot).

A dispatcher of the street office the grid routes the kerb case to opens the list, the case with
its incident's snapshot and timeline, dispatches it with the form and sees the time left; the
supervisor lands on the cases page after logging in. Every test leaves a screenshot in
``var/screenshots``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import wait_for
from tests.test_cases_api import PASSWORD, City
from tests.test_cases_api import city as cases_city
from tests.test_console_browser import CHROMIUM, CHROMIUM_ARGS, LOGGED_OUT, Tab, playwright_api

pytestmark = pytest.mark.slow
city = cases_city  # the cluster of tests/test_cases_api.py, started for this module


@pytest.fixture(scope="module")
def browser() -> Iterator[playwright_api.Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium missing ({CHROMIUM}): run `make setup` as root (scripts/bootstrap-system.sh)")
    if playwright_api is None:
        pytest.fail("Playwright missing (the dev extra): run `make setup`")
    with playwright_api.sync_playwright() as playwright:
        opened = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield opened
        finally:
            opened.close()


def login(city: City, browser: playwright_api.Browser, name: str, home: str) -> Tab:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = Tab(context.new_page()).watch()
    tab.page.goto(city.cluster.gateway_url + "/")
    tab.page.fill("form.login input[name=name]", name)
    tab.page.fill("form.login input[name=password]", PASSWORD)
    tab.page.click("form.login button[type=submit]")
    tab.page.wait_for_url(f"**/{home}")
    return tab


def test_a_dispatcher_finds_the_case_sees_its_evidence_and_dispatches_it(city: City, browser):
    tab = login(city, browser, "js-dispatcher", "#/queue")
    page = tab.page
    tab.go("#/cases")
    page.wait_for_selector("#case-list tr")
    rows = page.locator("#case-list tr")
    assert rows.count() == 2  # the kerb and the gate cases: routed by grid to the street office
    kerb = page.locator("#case-list tr", has_text="解放大道 100 号")
    assert "05-05 机动车乱停放" in kerb.inner_text() and "待派遣" in kerb.inner_text()
    kerb.locator("a.button").click()

    page.wait_for_selector(".case-incident img.evidence")
    width = "() => document.querySelector('.case-incident img.evidence').naturalWidth"
    wait_for(lambda: page.evaluate(width) == 64, 15, "the snapshot to load")  # the page's CSP forbids eval
    assert page.locator(".case-incident").count() == 2
    assert (
        page.locator("ol.timeline li")
        .first.inner_text()
        .startswith(page.locator("ol.timeline time").first.inner_text())
    )
    assert [page.locator("form.incident-step").nth(i).get_attribute("data-action") for i in range(3)] == [
        "assign", "return", "close"
    ]  # fmt: skip
    assign = page.locator("form.incident-step[data-action=assign]")
    assign.locator("input[name=assignee]").fill("patrol 7")
    assign.locator("button[type=submit]").click()
    page.wait_for_selector("form.incident-step[data-action=extend_request]")
    facts = page.locator(".incident-facts-card").inner_text()
    assert "patrol 7" in facts and "剩余" in facts and "1 个工作小时" in facts
    tab.screenshot("case-dispatched")

    page.select_option("#me select", "en")
    page.wait_for_selector("text=Ask for an extension")
    assert " left" in page.locator(".incident-facts-card").inner_text()
    page.select_option("#me select", "zh-CN")
    tab.assert_clean()


def test_a_supervisor_lands_on_the_cases(city: City, browser):
    tab = login(city, browser, "js-supervisor", "#/cases")
    tab.page.wait_for_selector("#case-list tr")
    assert tab.page.locator("nav a[data-route=cases]").count() == 1
    assert tab.page.locator("nav a[data-route=queue]").count() == 0  # incidents are the dispatchers'
    tab.screenshot("cases-list")
    tab.assert_clean(LOGGED_OUT)


def test_a_supervisor_assesses_the_department_and_drills_down_to_its_cases(city: City, browser):
    tab = login(city, browser, "js-supervisor", "#/cases")
    page = tab.page
    assert page.locator("nav a[data-route=assessment]").count() == 1
    tab.go("#/assessment")
    page.wait_for_selector("#assessment-rows tr[data-key]")
    assert page.locator("#assessment-rows tr[data-key]").count() == 1  # its own department only
    row = page.locator("#assessment-rows tr[data-key=jianghan-street]")
    assert "按期结案率" in page.locator("#assessment-rows thead").inner_text()
    row.locator("button").click()
    page.wait_for_selector("#assessment-cases tr[data-case]")
    cases = page.locator("#assessment-cases tr[data-case]").count()
    assert cases == int(row.locator("td").nth(1).inner_text())
    page.wait_for_selector("#assessment-ai table")
    assert "illegal_parking" in page.locator("#assessment-ai").inner_text()
    page.select_option("#me select", "en")
    page.wait_for_selector("text=On-time rate")
    tab.screenshot("assessment")
    page.select_option("#me select", "zh-CN")
    tab.assert_clean()


def test_an_admin_sees_every_departments_figures_without_a_case_list_it_may_not_read(city: City, browser):
    tab = login(city, browser, "city-admin", "#/admin")
    page = tab.page
    tab.go("#/assessment")
    page.wait_for_selector("#assessment-rows tr[data-key]")
    assert page.locator("#assessment-rows tr[data-key]").count() >= 2  # every department's row
    assert page.locator("#assessment-rows tr[data-key] button").count() == 0  # nothing to drill into
    assert page.locator("#assessment-no-drill").count() == 1
    page.locator("#assessment-rows tr[data-key]").first.click()
    page.wait_for_selector("#assessment-ai table")
    assert page.locator("#assessment-cases tr").count() == 0
    tab.screenshot("assessment-admin")
    tab.assert_clean()  # no refused request, no console error
