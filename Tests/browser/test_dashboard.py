"""The web dashboard in headless Chromium against real RapidFlow services.

Run by scripts/test-dashboard.sh, which starts the services and passes them in:
RAPIDFLOW_URL (no token), RAPIDFLOW_TOKEN_URL and RAPIDFLOW_TEST_TOKEN (with a token), and
RAPIDFLOW_ARTIFACTS (where screenshots go). Jobs are created through the HTTP API, as another
user would; every wait is bounded. Prints one line per test and "N passed, N failed".
"""

import collections
import json
import os
import re
import socket
import struct
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

OPEN_URL = os.environ["RAPIDFLOW_URL"]
TOKEN_URL = os.environ["RAPIDFLOW_TOKEN_URL"]
TOKEN = os.environ["RAPIDFLOW_TEST_TOKEN"]
ARTIFACTS = os.environ.get("RAPIDFLOW_ARTIFACTS", "/tmp/rapidflow-test-services")

# Records every WebSocket the page opens, so a test can count reconnects.
TRACK_SOCKETS = """
(() => {
  const Native = window.WebSocket;
  window.__sockets = [];
  window.WebSocket = class extends Native {
    constructor(...args) { super(...args); window.__sockets.push(this); }
  };
})();
"""

# Step 1 fills the pane so it can scroll; step 2 prints a numbered line every 0.3 s; step 3
# prints colours and text that must not be taken as HTML.
TICKS = 45
LIVE_PIPELINE = f"""steps:
  - for i in $(seq 1 30); do echo "setup $i"; done
  - type: bash
    content: for i in $(seq 1 {TICKS}); do echo "tick $i"; sleep 0.3; done
    phase: test
  - type: bash
    content: printf '\\033[31mred alert\\033[0m \\033[1;92mbright bold\\033[0m <b>not bold</b>\\n'
    phase: publish
"""


class Api:
    """The service's HTTP API, as a second user of it."""

    def __init__(self, base, token=None):
        self.base = base
        self.token = token

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.load(response)["data"]
        except urllib.error.HTTPError as error:
            raise AssertionError(f"{method} {path}: HTTP {error.code} {error.read().decode(errors='replace')}") from None

    def pipeline(self, name, config):
        return self.call("POST", "/pipelines", {"name": name, "config": config})["id"]

    def trigger(self, pipeline_id):
        return self.call("POST", f"/pipelines/{pipeline_id}/jobs")["id"]

    def status(self, job_id):
        return self.call("GET", f"/jobs/{job_id}")["status"]

    def wait_for_end(self, job_id, timeout=40):
        wait_until(lambda: self.status(job_id) in ("success", "failed", "cancelled"), timeout, f"job {job_id} to end")
        return self.status(job_id)


class DroppingProxy:
    """A TCP proxy in front of a service whose connections the test cuts, as a network fault would.

    A cut ends both sides at once, with no WebSocket closing handshake: the page sees the
    connection drop, and the service sees its writes fail.
    """

    def __init__(self, base):
        self.target = ("127.0.0.1", int(base.rsplit(":", 1)[1]))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.lock = threading.Lock()
        self.open = []
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
                upstream = socket.create_connection(self.target, timeout=10)
                upstream.settimeout(None)
            except OSError:
                return
            with self.lock:
                self.open += [client, upstream]
            threading.Thread(target=self.pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self.pump, args=(upstream, client), daemon=True).start()

    @staticmethod
    def pump(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def cut(self):
        with self.lock:
            connections, self.open = self.open, []
        for connection in connections:
            try:
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                # shutdown wakes the pump blocked in recv, which close alone would not.
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            connection.close()

    def close(self):
        self.listener.close()
        self.cut()


def wait_until(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Browser:
    def __init__(self):
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for argument in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,800"]:
            options.add_argument(argument)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        # Debian's chromedriver, named explicitly, so Selenium Manager downloads nothing.
        self.driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        self.driver.set_page_load_timeout(20)
        self.driver.set_script_timeout(10)
        self.driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride", {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False}
        )
        self.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": TRACK_SOCKETS})

    def open(self, base, route):
        """A full page load (not a same-document hash change)."""
        self.driver.get("about:blank")
        self.driver.get(f"{base}/#{route}")

    def js(self, script, *arguments):
        return self.driver.execute_script(script, *arguments)

    def text(self, selector):
        return self.js("const e = document.querySelector(arguments[0]); return e ? e.textContent : null;", selector)

    def wait_text(self, selector, expected, timeout=10):
        wait_until(lambda: expected in (self.text(selector) or ""), timeout, f"{selector} to show {expected!r} (shows {self.text(selector)!r})")

    def log_text(self):
        return self.js("return [...document.querySelectorAll('#log .log-output')].map(e => e.textContent).join('');")

    def log_lines(self):
        return self.log_text().split("\n")

    def click(self, selector):
        """Clicks, finding the element again if the page re-rendered it in between."""
        for attempt in range(3):
            try:
                self.driver.find_element(By.CSS_SELECTOR, selector).click()
                return
            except StaleElementReferenceException:
                if attempt == 2:
                    raise

    def quit(self):
        self.driver.quit()


def assert_each_once(lines, prefix, count):
    counts = collections.Counter(line for line in lines if re.fullmatch(rf"{prefix} \d+", line))
    expected = {f"{prefix} {i}": 1 for i in range(1, count + 1)}
    assert counts == expected, f"'{prefix} N' lines shown not exactly once each: {dict(counts)}"


# ---------------------------------------------------------------------------


def test_job_list_updates_when_another_user_triggers_a_job(browser, api):
    pipeline = api.pipeline("list-live", "steps:\n  - echo listed; sleep 1\n")
    browser.open(OPEN_URL, "/jobs")
    wait_until(lambda: browser.js("return document.getElementById('jobs-body') !== null"), 10, "the job list")
    browser.js("window.__sameDocument = true;")
    job = api.trigger(pipeline)
    row = f'tr[data-job-id="{job}"]'
    wait_until(lambda: browser.text(row), 5, f"job {job} to appear in the list")
    assert "list-live" in browser.text(row)
    browser.wait_text(f"{row} .status", "success", timeout=15)
    assert browser.js("return window.__sameDocument === true"), "the list updated without a reload"
    # The status filter asks the service for that status only.
    browser.driver.find_element(By.CSS_SELECTOR, "#status-filter option[value=failed]").click()
    wait_until(lambda: "status=failed" in browser.driver.current_url, 5, "the filter in the address")
    wait_until(lambda: browser.js(f"return !document.querySelector('{row}') && document.getElementById('jobs-body') !== null"), 5, "the filtered list")


def test_running_job_log_streams_line_by_line_and_survives_drops(browser, api):
    pipeline = api.pipeline("live-log", LIVE_PIPELINE)
    job = api.trigger(pipeline)
    proxy = DroppingProxy(OPEN_URL)
    try:
        check_live_log(browser, api, proxy, job)
    finally:
        proxy.close()


def check_live_log(browser, api, proxy, job):
    browser.open(proxy.url, f"/jobs/{job}")

    wait_until(lambda: "tick 4\n" in browser.log_text(), 15, "tick 4 on the page")
    seen_early = browser.log_text()
    assert "tick 12\n" not in seen_early, "lines arrive one by one, not all at the end"
    assert api.status(job) == "running"

    # A dropped connection: the page reconnects and carries on where it was.
    proxy.cut()
    wait_until(lambda: browser.js("return window.__sockets.length") >= 2, 10, "a reconnect")
    wait_until(lambda: "tick 12\n" in browser.log_text(), 15, "tick 12 on the page")
    assert api.status(job) == "running", "tick 12 was shown while the job still ran"
    browser.wait_text("#log-state", "live")

    # Reading back stops the auto-scroll; returning to the bottom resumes it.
    browser.js("const log = document.getElementById('log'); log.scrollTop = 0; log.dispatchEvent(new Event('scroll'));")
    before = browser.log_text().count("\n")
    wait_until(lambda: browser.log_text().count("\n") >= before + 3, 10, "more lines while scrolled up")
    assert browser.js("return document.getElementById('log').scrollTop") == 0, "the pane stays where the reader is"
    assert browser.js("return !document.getElementById('jump-to-end').hidden"), "a follow button is offered"
    browser.js("const log = document.getElementById('log'); log.scrollTop = log.scrollHeight;")
    before = browser.log_text().count("\n")
    wait_until(lambda: browser.log_text().count("\n") >= before + 3, 10, "more lines after returning to the bottom")
    assert browser.js("return document.getElementById('jump-to-end').hidden"), "following again"
    # Between two lines (0.3 s apart) the pane rests at the bottom.
    wait_until(
        lambda: browser.js("const log = document.getElementById('log'); return log.scrollTop + log.clientHeight >= log.scrollHeight - 2;"),
        3,
        "the pane to follow the new lines",
    )

    proxy.cut()
    assert api.wait_for_end(job, timeout=30) == "success"
    browser.wait_text("#log-state", "finished: success", timeout=10)
    lines = browser.log_lines()
    assert_each_once(lines, "setup", 30)
    assert_each_once(lines, "tick", TICKS)
    assert browser.js("return window.__sockets.length") >= 3

    # ANSI colours become classes; markup in the output stays text.
    assert browser.text("#log .fg-1") == "red alert"
    assert browser.js("return document.querySelector('#log .fg-10.bold').textContent") == "bright bold"
    assert "<b>not bold</b>" in browser.log_text()
    assert browser.js("return document.querySelector('#log b') === null"), "output is never parsed as HTML"
    assert "\x1b" not in browser.log_text()

    # Phase timings and steps come from the status API.
    browser.wait_text("#job-status", "success")
    for phase in ("build", "test", "publish"):
        assert "not run" not in browser.text(f'.phase[data-phase="{phase}"]'), f"{phase} has a duration"
    assert len(browser.driver.find_elements(By.CSS_SELECTOR, "#step-list li")) == 3

    # A step's link scrolls the log to it.
    step_id = browser.js("return document.querySelectorAll('#step-list li')[1].dataset.stepId")
    browser.click(f'#step-list li[data-step-id="{step_id}"] a')
    wait_until(lambda: browser.driver.current_url.endswith(f"/jobs/{job}/steps/{step_id}"), 5, "the step address")
    offset = browser.js(
        f"return Math.abs(document.getElementById('log').scrollTop - document.getElementById('log-step-{step_id}').offsetTop)"
    )
    assert offset <= 2, f"the log scrolled to step {step_id} (off by {offset}px)"

    browser.js("document.getElementById('log').scrollTop = 0;")
    path = os.path.join(ARTIFACTS, "dashboard-job.png")
    browser.driver.save_screenshot(path)
    print(f"  screenshot: {path}")

    # The finished job after a reload: everything once.
    browser.driver.refresh()
    browser.wait_text("#log-state", "finished: success", timeout=10)
    wait_until(lambda: "bright bold" in browser.log_text(), 5, "the whole log after the reload")
    lines = browser.log_lines()
    assert_each_once(lines, "setup", 30)
    assert_each_once(lines, "tick", TICKS)


def test_cancel_and_retry_from_the_page(browser, api):
    pipeline = api.pipeline("long", "steps:\n  - echo started; sleep 120\n  - echo never\n")
    job = api.trigger(pipeline)
    browser.open(OPEN_URL, f"/jobs/{job}")
    wait_until(lambda: "started" in browser.log_text(), 15, "the job's first output")
    browser.click("#cancel-job")
    wait_until(lambda: api.status(job) == "cancelled", 20, f"job {job} cancelled through the page")
    browser.wait_text("#job-status", "cancelled")
    browser.wait_text("#log-state", "finished: cancelled")

    wait_until(lambda: browser.js("return !document.getElementById('retry-job').disabled"), 5, "retry to be enabled")
    browser.click("#retry-job")
    wait_until(lambda: not browser.driver.current_url.endswith(f"#/jobs/{job}"), 5, "navigation to the new job")
    new_job = int(re.search(r"#/jobs/(\d+)$", browser.driver.current_url).group(1))
    assert api.call("GET", f"/jobs/{new_job}")["retry_of"] == job
    wait_until(lambda: "started" in browser.log_text(), 15, "the retried job's output")
    api.call("POST", f"/jobs/{new_job}/cancel")


def test_pipelines_page_runs_a_pipeline(browser, api):
    pipeline = api.pipeline("from-the-page", "steps:\n  - echo run from the pipelines page\n")
    browser.open(OPEN_URL, "/pipelines")
    card = f'article[data-pipeline-id="{pipeline}"]'
    browser.wait_text(card, "echo run from the pipelines page")
    browser.click(f"{card} button[data-run-pipeline]")
    wait_until(lambda: re.search(r"#/jobs/(\d+)$", browser.driver.current_url), 5, "navigation to the new job")
    job = int(re.search(r"#/jobs/(\d+)$", browser.driver.current_url).group(1))
    assert api.call("GET", f"/jobs/{job}")["pipeline_id"] == pipeline
    browser.wait_text("#log-state", "finished: success", timeout=15)
    assert "run from the pipelines page" in browser.log_text()


def test_image_job_form_shows_the_services_message(browser, api):
    browser.open(OPEN_URL, "/image-job")
    wait_until(lambda: browser.js("return document.getElementById('image-job-form') !== null"), 10, "the form")
    browser.driver.find_element(By.ID, "field-owner").send_keys("team")
    browser.driver.find_element(By.ID, "field-repo_url").send_keys("not a repository")
    browser.click("#image-job-form button[type=submit]")
    browser.wait_text("#image-job-error", "repo_url")
    assert browser.js("return !document.getElementById('image-job-error').hidden")
    assert browser.driver.current_url.endswith("#/image-job"), "a refused job does not navigate"


def test_a_token_is_asked_for_once_and_then_used(browser, api):
    guarded = Api(TOKEN_URL, TOKEN)
    pipeline = guarded.pipeline("guarded", "steps:\n  - echo behind the token\n")
    job = guarded.trigger(pipeline)
    guarded.wait_for_end(job)

    browser.open(TOKEN_URL, "/jobs")
    wait_until(lambda: browser.js("return document.getElementById('token-dialog').open"), 10, "the token form")
    browser.driver.find_element(By.ID, "token-input").send_keys("wrong-token")
    browser.click("#token-form button[type=submit]")
    browser.wait_text("#token-error", "refused")
    field = browser.driver.find_element(By.ID, "token-input")
    field.clear()
    field.send_keys(TOKEN)
    browser.click("#token-form button[type=submit]")
    wait_until(lambda: not browser.js("return document.getElementById('token-dialog').open"), 10, "the form to close")
    browser.wait_text(f'tr[data-job-id="{job}"]', "guarded")
    assert browser.js("return sessionStorage.getItem('rapidflow.token')") == TOKEN

    # Kept for the tab: the job page and its WebSocket work without asking again.
    browser.open(TOKEN_URL, f"/jobs/{job}")
    browser.wait_text("#log-state", "finished: success", timeout=10)
    assert "behind the token" in browser.log_text()
    assert not browser.js("return document.getElementById('token-dialog').open")


TESTS = [
    test_job_list_updates_when_another_user_triggers_a_job,
    test_running_job_log_streams_line_by_line_and_survives_drops,
    test_cancel_and_retry_from_the_page,
    test_pipelines_page_runs_a_pipeline,
    test_image_job_form_shows_the_services_message,
    test_a_token_is_asked_for_once_and_then_used,
]


def main():
    os.makedirs(ARTIFACTS, exist_ok=True)
    browser = Browser()
    api = Api(OPEN_URL)
    passed = failed = 0
    try:
        for test in TESTS:
            started = time.monotonic()
            try:
                test(browser, api)
                passed += 1
                print(f"PASS {test.__name__} ({time.monotonic() - started:.1f} s)", flush=True)
            except Exception:
                failed += 1
                print(f"FAIL {test.__name__} ({time.monotonic() - started:.1f} s)", flush=True)
                traceback.print_exc()
                failure = os.path.join(ARTIFACTS, f"dashboard-failure-{test.__name__}.png")
                browser.driver.save_screenshot(failure)
                print(f"  screenshot: {failure}")
                for entry in browser.driver.get_log("browser"):
                    print(f"  console: {entry['level']} {entry['message']}")
    finally:
        browser.quit()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
