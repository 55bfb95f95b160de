"""The console in a real browser (Debian's Chromium, driven by Playwright) on a real cluster.

A real cluster (NATS, incident store, search, scheduler, one worker with the real detector, the
gateway) analyses ``parking_lot.mp4`` (looping; the cars stay parked). Each person logs in through
the console's login page in a browser context of their own and does their job with the mouse and
keyboard: the dispatcher watches the live queue and runs the dispatch loop, the police search by
photo, ops draw a zone on the camera's latest frame. Every page must work without a console error
or an uncaught exception, and every test leaves a full-page screenshot in ``var/screenshots``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import httpx
import pytest
import yaml

from retina.services.cli.cluster import ClusterPorts, LocalCluster
from retina.services.cli.common import load
from retina.services.gateway.accounts import AccountStore
from tests.conftest import MODEL, REPO, footage, wait_for
from tests.gateway_users import add_users
from tests.test_gateway_loop import WHOLE_FRAME, decoded, parking

try:
    from playwright import sync_api as playwright_api
except ImportError:  # the fixture says what to do
    playwright_api = None

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
# Headless on a closed network: without the background-networking flags Chromium keeps trying to
# reach Google's services.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SCREENSHOTS = REPO / "var" / "screenshots"
PASSWORD = "a long test password"
VERIFY_SECONDS = 3
CAMERA = "lot"
NEW_ZONE = "kerb-new"
# Where the new zone's corners are clicked (fractions of the frame): most of it, so the parked cars
# are inside, and away from the corners of the camera's first zone (the whole frame).
NEW_ZONE_CLICKS = [(0.04, 0.04), (0.96, 0.04), (0.96, 0.96), (0.04, 0.96)]
# Before anyone has logged in, the console asks who is logged in and is told 401: expected.
LOGGED_OUT = r"status of 401 .* @ .*/api/v1/auth/me$"
# What shows that a home page has rendered into the view.
HOME_READY = {
    "#/queue": "#view #incident-queue",
    "#/search": "#view #search-form",
    "#/cameras": "#view .camera-table",
    "#/admin": "#view .admin-tab table",
}
USERS = {
    "ana": ("urban-management", ["dispatcher"]),
    "tom": ("traffic", ["dispatcher"]),
    "li": ("urban-management", ["police"]),
    "olga": ("urban-management", ["ops"]),
    "root": ("urban-management", ["admin"]),
}


@dataclass
class Tab:
    """A logged-in browser page and what went wrong in it (console errors, uncaught exceptions)."""

    page: playwright_api.Page
    errors: list[str] = field(default_factory=list)

    def watch(self) -> Tab:
        def console(message: playwright_api.ConsoleMessage) -> None:
            if message.type == "error":
                self.errors.append(f"{message.text} @ {message.location.get('url', '')}")

        self.page.on("console", console)
        self.page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))
        return self

    def go(self, hash_route: str) -> None:
        """Follow a link inside the console (a hash change: the page is not reloaded)."""
        self.page.evaluate("(route) => { location.hash = route; }", hash_route)

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.evaluate("window.scrollTo(0, 0)")  # the sticky header at the top of the picture
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def assert_clean(self, *allowed: str) -> None:
        """No console error or exception but those matching one of the ``allowed`` patterns."""
        patterns = [LOGGED_OUT, *allowed]
        unexpected = [e for e in self.errors if not any(re.search(p, e) for p in patterns)]
        assert not unexpected, "the page logged errors:\n" + "\n".join(unexpected)


@dataclass
class Console:
    cluster: LocalCluster
    browser: playwright_api.Browser
    tokens: dict[str, str]
    camera: dict
    enabled: bool = False
    tabs: list[Tab] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.cluster.gateway_url

    def api(self, name: str) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[name]}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def open(self, viewport: dict[str, int] | None = None) -> Tab:
        """The console's front page in a new browser context (nobody logged in); a dispatcher's
        wide screen unless ``viewport`` says otherwise."""
        context = self.browser.new_context(viewport=viewport or {"width": 1400, "height": 1000})
        tab = Tab(context.new_page()).watch()
        self.tabs.append(tab)
        tab.page.goto(self.url + "/")
        tab.page.wait_for_selector("form.login")
        return tab

    def login(self, name: str, home: str, viewport: dict[str, int] | None = None) -> Tab:
        """``name`` logged in through the login page, on their home page (``#/queue``, ...) once it
        has rendered (app.js's route() does not cancel a page still loading: it would draw itself
        above the next one)."""
        tab = self.open(viewport)
        tab.page.fill("form.login input[name=name]", name)
        tab.page.fill("form.login input[name=password]", PASSWORD)
        tab.page.click("form.login button[type=submit]")
        tab.page.wait_for_url(f"**/{home}")
        tab.page.wait_for_selector(HOME_READY[home], state="attached")
        return tab

    def enable_camera(self) -> None:
        """Switch the camera on (ops, through the REST API), once."""
        if self.enabled:
            return
        with self.api("olga") as ops:
            answer = ops.put(f"/api/v1/cameras/{CAMERA}", params={"enabled": "true"}, json=self.camera)
        assert answer.status_code == 200, answer.text
        assert answer.json()["enabled"] is True
        self.enabled = True

    def incidents(self, **params: str) -> list[dict]:
        with self.api("ana") as ana:
            answer = ana.get("/api/v1/incidents", params=params)
        assert answer.status_code == 200, answer.text
        return answer.json()["incidents"]

    def incident(self, incident_id: str) -> dict:
        with self.api("ana") as ana:
            answer = ana.get(f"/api/v1/incidents/{incident_id}")
        assert answer.status_code == 200, answer.text
        return answer.json()

    def open_incident(self, timeout: float = 90, **params: str) -> dict:
        """An open incident of the camera (waiting for one), with its snapshot stored."""
        self.enable_camera()
        found: list[dict] = []
        wait_for(
            lambda: bool(found.extend(self.incidents(camera=CAMERA, state="open", **params)) or found),
            timeout,
            f"an open incident of camera {CAMERA} {params or ''}",
        )
        incident_id = found[0]["id"]
        wait_for(lambda: self.incident(incident_id)["snapshot_url"] is not None, 30, "its snapshot")
        return self.incident(incident_id)

    def snapshot(self, incident: dict) -> bytes:
        with self.api("ana") as ana:
            answer = ana.get(incident["snapshot_url"])
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
        return answer.content


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium missing ({CHROMIUM}): run `make setup` as root (scripts/bootstrap-system.sh)")
    if playwright_api is None:
        pytest.fail("Playwright missing (the dev extra): run `make setup`")
    video = footage("parking_lot.mp4")
    root = tmp_path_factory.mktemp("console")
    config = root / "retina.yaml"
    config.write_text(yaml.safe_dump({"detector": {"model": str(MODEL)}, "cameras": []}))
    cluster = LocalCluster(config, root / "data", ClusterPorts.free(workers=1), workers=1)
    cluster.gateway_flags = ["--verify-seconds", str(VERIFY_SECONDS)]
    camera = {
        "id": CAMERA,
        "name": "Parking lot",
        "url": str(video),
        "loop": True,
        "department": "urban-management",
        "algorithms": parking(CAMERA, WHOLE_FRAME, 4),
    }
    try:
        cluster.start(load(str(config)).config.cameras)
        tokens = add_users(cluster, USERS, PASSWORD)
        # The camera is registered switched off: the live-queue test switches it on while watching.
        headers = {"Authorization": f"Bearer {tokens['olga']}"}
        with httpx.Client(base_url=cluster.gateway_url, headers=headers, timeout=30) as ops:
            created = ops.post("/api/v1/cameras", params={"enabled": "false"}, json=camera)
        assert created.status_code == 201, created.text
        with playwright_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
            )
            session = Console(cluster, browser, tokens, camera)
            try:
                yield session
            finally:
                browser.close()
    finally:
        cluster.stop()


@pytest.fixture
def console_tabs(console: Console) -> Iterator[Console]:
    """The console; the browser contexts a test opened are closed after it."""
    yield console
    for tab in console.tabs:
        tab.page.context.close()
    console.tabs.clear()


def wait_until(tab: Tab, script: str, timeout: float, arg: object = None) -> None:
    tab.page.wait_for_function(script, arg=arg, timeout=timeout * 1000)


def canvas_points(tab: Tab, selector: str, fractions: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Where on the screen the ``fractions`` of a canvas are, with the canvas scrolled to the middle of
    the window (clear of the sticky header and action bar); each point must reach the canvas."""
    tab.page.locator(selector).evaluate("(canvas) => canvas.scrollIntoView({block: 'center'})")
    box = tab.page.locator(selector).bounding_box()
    assert box is not None
    points = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in fractions]
    for x, y in points:
        target = tab.page.evaluate(
            "([x, y]) => document.elementFromPoint(x, y)?.outerHTML.slice(0, 80)", [x, y]
        )
        assert target and target.startswith(f'<canvas id="{selector.lstrip("#")}"'), (x, y, target)
    return points


def test_login_page_in_chinese_then_english(console_tabs: Console):
    tab = console_tabs.open()
    page = tab.page
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    assert page.inner_text("form.login h1") == "登录"
    assert "用户名" in page.inner_text("form.login") and "密码" in page.inner_text("form.login")

    page.fill("form.login input[name=name]", "ana")
    page.fill("form.login input[name=password]", "not the password")
    page.click("form.login button[type=submit]")
    error = page.wait_for_selector("form.login .status.error")
    assert error.inner_text().startswith("登录失败")
    assert "#/login" in page.url

    page.fill("form.login input[name=password]", PASSWORD)
    page.click("form.login button[type=submit]")
    page.wait_for_url("**/#/queue")
    page.wait_for_selector("#incident-queue", state="attached")
    assert page.inner_text("#view h1") == "事件队列"
    assert "ana · urban-management" in page.inner_text("#me")

    page.select_option("#me select[aria-label=language]", "en")
    wait_until(tab, "() => document.querySelector('#view h1')?.textContent === 'Incident queue'", 10)
    assert page.evaluate("document.documentElement.lang") == "en"
    assert page.inner_text("#nav a[data-route=queue]") == "Incidents"
    assert "Log out" in page.inner_text("#me")
    tab.screenshot("login-english-queue")
    tab.assert_clean(r"status of 401 .* @ .*/api/v1/auth/login$")  # the wrong password


def test_the_queue_shows_a_new_incident_live_without_a_reload(console_tabs: Console):
    tab = console_tabs.login("ana", "#/queue")
    page = tab.page
    page.wait_for_selector(".queue-head .live-indicator.live")  # listening to live events
    page.evaluate("window.__sameDocument = 'still here'")
    before = page.locator("#incident-queue [data-incident-id]").count()

    console_tabs.enable_camera()  # the camera starts; its parked cars become incidents
    first = page.wait_for_selector("#incident-queue [data-incident-id]", timeout=90_000)
    incident_id = first.get_attribute("data-incident-id")
    assert before == 0
    assert page.evaluate("window.__sameDocument") == "still here", "the page was reloaded"
    assert "new-arrival" in (first.get_attribute("class") or ""), "the row did not come from a live event"
    row = first.inner_text()
    assert "违法停车" in row and "Parking lot" in row, row
    # the live event can come a moment before the incident store has it
    with console_tabs.api("ana") as ana:
        wait_for(
            lambda: ana.get(f"/api/v1/incidents/{incident_id}").status_code == 200, 15, "the stored incident"
        )
    assert console_tabs.incident(incident_id)["camera_id"] == CAMERA
    tab.screenshot("queue-live-incident")
    tab.assert_clean()


def test_dispatch_loop_assign_handle_and_automatic_reopening(console_tabs: Console):
    incident = console_tabs.open_incident()
    photo = console_tabs.snapshot(incident)
    tab = console_tabs.login("ana", "#/queue")
    page = tab.page
    tab.go(f"#/incidents/{incident['id']}")
    page.wait_for_selector("#dispatch-status")
    assert page.locator("#view #incident-queue").count() == 0  # the incident page alone

    assign = page.locator("form[data-action=assign]")
    assign.locator("input[name=assignee]").fill("team 1")
    assign.locator("textarea[name=note]").fill("nearest patrol")
    assign.locator("button[type=submit]").click()
    page.wait_for_selector("#dispatch-status[data-status=assigned]")

    handle = page.locator("form[data-action=handle]")
    handle.locator("textarea[name=note]").fill("owner told to move the car")
    handle.locator("input[name=photo]").set_input_files(
        files=[{"name": "field.jpg", "mimeType": "image/jpeg", "buffer": photo}]
    )
    handle.locator("button[type=submit]").click()
    # the car is still parked: the platform's check reopens the incident, with its frame as evidence
    page.wait_for_selector("#dispatch-status[data-status=reopened]", timeout=(VERIFY_SECONDS + 40) * 1000)
    verify = page.wait_for_selector("#timeline li[data-action=verify]")
    assert "verify-present" in (verify.get_attribute("class") or "")
    image = verify.query_selector("img.timeline-image")
    assert image is not None, "the verification has no evidence image"
    image.scroll_into_view_if_needed()  # lazy-loaded
    wait_until(tab, "(img) => img.complete && img.naturalWidth > 0", 15, image)
    assert image.evaluate("(img) => [img.naturalWidth, img.naturalHeight]") == [640, 480]
    handled = page.wait_for_selector("#timeline li[data-action=handle] img.timeline-image")
    handled.scroll_into_view_if_needed()
    wait_until(tab, "(img) => img.complete && img.naturalWidth > 0", 15, handled)

    steps = [e for e in console_tabs.incident(incident["id"])["history"] if e["kind"] == "dispatch"]
    assert [e["action"] for e in steps] == ["assign", "handle", "verify"]
    assert steps[1]["actor"] == "user:ana" and steps[1]["note"] == "owner told to move the car"
    assert steps[2]["actor"] == "system:verifier" and steps[2]["details"]["outcome"] == "present"
    tab.screenshot("incident-loop-reopened")
    tab.assert_clean()


def test_another_department_sees_none_of_the_incidents(console_tabs: Console):
    incident = console_tabs.open_incident()
    tab = console_tabs.open()
    page = tab.page
    page.fill("form.login input[name=name]", "tom")
    page.fill("form.login input[name=password]", PASSWORD)
    with page.expect_response(
        lambda r: "/api/v1/incidents?" in r.url and r.request.method == "GET"
    ) as listed:
        page.click("form.login button[type=submit]")
    assert listed.value.status == 200 and listed.value.json()["incidents"] == []
    page.wait_for_selector(".queue-head .live-indicator.live")
    page.wait_for_timeout(2000)  # live events: urban-management's stay away
    assert page.locator("#incident-queue [data-incident-id]").count() == 0
    assert page.is_visible(".queue-empty")

    # urban-management's incident reads exactly as an id that does not exist
    tab.go("#/incidents/no-such-incident")
    unknown = page.wait_for_selector("#view .status.error").inner_text()
    tab.go(f"#/incidents/{incident['id']}")
    page.wait_for_selector(f"#view .status.error:has-text('{incident['id']}')")
    message = page.inner_text("#view .status.error")
    assert message.startswith("无法打开该事件") and "no incident" in message, message
    assert message.replace(incident["id"], "X") == unknown.replace("no-such-incident", "X")
    assert page.locator("#dispatch-status").count() == 0
    tab.screenshot("scope-other-department")
    tab.assert_clean(rf"status of 404 .* @ .*/api/v1/incidents/({incident['id']}|no-such-incident)$")


def car_photo(console: Console) -> tuple[bytes, tuple[float, float, float, float]]:
    """A photo of one of the parked cars: the incident's snapshot around its box (with a margin),
    and the car's box in that photo (fractions)."""
    incident = console.open_incident()
    frame = decoded(console.snapshot(incident))
    height, width = frame.shape[:2]
    box = incident["bbox"]
    x1, y1, x2, y2 = box["x1"] * width, box["y1"] * height, box["x2"] * width, box["y2"] * height
    mx, my = 0.3 * (x2 - x1), 0.3 * (y2 - y1)
    cx1, cy1 = int(max(0, x1 - mx)), int(max(0, y1 - my))
    cx2, cy2 = int(min(width, x2 + mx)), int(min(height, y2 + my))
    crop = frame[cy1:cy2, cx1:cx2]
    ok, jpeg = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok
    cw, ch = cx2 - cx1, cy2 - cy1
    region = ((x1 - cx1) / cw, (y1 - cy1) / ch, (x2 - cx1) / cw, (y2 - cy1) / ch)
    return jpeg.tobytes(), tuple(min(1.0, max(0.0, v)) for v in region)


def searches_by(console: Console, name: str) -> list:
    """``name``'s searches in the audit trail, newest first."""
    store = AccountStore(console.cluster.gateway_data_dir / "gateway.sqlite")
    try:
        return store.audit_entries(actor=name, action="search", limit=1000)
    finally:
        store.close()


def test_police_search_by_photo_with_a_dragged_box(console_tabs: Console):
    photo, region = car_photo(console_tabs)
    # the worker's features of the parked cars reach the search index
    with console_tabs.api("li") as police:

        def indexed() -> bool:
            answer = police.post(
                "/api/v1/search",
                files={"image": ("car.jpg", photo, "image/jpeg")},
                data={"region": ",".join(f"{v:.4f}" for v in region), "k": "5"},
            )
            assert answer.status_code == 200, answer.text
            return any(m["camera_id"] == CAMERA for m in answer.json()["matches"])

        wait_for(indexed, 60, "the parked cars' features in the search index")

    tab = console_tabs.login("li", "#/search")
    page = tab.page
    page.wait_for_selector("#search-form")
    page.set_input_files("#search-form input[type=file][name=image]", files=[
        {"name": "car.jpg", "mimeType": "image/jpeg", "buffer": photo},
    ])  # fmt: skip
    size = decoded(photo).shape[:2]
    wait_until(
        tab,
        # the photo is drawn with its own proportions, a small crop enlarged to at least 480 px
        "([h, w]) => { const c = document.querySelector('#query-canvas');"
        " return c.width >= 480 && Math.abs(c.width / c.height - w / h) < 0.02; }",
        10,
        list(size),
    )
    (x1, y1), (x2, y2) = canvas_points(tab, "#query-canvas", [region[:2], region[2:]])
    page.mouse.move(x1, y1)
    page.mouse.down()
    page.mouse.move(x2, y2, steps=8)
    page.mouse.up()
    assert page.get_by_role("button", name="清除框选").is_enabled(), "no box was drawn"
    before = len(searches_by(console_tabs, "li"))
    page.click("#search-form button[type=submit]")
    page.wait_for_selector("#search-results [data-track-id]")
    tracks = page.eval_on_selector_all(
        "#search-results [data-track-id]", "(cards) => cards.map((c) => c.dataset.trackId)"
    )
    assert any(track.startswith(f"{CAMERA}:") for track in tracks), tracks
    tab.screenshot("search-by-photo")
    # the box dragged on the photo went with the search (Playwright does not show multipart bodies)
    searches = searches_by(console_tabs, "li")
    assert len(searches) == before + 1
    sent = [float(v) for v in searches[0].details["filters"]["region"].split(",")]
    assert all(abs(a - b) < 0.03 for a, b in zip(sent, region, strict=True)), (sent, region)
    tab.assert_clean()


def test_ops_draw_a_zone_on_the_latest_frame_and_the_worker_uses_it(console_tabs: Console):
    console_tabs.enable_camera()
    with console_tabs.api("olga") as ops:
        wait_for(lambda: ops.get(f"/api/v1/cameras/{CAMERA}/frame").status_code == 200, 60, "a frame")
    tab = console_tabs.login("olga", "#/cameras")
    page = tab.page
    tab.go(f"#/cameras/{CAMERA}")
    # the latest frame (640x480) replaces the placeholder (960x540)
    wait_until(
        tab,
        "() => { const c = document.querySelector('#zone-canvas');"
        " return c && c.width === 640 && c.height === 480; }",
        30,
    )
    assert page.locator("[data-zone-name]").count() == 1  # the camera's first zone
    assert page.locator("#view .camera-table").count() == 0  # the camera's page alone

    page.get_by_role("button", name="新建区域").click()
    for x, y in canvas_points(tab, "#zone-canvas", NEW_ZONE_CLICKS):
        page.mouse.click(x, y)
    page.get_by_role("button", name="闭合区域").click(timeout=5000)
    names = page.locator("[data-zone-name]")
    assert names.count() == 2
    names.nth(1).fill(NEW_ZONE)
    # a vehicle belongs to the rule's first zone holding it: the old zone (the whole frame) goes
    page.locator(".zone-item").nth(0).get_by_role("button", name="删除区域").click()
    assert page.locator("[data-zone-name]").evaluate_all("(inputs) => inputs.map((i) => i.value)") == [
        NEW_ZONE
    ]
    page.click("#save-camera")
    page.wait_for_selector(".sticky-actions .status.ok")

    with console_tabs.api("olga") as ops:
        saved = ops.get(f"/api/v1/cameras/{CAMERA}").json()["camera"]
    zones = {z["name"]: z for z in saved["algorithms"][0]["zones"]}
    assert set(zones) == {NEW_ZONE}
    polygon = [(p["x"], p["y"]) if isinstance(p, dict) else tuple(p) for p in zones[NEW_ZONE]["polygon"]]
    assert len(polygon) == 4
    for (x, y), (fx, fy) in zip(polygon, NEW_ZONE_CLICKS, strict=True):
        assert abs(x - fx) < 0.01 and abs(y - fy) < 0.01, polygon
    tab.screenshot("zone-editor-saved")

    incident = console_tabs.open_incident(timeout=120, zone=NEW_ZONE)  # the worker applies the new zone
    assert incident["zone"] == NEW_ZONE
    tab.assert_clean()


def wait_for_false_alarms(tab: Tab) -> None:
    """The false-alarm figures have loaded (a table, or the line saying there are none)."""
    wait_until(
        tab,
        "() => { const s = document.querySelector('.false-alarms');"
        " return s && !s.textContent.includes('加载中'); }",
        15,
    )
    assert "误报统计暂不可用" not in tab.page.inner_text(".false-alarms")


def test_the_other_pages_render_without_errors(console_tabs: Console):
    console_tabs.enable_camera()
    ops = console_tabs.login("olga", "#/cameras")
    ops.page.wait_for_selector(f"tr[data-camera-id={CAMERA}]")
    wait_for_false_alarms(ops)
    ops.screenshot("cameras-list")
    ops.go("#/cluster")
    ops.page.wait_for_selector(f".page-cluster .assignments tr[data-camera-id={CAMERA}]")
    assert ops.page.locator(".page-cluster [data-worker-id]").count() == 1
    ops.screenshot("cluster")
    ops.assert_clean()

    admin = console_tabs.login("root", "#/admin")
    for user in USERS:
        admin.page.wait_for_selector(f".admin-tab tr[data-user={user}]")
    admin.screenshot("admin-users")
    for tab, ready in [("tokens", "tr[data-token-id]"), ("audit", "tr[data-seq]"), ("false-alarms", None)]:
        admin.go(f"#/admin/{tab}")
        admin.page.wait_for_selector(f'.admin-tab[data-tab="{tab}"]')
        if ready:
            admin.page.wait_for_selector(f".admin-tab {ready}")
        else:
            wait_for_false_alarms(admin)
        admin.screenshot(f"admin-{tab}")
    admin.assert_clean()


TABLET = {"width": 768, "height": 1024}  # a tablet held upright


def test_the_dispatcher_pages_fit_a_tablet(console_tabs: Console):
    console_tabs.enable_camera()
    incident = console_tabs.open_incident()
    tab = console_tabs.login("ana", "#/queue", viewport=TABLET)
    page = tab.page
    page.wait_for_selector(f"[data-incident-id='{incident['id']}']")
    fits = "() => document.documentElement.scrollWidth <= window.innerWidth"
    assert page.evaluate(fits), "the queue scrolls sideways on a tablet"
    tab.go(f"#/incidents/{incident['id']}")
    page.wait_for_selector("#timeline")
    assert page.evaluate(fits), "the incident page scrolls sideways on a tablet"
    # the loop's forms sit below the evidence instead of beside it, still on screen to the right edge
    form = page.locator("form[data-action=close]").bounding_box()
    assert form is not None and form["x"] + form["width"] <= TABLET["width"]
    tab.screenshot("tablet-incident")
    tab.assert_clean()
