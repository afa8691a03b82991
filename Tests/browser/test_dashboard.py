"""The web dashboard in headless Chromium against real RapidFlow services.

Run by scripts/test-dashboard.sh, which starts the services and passes them in:
RAPIDFLOW_URL (no token), RAPIDFLOW_TOKEN_URL and RAPIDFLOW_TEST_TOKEN (with a token), and
RAPIDFLOW_ARTIFACTS (where screenshots go). Jobs are created through the HTTP API, as another
user would; every wait is bounded. Prints one line per test and "N passed, N failed".
"""

import collections
import json
import os
import random
import re
import socket
import string
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
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.select import Select

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

    def trigger(self, pipeline_id, body=None):
        return self.call("POST", f"/pipelines/{pipeline_id}/jobs", body)["id"]

    def refusal(self, method, path, body=None):
        """The error envelope of a call that must fail: (HTTP status, code, message)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                raise AssertionError(f"{method} {path} succeeded (HTTP {response.status}); a refusal was expected")
        except urllib.error.HTTPError as error:
            envelope = json.load(error)
            return error.code, envelope["error"]["code"], envelope["error"]["message"]

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
        """The whole log as the viewer holds it (it draws only the rows on screen)."""
        return self.js("const log = document.getElementById('log'); return log ? log.logView.text() : '';")

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
    offset_js = f"""const head = document.getElementById('log-step-{step_id}');
        return head ? Math.abs(head.getBoundingClientRect().top - document.getElementById('log').getBoundingClientRect().top) : null;"""
    # Scrolled once the page has handled the new address (a redraw may come a frame later).
    def scrolled():
        offset = browser.js(offset_js)
        return offset is not None and offset <= 2
    wait_until(scrolled, 5, f"the log scrolled to step {step_id}")

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

    # A link cannot carry the token: the raw log is fetched with it and saved from a blob.
    browser.js(
        """window.__saved = null;
        const native = URL.createObjectURL;
        URL.createObjectURL = (blob) => { blob.text().then(text => (window.__saved = text)); return native(blob); };"""
    )
    browser.click("#log-raw")
    wait_until(lambda: "behind the token" in (browser.js("return window.__saved") or ""), 10, "the raw log saved with the token")
    assert browser.js("return document.getElementById('notice').hidden"), browser.text("#notice")


def test_a_read_only_token_is_offered_no_action(browser, api):
    admin = Api(TOKEN_URL, TOKEN)
    pipeline = admin.pipeline("read-only-view", "steps:\n  - echo seen, not touched\n")
    job = admin.trigger(pipeline)
    admin.wait_for_end(job)
    reader = admin.call("POST", "/tokens", {"name": "dashboard-reader", "role": "read"})["token"]

    browser.open(TOKEN_URL, "/jobs")
    browser.js("sessionStorage.setItem('rapidflow.token', arguments[0])", reader)
    browser.open(TOKEN_URL, f"/jobs/{job}")
    browser.wait_text("#log-state", "finished: success", timeout=10)
    wait_until(lambda: browser.js("return document.body.dataset.role") == "read", 10, "the page to learn the token's role")
    browser.wait_text("#token-role", "dashboard-reader")
    hidden = "return getComputedStyle(document.querySelector(arguments[0])).display === 'none'"
    for selector in ["#retry-job", "#cancel-job", 'a[data-nav="secrets"]', 'a[data-nav="image-job"]']:
        assert browser.js(hidden, selector), f"{selector} is offered to a read-only token"
    browser.open(TOKEN_URL, "/pipelines")
    browser.wait_text("#view", "read-only-view")
    for selector in ["#new-pipeline", f'[data-run-pipeline="{pipeline}"]', f'[data-edit-pipeline="{pipeline}"]']:
        assert browser.js(hidden, selector), f"{selector} is offered to a read-only token"
    # The admin's token offers them again.
    browser.js("sessionStorage.setItem('rapidflow.token', arguments[0])", TOKEN)
    browser.open(TOKEN_URL, "/pipelines")
    wait_until(lambda: browser.js("return document.body.dataset.role") == "admin", 10, "the admin role")
    assert not browser.js(hidden, f'[data-run-pipeline="{pipeline}"]')
    assert not browser.js(hidden, "#new-pipeline")


def test_a_failed_test_phase_card_is_red(browser, api):
    config = (
        "steps:\n  - echo built\n"
        "  - type: bash\n    content: echo testing; exit 3\n    phase: test\n"
        "  - type: bash\n    content: echo never\n    phase: publish\n"
    )
    job = api.trigger(api.pipeline("phase-outcome", config))
    assert api.wait_for_end(job) == "failed"
    browser.open(OPEN_URL, f"/jobs/{job}")
    browser.wait_text("#job-status", "failed")
    read = """return Object.fromEntries([...document.querySelectorAll('.phase[data-phase]')].map(card => [card.dataset.phase, {
        outcome: card.dataset.outcome, classes: card.className, label: card.querySelector('.phase-outcome').textContent,
        border: getComputedStyle(card).borderTopColor }]));"""
    wait_until(lambda: browser.js(read).get("test", {}).get("outcome") == "failed", 10, "the test phase's outcome")
    cards = browser.js(read)
    assert cards["build"]["outcome"] == "success" and "phase-success" in cards["build"]["classes"], cards["build"]
    assert cards["test"]["label"] == "failed" and "phase-failed" in cards["test"]["classes"], cards["test"]
    assert cards["test"]["border"] == "rgb(208, 56, 62)", f"the failed card is drawn red, not {cards['test']['border']}"
    assert cards["test"]["border"] != cards["build"]["border"]
    assert cards["publish"]["outcome"] == "skipped", cards["publish"]


def job_rows(browser):
    return browser.js("return [...document.querySelectorAll('#jobs-body tr')].map(row => Number(row.dataset.jobId));")


def test_job_list_pages_filters_and_searches_on_the_service(browser, api):
    # Letters only: the search by job id below also matches pipeline names holding its digits,
    # and 110 jobs of a pipeline named with them would push the searched job off the page.
    tag = "".join(random.choice(string.ascii_lowercase) for _ in range(8))
    name, other_name = f"paging-{tag}", f"solo-{tag}"
    pipeline = api.pipeline(name, 'steps:\n  - "true"\n')
    other = api.call("POST", "/pipelines", {"name": other_name, "config": 'steps:\n  - "true"\n', "owner": f"team-{tag}"})["id"]
    # 110 jobs, every 20th on a release branch; one more job of another pipeline.
    jobs = [api.trigger(pipeline, {"branch": "release/1.0"} if i % 20 == 0 else None) for i in range(110)]
    release = sorted((job for i, job in enumerate(jobs) if i % 20 == 0), reverse=True)
    other_job = api.trigger(other, {"branch": "feature/search-me"})
    newest = sorted(jobs, reverse=True)

    def all_ended():
        listed = api.call("GET", f"/jobs?pipeline_id={pipeline}&limit=500")
        return len(listed) == 110 and all(job["status"] in ("success", "failed", "cancelled") for job in listed)

    wait_until(all_ended, 90, "the 110 jobs to end")
    browser.open(OPEN_URL, f"/jobs?pipeline_id={pipeline}")
    wait_until(lambda: job_rows(browser) == newest[:50], 10, "the newest 50 jobs of the pipeline")
    assert browser.js("return document.getElementById('jobs-newer').disabled"), "no newer page on the first one"

    # Paging asks the service for the jobs before the last one shown.
    browser.click("#jobs-older")
    wait_until(lambda: job_rows(browser) == newest[50:100], 10, "the second page")
    assert f"before={newest[49]}" in browser.driver.current_url
    browser.click("#jobs-older")
    wait_until(lambda: job_rows(browser) == newest[100:], 10, "the last page")
    assert browser.js("return document.getElementById('jobs-older').disabled"), "nothing older than the last page"
    browser.click("#jobs-newer")
    wait_until(lambda: job_rows(browser) == newest[50:100], 10, "back to the second page")
    browser.click("#jobs-newer")
    wait_until(lambda: job_rows(browser) == newest[:50], 10, "back to the first page")

    # Dates are relative, with the full time on hover.
    created = browser.js("const t = document.querySelector('#jobs-body tr .created time'); return [t.textContent, t.title, t.dateTime];")
    assert re.fullmatch(r"just now|\d+ s ago|\d+ min ago", created[0]), created
    assert str(time.gmtime().tm_year) in created[1] and created[2].endswith("Z"), created

    # The branch filter: an exact branch, in the address.
    branch = browser.driver.find_element(By.ID, "branch-filter")
    branch.send_keys("release/1.0" + Keys.ENTER)
    wait_until(lambda: job_rows(browser) == release, 10, "the release branch's jobs")
    assert "branch=release%2F1.0" in browser.driver.current_url
    assert browser.js("return [...document.querySelectorAll('#jobs-body td.branch')].every(cell => cell.textContent === 'release/1.0')")
    # With the status filter on top: none of them failed.
    browser.driver.find_element(By.CSS_SELECTOR, "#status-filter option[value=failed]").click()
    wait_until(lambda: browser.js("return !document.getElementById('jobs-empty').hidden"), 10, "the empty filtered list")
    assert "No jobs match" in browser.text("#jobs-empty")

    # The pipeline filter, from the list of pipelines.
    browser.open(OPEN_URL, "/jobs")
    wait_until(lambda: browser.js(f"return !!document.querySelector('#pipeline-filter option[value=\"{other}\"]')"), 10, "the pipeline choices")
    browser.driver.find_element(By.CSS_SELECTOR, f'#pipeline-filter option[value="{other}"]').click()
    wait_until(lambda: job_rows(browser) == [other_job], 10, "the other pipeline's job")
    assert f"pipeline_id={other}" in browser.driver.current_url

    # The owner filter: the other pipeline belongs to its own team.
    browser.open(OPEN_URL, "/jobs")
    browser.driver.find_element(By.ID, "owner-filter").send_keys(f"team-{tag}" + Keys.ENTER)
    wait_until(lambda: job_rows(browser) == [other_job], 10, "the team's job")
    assert f"owner=team-{tag}" in browser.driver.current_url
    assert browser.text(f'tr[data-job-id="{other_job}"] td.owner') == f"team-{tag}"

    # The search box: pipeline name, branch, job id; the page stays as it is while typing.
    browser.open(OPEN_URL, "/jobs")
    wait_until(lambda: len(job_rows(browser)) == 50, 10, "the first page")
    browser.js("window.__sameDocument = true;")
    search = browser.driver.find_element(By.ID, "job-search")
    search.send_keys(other_name)
    wait_until(lambda: job_rows(browser) == [other_job], 10, "the search by pipeline name")
    assert f"q={other_name}" in browser.driver.current_url
    search.clear()
    search.send_keys("search-me")
    wait_until(lambda: job_rows(browser) == [other_job], 10, "the search by branch")
    search.clear()
    search.send_keys(str(jobs[7]))
    wait_until(lambda: jobs[7] in job_rows(browser), 10, "the search by job id")
    assert browser.js("return window.__sameDocument === true && document.activeElement.id === 'job-search'")


def test_a_100000_line_log_opens_fast_and_its_last_line_is_found(browser, api):
    job = api.trigger(api.pipeline("long-log", "steps:\n  - seq 1 100000\n"))
    assert api.wait_for_end(job, timeout=60) == "success"
    browser.open(OPEN_URL, "/jobs")
    wait_until(lambda: browser.js("return document.getElementById('jobs-body') !== null"), 10, "the job list")
    # Timed in the page: from the navigation to the last line drawn.
    browser.js(
        """
        window.__lastLineAt = null;
        const observer = new MutationObserver(() => {
          const row = document.querySelector('#log-rows .log-line[data-line="100000"] .log-text');
          if (row && row.textContent === '100000') { window.__lastLineAt = performance.now(); observer.disconnect(); }
        });
        observer.observe(document.getElementById('view'), { childList: true, subtree: true });
        window.__openedAt = performance.now();
        location.hash = arguments[0];
        """,
        f"#/jobs/{job}",
    )
    wait_until(lambda: browser.js("return window.__lastLineAt !== null"), 20, "the last line of the log")
    opened_ms = browser.js("return window.__lastLineAt - window.__openedAt")
    print(f"  100,000 lines opened in {opened_ms:.0f} ms")
    assert opened_ms < 2000, f"the 100,000-line log took {opened_ms:.0f} ms to show its last line"
    assert browser.js("return document.getElementById('log').logView.totalLines") == 100000
    assert browser.js("return document.querySelectorAll('#log .log-line').length") < 300, "only the rows on screen are drawn"

    # Scrolling anywhere draws that window at once.
    timings = browser.js(
        """
        const log = document.getElementById('log'), view = log.logView, times = [], missing = [];
        for (let i = 0; i <= 20; i++) {
          const started = performance.now();
          log.scrollTop = Math.floor(i / 20 * (log.scrollHeight - log.clientHeight));
          view.render();
          document.querySelector('#log .log-line').getBoundingClientRect(); // style and layout too
          times.push(performance.now() - started);
          const first = Math.max(1, Math.ceil((log.scrollTop - view.rows.offsetTop - 32) / 20) + 1);
          if (!document.querySelector(`#log .log-line[data-line="${Math.min(first, 100000)}"]`)) missing.push(first);
        }
        return { slowest: Math.max(...times), missing, rows: document.querySelectorAll('#log .log-line').length };
        """
    )
    print(f"  slowest scroll redraw: {timings['slowest']:.1f} ms")
    assert not timings["missing"], f"lines at the top of the pane were not drawn: {timings['missing']}"
    assert timings["rows"] < 300 and timings["slowest"] < 100, timings

    # Search finds the last line and scrolls to it.
    search = browser.driver.find_element(By.ID, "log-search")
    search.send_keys("100000")
    browser.wait_text("#log-search-count", "1 of 1")
    in_view = """const row = document.querySelector('#log .log-line.current-match'); if (!row) return null;
        const box = row.getBoundingClientRect(), pane = document.getElementById('log').getBoundingClientRect();
        return box.top >= pane.top && box.bottom <= pane.bottom ? [Number(row.dataset.line), row.querySelector('.log-text').textContent] : null;"""
    wait_until(lambda: browser.js(in_view) == [100000, "100000"], 5, "the last line shown as the match")
    assert browser.js("return document.querySelector('#log .current-match mark').textContent") == "100000"

    # Next and previous go through every match, wrapping around.
    expected = [n for n in range(1, 100001) if "5000" in str(n)]
    search.clear()
    search.send_keys("5000")
    browser.wait_text("#log-search-count", f"1 of {len(expected)}")
    wait_until(lambda: (browser.js(in_view) or [None])[0] == expected[0], 5, "the first match")
    browser.click("#log-search-next")
    browser.wait_text("#log-search-count", f"2 of {len(expected)}")
    wait_until(lambda: (browser.js(in_view) or [None])[0] == expected[1], 5, "the second match")
    browser.click("#log-search-prev")
    browser.click("#log-search-prev")
    browser.wait_text("#log-search-count", f"{len(expected)} of {len(expected)}")
    wait_until(lambda: (browser.js(in_view) or [None])[0] == expected[-1], 5, "the last match")
    search.send_keys(Keys.ENTER)
    browser.wait_text("#log-search-count", f"1 of {len(expected)}")

    # A line's number links to it; the link opens the log there, marked.
    number = browser.js("return Number(document.querySelector('#log .log-line.current-match').dataset.line)")
    browser.click(f'#log .log-line[data-line="{number}"] .ln')
    wait_until(lambda: browser.driver.current_url.endswith(f"/jobs/{job}/L{number}"), 5, "the line's address")
    # Marked once the page has handled the new address (a redraw may come a frame later).
    wait_until(
        lambda: browser.js(f"const row = document.querySelector('#log .log-line[data-line=\"{number}\"]'); return !!row && row.classList.contains('target')"),
        5, "the linked line marked")
    browser.open(OPEN_URL, f"/jobs/{job}/L99999")
    target = """const row = document.querySelector('#log .log-line.target'); if (!row) return null;
        const box = row.getBoundingClientRect(), pane = document.getElementById('log').getBoundingClientRect();
        return box.top >= pane.top && box.bottom <= pane.bottom ? row.querySelector('.log-text').textContent : null;"""
    wait_until(lambda: browser.js(target) == "99999", 15, "line 99999 shown and marked after a reload")


COLOUR_PIPELINE = r"""steps:
  - printf '\033[38;5;196mred256\033[0m \033[48;5;21mbluebg\033[0m \033[38;2;255;136;0mtruecolour\033[0m \033[38;5;2mgreen16\033[0m\n'
  - type: bash
    content: |
      printf 'progress 10%%\rprogress 50%%\rprogress 100%%\n'
      printf 'abcdef\rXY\n'
      printf 'crlf line\r\n'
      for i in 1 2 3; do printf "live $i/3\r"; sleep 0.2; done; printf '\n'
      printf '\033[33mwarm\033[0m then \033[1mbold\033[0m\n'
    phase: test
"""


def test_log_colours_and_carriage_returns(browser, api):
    job = api.trigger(api.pipeline("colours", COLOUR_PIPELINE))
    browser.open(OPEN_URL, f"/jobs/{job}")
    browser.wait_text("#log-state", "finished: success", timeout=20)
    wait_until(lambda: "then bold" in browser.log_text(), 5, "the whole log")
    lines = browser.log_lines()
    # `\r` overwrites the line (a progress bar shows its last state); `\r\n` is a line end.
    for line in ("progress 100%", "XYcdef", "crlf line", "live 3/3"):
        assert line in lines, f"{line!r} not among {lines}"
    assert not any(re.match(r"progress (10|50)%|live [12]/3", line) for line in lines), lines
    assert "\r" not in browser.log_text() and "\x1b" not in browser.log_text()

    styles = browser.js(
        """const out = {};
        for (const span of document.querySelectorAll('#log .log-text span')) {
          const style = getComputedStyle(span);
          out[span.textContent] = { color: style.color, background: style.backgroundColor, classes: span.className };
        }
        return out;"""
    )
    assert styles["red256"]["color"] == "rgb(255, 0, 0)", styles.get("red256")
    assert styles["bluebg"]["background"] == "rgb(0, 0, 255)", styles.get("bluebg")
    assert styles["truecolour"]["color"] == "rgb(255, 136, 0)", styles.get("truecolour")
    assert styles["green16"]["classes"] == "fg-2", styles.get("green16")
    assert styles["warm"]["classes"] == "fg-3" and styles["bold"]["classes"] == "bold", styles

    # Raw downloads: the stored output, escapes and all.
    fetch = """const done = arguments[arguments.length - 1];
        fetch(arguments[0]).then(r => r.text().then(text => done([r.status, r.headers.get('content-type'), text])), e => done([0, '', String(e)]));"""
    href = browser.js("return document.getElementById('log-raw').href")
    assert href.endswith(f"/jobs/{job}/logs/raw"), href
    status, content_type, text = browser.driver.execute_async_script(fetch, href)
    assert status == 200 and content_type.startswith("text/plain"), (status, content_type)
    assert "\x1b[38;5;196mred256" in text and "progress 10%\rprogress 50%" in text, text[:300]
    step_href = browser.js("return document.querySelector('#log .log-step-head .step-raw').href")
    assert re.search(r"/steps/\d+/logs/raw$", step_href), step_href
    status, _, text = browser.driver.execute_async_script(fetch, step_href)
    assert status == 200 and "red256" in text and "progress" not in text, (status, text[:200])

    browser.driver.find_element(By.ID, "log-search").send_keys("progress")
    browser.wait_text("#log-search-count", "1 of 1")
    path = os.path.join(ARTIFACTS, "dashboard-log.png")
    browser.driver.save_screenshot(path)
    print(f"  screenshot: {path}")


def test_pipeline_created_edited_and_run_with_branch_and_env(browser, api):
    name = f"made-in-the-page-{os.urandom(3).hex()}"
    bad = "steps: []\n"
    _, _, message = api.refusal("POST", "/pipelines", {"name": name, "config": bad})
    good = 'steps:\n  - echo "greeting=$GREETING target=$TARGET"\n'
    edited = 'steps:\n  - echo "edited greeting=$GREETING target=$TARGET"\n'
    set_config = "document.getElementById('pipeline-config').value = arguments[0];"

    browser.open(OPEN_URL, "/pipelines")
    browser.click("#new-pipeline")
    wait_until(lambda: browser.js("return document.getElementById('pipeline-form') !== null"), 10, "the pipeline form")
    browser.driver.find_element(By.ID, "pipeline-name").send_keys(name)
    browser.js(set_config, bad)
    browser.click("#pipeline-form button[type=submit]")
    browser.wait_text("#pipeline-form-error", message)
    assert browser.driver.current_url.endswith("#/pipelines/new"), "a refused pipeline stays in the form"
    assert not [p for p in api.call("GET", "/pipelines?limit=500") if p["name"] == name], "nothing was stored"

    browser.js(set_config, good)
    browser.click("#pipeline-form button[type=submit]")
    wait_until(lambda: browser.driver.current_url.endswith("#/pipelines"), 10, "the pipelines page")
    stored = [p for p in api.call("GET", "/pipelines?limit=500") if p["name"] == name]
    assert len(stored) == 1 and stored[0]["config"] == good, stored
    pipeline = stored[0]["id"]
    card = f'article[data-pipeline-id="{pipeline}"]'
    browser.wait_text(card, name)

    # Edit: a refused change shows the service's message and changes nothing.
    browser.click(f"{card} a[data-edit-pipeline]")
    wait_until(lambda: browser.js("const c = document.getElementById('pipeline-config'); return c && c.value") == good, 10, "the stored config in the form")
    _, _, edit_message = api.refusal("PUT", f"/pipelines/{pipeline}", {"name": name, "config": "stepz:\n  - echo\n"})
    browser.js(set_config, "stepz:\n  - echo\n")
    browser.click("#pipeline-form button[type=submit]")
    browser.wait_text("#pipeline-form-error", edit_message)
    assert api.call("GET", f"/pipelines/{pipeline}")["config"] == good
    browser.js(set_config, edited)
    browser.click("#pipeline-form button[type=submit]")
    wait_until(lambda: browser.driver.current_url.endswith("#/pipelines"), 10, "the pipelines page after saving")
    assert api.call("GET", f"/pipelines/{pipeline}")["config"] == edited
    browser.wait_text(card, "edited greeting")

    # Run with a branch and environment; a bad branch is refused in place.
    browser.click(f"{card} button[data-run-options]")
    branch = browser.driver.find_element(By.CSS_SELECTOR, f"{card} input[name=branch]")
    branch.send_keys("--bad")
    _, _, branch_message = api.refusal("POST", f"/pipelines/{pipeline}/jobs", {"branch": "--bad"})
    browser.click(f"{card} button[data-run-with]")
    browser.wait_text(f"{card} .run-error", branch_message)
    branch.clear()
    branch.send_keys("feature/dash")
    browser.driver.find_element(By.CSS_SELECTOR, f"{card} textarea[name=env]").send_keys("GREETING=hello\nTARGET=world")
    browser.click(f"{card} button[data-run-with]")
    wait_until(lambda: re.search(r"#/jobs/(\d+)$", browser.driver.current_url), 10, "navigation to the new job")
    job = int(re.search(r"#/jobs/(\d+)$", browser.driver.current_url).group(1))
    browser.wait_text("#log-state", "finished: success", timeout=15)
    assert "edited greeting=hello target=world" in browser.log_text()
    ran = api.call("GET", f"/jobs/{job}")
    assert ran["pipeline_id"] == pipeline and ran["branch"] == "feature/dash", ran


def test_secrets_page_sets_lists_and_deletes_without_showing_values(browser, api):
    suffix = os.urandom(3).hex()
    name = f"PAGE_TOKEN_{suffix.upper()}"
    value = f"page-secret-{os.urandom(8).hex()}"
    pipeline_name = f"secret-scope-{suffix}"
    pipeline = api.pipeline(pipeline_name, "steps:\n  - echo hi\n")
    _, code, message = api.refusal("PUT", "/secrets/lower-case", {"value": "v-123456"})
    assert code == "invalid_secret", code

    browser.open(OPEN_URL, "/secrets")
    wait_until(lambda: browser.js("return document.querySelector(arguments[0]) !== null", f'#secret-pipeline option[value="{pipeline}"]'), 10, "the pipeline dropdown")
    assert browser.js("return document.querySelector('a[data-nav=secrets]').classList.contains('active')")
    name_field = browser.driver.find_element(By.ID, "secret-name")
    value_field = browser.driver.find_element(By.ID, "secret-value")
    assert browser.js("return getComputedStyle(arguments[0]).webkitTextSecurity", value_field) == "disc", "the value is drawn as dots"

    # A refused name shows the service's message in place, and nothing is stored.
    name_field.send_keys("lower-case")
    value_field.send_keys(value)
    browser.click("#secret-form button[type=submit]")
    browser.wait_text("#secret-form-error", message)
    assert api.call("GET", "/secrets") == []

    # Set for one pipeline, chosen from the dropdown; the value field is emptied.
    name_field.clear()
    name_field.send_keys(name)
    Select(browser.driver.find_element(By.ID, "secret-scope")).select_by_value("pipeline")
    Select(browser.driver.find_element(By.ID, "secret-pipeline")).select_by_value(str(pipeline))
    browser.click("#secret-form button[type=submit]")
    row = f'tr[data-secret="{name}"]'
    browser.wait_text(row, f"pipeline {pipeline_name} (#{pipeline})")
    assert browser.js("return document.getElementById('secret-value').value") == ""
    assert browser.js("return document.getElementById('secret-form-error').hidden")
    assert api.call("GET", f"/secrets/{name}?pipeline_id={pipeline}")["scope"] == {"pipeline_id": pipeline}

    # A job that uses it shows as the last job; the value is nowhere in the page.
    api.call("PUT", f"/pipelines/{pipeline}", {"name": pipeline_name, "config": f"secrets: [{name}]\nsteps:\n  - echo \"${name}\"\n"})
    job = api.trigger(pipeline)
    assert api.wait_for_end(job) == "success"
    browser.open(OPEN_URL, "/secrets")
    wait_until(lambda: browser.js("return document.querySelector(arguments[0]) !== null", f'{row} a[href="#/jobs/{job}"]'), 10, "the last job's link")
    for html in (browser.driver.page_source, browser.js("return document.documentElement.outerHTML")):
        assert value not in html, "the value appears in the page"

    # Delete asks first; "Keep" keeps it, "Delete it" deletes it.
    browser.click(f"{row} button[data-delete-secret]")
    browser.click(f"{row} .confirm button:not([data-confirm-delete])")
    assert api.call("GET", f"/secrets/{name}?pipeline_id={pipeline}")["name"] == name
    browser.click(f"{row} button[data-delete-secret]")
    browser.click(f"{row} button[data-confirm-delete]")
    wait_until(lambda: browser.js("return document.querySelector(arguments[0]) === null", row), 10, "the row to go")
    status, code, _ = api.refusal("GET", f"/secrets/{name}?pipeline_id={pipeline}")
    assert (status, code) == (404, "secret_not_found"), (status, code)


def test_an_unknown_page_shows_not_found(browser, api):
    browser.open(OPEN_URL, "/no/such/page")
    browser.wait_text("#not-found", "Not found")
    assert "#/no/such/page" in browser.text("#not-found")
    browser.js("location.hash = '#/jobs/99999999';")
    browser.wait_text("#not-found", "Job 99999999 does not exist")
    browser.js("location.hash = '#/pipelines/99999999/edit';")
    browser.wait_text("#not-found", "Pipeline 99999999 does not exist")


# Nothing listens on port 9: every try is refused, so a delivery stays pending between its retries, with the error.
UNREACHABLE_WEBHOOK = "http://127.0.0.1:9/never"

# The cells of the job page's header, by their label.
JOB_META = "return Object.fromEntries([...document.querySelectorAll('.meta > div')].map(d => [d.querySelector('dt').textContent, d.querySelector('dd').textContent]));"


def test_webhooks_page_lists_a_webhook_and_its_deliveries(browser, api):
    pipeline = api.pipeline(f"told-{os.urandom(3).hex()}", "steps:\n  - echo tell someone\n")
    # For this pipeline only, so the other tests' jobs send nothing.
    webhook = api.call("POST", "/webhooks", {"url": UNREACHABLE_WEBHOOK, "events": ["job.finished"], "pipeline_id": pipeline})["id"]
    try:
        job = api.trigger(pipeline)
        assert api.wait_for_end(job) == "success"

        browser.open(OPEN_URL, "/webhooks")
        row = f'#webhooks tr[data-webhook-id="{webhook}"]'
        browser.wait_text(f"{row} .url", UNREACHABLE_WEBHOOK)
        assert browser.text(f"{row} .events") == "job.finished"
        assert browser.text(f"{row} .state") == "active"
        assert browser.js("return document.querySelector('a[data-nav=webhooks]').classList.contains('active')")
        assert browser.js("return document.getElementById('deliveries-panel').hidden"), "no deliveries before a webhook is chosen"

        # Choosing the webhook puts it in the address and shows its deliveries.
        browser.click(f"{row} td.url")
        wait_until(lambda: browser.driver.current_url.endswith(f"#/webhooks/{webhook}"), 5, "the webhook's address")
        delivery = f'#webhook-deliveries tr[data-job-id="{job}"]'
        browser.wait_text(f"{delivery} .event", "job.finished")
        assert browser.js("return document.querySelector(arguments[0]).classList.contains('selected')", row)
        wait_until(lambda: browser.text(f"{delivery} .error"), 15, "the refused try's error")
        assert browser.text(f"{delivery} .state") == "pending", browser.text(delivery)
        assert int(browser.text(f"{delivery} .tries")) >= 1

        # Redeliver (every action is an admin's on a service without a token): the list follows.
        tries = int(browser.text(f"{delivery} .tries"))
        browser.click(f"{delivery} button[data-redeliver]")
        browser.wait_text("#notice", "will be sent again")
        wait_until(lambda: int(browser.text(f"{delivery} .tries") or 0) > tries, 15, "another try")

        # The delivery links to its job, whose page says what started it: the API, no commit.
        browser.click(f"{delivery} td.job a")
        wait_until(lambda: browser.driver.current_url.endswith(f"#/jobs/{job}"), 5, "the job's page")
        browser.wait_text("#job-status", "success")
        wait_until(lambda: browser.js(JOB_META).get("Event") == "api", 10, "the job's event")
        assert "Commit" not in browser.js(JOB_META), "a job started through the API names no commit"
    finally:
        api.call("DELETE", f"/webhooks/{webhook}")


def test_webhooks_page_is_for_admins_of_every_owner(browser, api):
    admin = Api(TOKEN_URL, TOKEN)
    pipeline = admin.pipeline(f"watched-{os.urandom(3).hex()}", "steps:\n  - echo watched\n")
    webhook = admin.call("POST", "/webhooks", {"url": UNREACHABLE_WEBHOOK, "events": ["job.finished"], "pipeline_id": pipeline})["id"]
    try:
        job = admin.trigger(pipeline)
        assert admin.wait_for_end(job) == "success"
        suffix = os.urandom(3).hex()
        reader = admin.call("POST", "/tokens", {"name": f"webhook-reader-{suffix}", "role": "read"})["token"]
        limited = admin.call("POST", "/tokens", {"name": f"team-admin-{suffix}", "role": "admin", "owners": ["team-a"]})["token"]
        hidden = "return getComputedStyle(document.querySelector(arguments[0])).display === 'none'"

        # Webhook URLs may carry credentials: a read-only token is not offered the page, and
        # opening it shows the service's refusal and no list.
        browser.open(TOKEN_URL, "/jobs")
        browser.js("sessionStorage.setItem('rapidflow.token', arguments[0])", reader)
        browser.open(TOKEN_URL, f"/webhooks/{webhook}")
        browser.wait_text("#notice", "needs admin")
        wait_until(lambda: browser.js("return document.body.dataset.role") == "read", 10, "the page to learn the token's role")
        assert browser.js(hidden, 'a[data-nav="webhooks"]'), "the Webhooks page is offered to a read-only token"
        assert browser.js("return document.getElementById('webhooks').hidden && document.getElementById('webhooks-empty').hidden")

        # An admin token limited to some owners may not read them either: they are about every owner.
        browser.js("sessionStorage.setItem('rapidflow.token', arguments[0])", limited)
        browser.open(TOKEN_URL, "/webhooks")
        browser.wait_text("#notice", "reaches only the owners")
        assert browser.js("return document.getElementById('webhooks').hidden && document.getElementById('webhooks-empty').hidden")
        assert browser.js("return document.getElementById('hooks').hidden && document.getElementById('hooks-empty').hidden")

        # The admin token sees the webhook and its delivery.
        browser.js("sessionStorage.setItem('rapidflow.token', arguments[0])", TOKEN)
        browser.open(TOKEN_URL, f"/webhooks/{webhook}")
        browser.wait_text(f'#webhook-deliveries tr[data-job-id="{job}"] .event', "job.finished")
        browser.js("sessionStorage.setItem('rapidflow.token', arguments[0])", TOKEN)
    finally:
        admin.call("DELETE", f"/webhooks/{webhook}")


def test_a_finished_jobs_artifacts_are_listed_and_download(browser, api):
    pipeline = api.pipeline(
        "with-artifacts",
        'artifacts:\n  paths: ["dist/"]\nsteps:\n  - mkdir -p dist && printf kept-by-the-job > dist/app.txt\n',
    )
    job = api.trigger(pipeline)
    assert api.wait_for_end(job) == "success"
    browser.open(OPEN_URL, f"/jobs/{job}")
    browser.wait_text("#artifact-list", "dist/app.txt")
    assert "15 B" in browser.js("return document.getElementById('artifact-list').textContent")
    href = browser.js("return document.querySelector('#artifact-list a.artifact-link').getAttribute('href')")
    assert href == f"/jobs/{job}/artifacts/dist/app.txt", href
    body = browser.driver.execute_async_script(
        "const done = arguments[arguments.length - 1]; fetch(arguments[0]).then((r) => r.text()).then(done);", href
    )
    assert body == "kept-by-the-job", body
    # A job without artifacts shows no artifact panel.
    plain = api.trigger(api.pipeline("without-artifacts", "steps:\n  - echo nothing kept\n"))
    assert api.wait_for_end(plain) == "success"
    browser.open(OPEN_URL, f"/jobs/{plain}")
    browser.wait_text("#log-state", "finished: success", timeout=15)
    assert browser.js("return document.getElementById('artifacts').hidden") is True


TESTS = [
    test_job_list_updates_when_another_user_triggers_a_job,
    test_running_job_log_streams_line_by_line_and_survives_drops,
    test_cancel_and_retry_from_the_page,
    test_pipelines_page_runs_a_pipeline,
    test_image_job_form_shows_the_services_message,
    test_a_token_is_asked_for_once_and_then_used,
    test_a_read_only_token_is_offered_no_action,
    test_a_failed_test_phase_card_is_red,
    test_job_list_pages_filters_and_searches_on_the_service,
    test_a_100000_line_log_opens_fast_and_its_last_line_is_found,
    test_log_colours_and_carriage_returns,
    test_pipeline_created_edited_and_run_with_branch_and_env,
    test_an_unknown_page_shows_not_found,
    test_secrets_page_sets_lists_and_deletes_without_showing_values,
    test_webhooks_page_lists_a_webhook_and_its_deliveries,
    test_webhooks_page_is_for_admins_of_every_owner,
    test_a_finished_jobs_artifacts_are_listed_and_download,
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
