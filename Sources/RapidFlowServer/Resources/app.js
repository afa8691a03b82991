// RapidFlow dashboard: the job list, a job's live log, pipelines and the image job form.
// Plain modern JavaScript served by the service itself; it talks only to the API it is served by.

const POLL_MS = 1500;
const FINAL_STATUSES = new Set(["success", "failed", "cancelled"]);
const STATUSES = ["pending", "running", "success", "failed", "cancelled"];

// ---------------------------------------------------------------------------
// DOM helpers. Text always goes in through text nodes, so nothing the API returns is parsed as HTML.

/** Builds an element: `h("a", {href: "#/jobs", class: "x"}, "text", child)`. */
function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  element.append(...children.flat().filter((child) => child !== null && child !== undefined && child !== false));
  return element;
}

function badge(status) {
  return h("span", { class: `badge status-${status}` }, status);
}

function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "—";
  if (seconds < 10) return `${seconds.toFixed(1)} s`;
  if (seconds < 60) return `${Math.round(seconds)} s`;
  const minutes = Math.floor(seconds / 60);
  const rest = Math.round(seconds % 60);
  if (minutes < 60) return `${minutes}m ${String(rest).padStart(2, "0")}s`;
  return `${Math.floor(minutes / 60)}h ${String(minutes % 60).padStart(2, "0")}m`;
}

/** Seconds from `start` to `end`, or to now while the job runs. */
function elapsed(start, end) {
  if (!start) return null;
  const finish = end ? Date.parse(end) : Date.now();
  return Math.max(0, (finish - Date.parse(start)) / 1000);
}

function formatTime(timestamp) {
  if (!timestamp) return "—";
  const date = new Date(timestamp);
  const sameDay = date.toDateString() === new Date().toDateString();
  return sameDay ? date.toLocaleTimeString() : date.toLocaleString();
}

function jobName(job) {
  if (job.pipeline_name) return job.pipeline_name;
  if (job.repo_name) return job.repo_name.replace(/^[a-z]+:\/\//, "").replace(/\.git$/, "");
  return `${job.kind} job`;
}

let noticeTimer = null;

/** A message across the top of the page; errors stay until the next one or a navigation. */
function showNotice(message, kind = "error") {
  const notice = document.getElementById("notice");
  notice.textContent = message;
  notice.className = `notice notice-${kind}`;
  notice.hidden = false;
  clearTimeout(noticeTimer);
  if (kind !== "error") noticeTimer = setTimeout(() => (notice.hidden = true), 4000);
}

function clearNotice() {
  document.getElementById("notice").hidden = true;
}

// ---------------------------------------------------------------------------
// The API: the envelope, errors, and the bearer token when the service has one.

const TOKEN_KEY = "rapidflow.token";

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const tokenStore = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set(token) {
    sessionStorage.setItem(TOKEN_KEY, token);
    document.getElementById("forget-token").hidden = false;
  },
  clear() {
    sessionStorage.removeItem(TOKEN_KEY);
    document.getElementById("forget-token").hidden = true;
  },
};

function authorizationHeaders(token = tokenStore.get()) {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

/** Calls the API and answers the envelope's `data`; a 401 asks for the token, then tries again. */
async function api(method, path, body) {
  for (let attempt = 0; ; attempt++) {
    const sent = tokenStore.get();
    const headers = authorizationHeaders(sent);
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const envelope = await response.json().catch(() => null);
    if (response.status === 401 && attempt < 3) {
      // A token entered meanwhile (for a call refused at the same time) is simply tried.
      if (tokenStore.get() === sent) {
        await askForToken(sent ? "The stored token was refused. Enter the service's API token." : undefined);
      }
      continue;
    }
    if (!response.ok || !envelope || envelope.error) {
      const error = envelope?.error;
      throw new ApiError(response.status, error?.code, error?.message ?? `the service answered HTTP ${response.status}`);
    }
    return envelope.data;
  }
}

let tokenPrompt = null;

/**
 * Shows the token form once, however many calls were refused at the same time, and resolves
 * when the service has accepted a token (checked before it is kept).
 */
function askForToken(message) {
  tokenPrompt ??= new Promise((resolve) => {
    const dialog = document.getElementById("token-dialog");
    const form = document.getElementById("token-form");
    const input = document.getElementById("token-input");
    const error = document.getElementById("token-error");
    document.getElementById("token-message").textContent = message ?? "This RapidFlow service needs its API token.";
    error.hidden = true;
    input.value = "";
    const refuseEscape = (event) => event.preventDefault();
    const submit = async (event) => {
      event.preventDefault();
      const candidate = input.value.trim();
      if (!candidate) return;
      const check = await fetch("/jobs?limit=1", { headers: authorizationHeaders(candidate) }).catch(() => null);
      if (!check || check.status === 401) {
        error.textContent = check ? "The service refused this token." : "The service cannot be reached.";
        error.hidden = false;
        input.select();
        return;
      }
      tokenStore.set(candidate);
      form.removeEventListener("submit", submit);
      dialog.removeEventListener("cancel", refuseEscape);
      dialog.close();
      tokenPrompt = null;
      resolve();
    };
    form.addEventListener("submit", submit);
    dialog.addEventListener("cancel", refuseEscape);
    dialog.showModal();
    input.focus();
  });
  return tokenPrompt;
}

/** The subprotocols that carry the token to the WebSocket (browsers cannot set its headers). */
function webSocketProtocols() {
  const token = tokenStore.get();
  if (!token) return [];
  const bytes = new TextEncoder().encode(token);
  const base64 = btoa(String.fromCharCode(...bytes));
  return ["rapidflow", `bearer.${base64.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "")}`];
}

// ---------------------------------------------------------------------------
// Views. Each has a scope that stops its timers and sockets when the reader navigates away.

class Scope {
  constructor() {
    this.active = true;
    this.cleanups = [];
  }

  onDispose(cleanup) {
    this.cleanups.push(cleanup);
  }

  /** Runs `task` now and again `ms` after each run ends, until the view goes or `task` answers false. */
  every(ms, task) {
    let timer = null;
    let failing = false;
    const run = async () => {
      if (!this.active) return;
      let again = true;
      try {
        again = (await task()) !== false;
        if (failing) clearNotice();
        failing = false;
      } catch (error) {
        failing = true;
        if (this.active) showNotice(error instanceof ApiError ? error.message : `The service cannot be reached; retrying (${error.message}).`);
      }
      if (again && this.active) timer = setTimeout(run, ms);
    };
    this.onDispose(() => clearTimeout(timer));
    run();
  }

  dispose() {
    this.active = false;
    for (const cleanup of this.cleanups) cleanup();
  }
}

// ---------------------------------------------------------------------------
// Job list

function jobsView(root, scope, query) {
  const status = STATUSES.includes(query.get("status")) ? query.get("status") : "";
  const pipelineID = /^\d+$/.test(query.get("pipeline_id") ?? "") ? query.get("pipeline_id") : "";
  const filter = h(
    "select",
    { id: "status-filter", "aria-label": "Filter by status", onchange: (event) => navigateToJobs(event.target.value, pipelineID) },
    h("option", { value: "" }, "All statuses"),
    STATUSES.map((value) => h("option", { value, selected: value === status }, value)),
  );
  const updated = h("span", { class: "muted", id: "jobs-updated" });
  const body = h("tbody", { id: "jobs-body" });
  const empty = h("p", { class: "empty", hidden: true }, status ? `No ${status} jobs.` : "No jobs yet: run a pipeline or submit an image job.");
  root.append(
    h(
      "section",
      { class: "panel" },
      h(
        "div",
        { class: "toolbar" },
        h("h1", {}, "Jobs"),
        pipelineID ? h("span", { class: "chip" }, `pipeline ${pipelineID} `, h("a", { href: "#/jobs", "aria-label": "Show all pipelines" }, "×")) : null,
        h("label", { class: "filter" }, "Status ", filter),
        updated,
      ),
      h(
        "table",
        { class: "jobs" },
        h("thead", {}, h("tr", {}, ["Job", "Pipeline / repository", "Kind", "Status", "Duration", "Created"].map((title) => h("th", {}, title)))),
        body,
      ),
      empty,
    ),
  );

  const rows = new Map();
  const params = new URLSearchParams({ limit: "100" });
  if (status) params.set("status", status);
  if (pipelineID) params.set("pipeline_id", pipelineID);
  scope.every(POLL_MS, async () => {
    const jobs = await api("GET", `/jobs?${params}`);
    if (!scope.active) return;
    const seen = new Set();
    jobs.forEach((job, index) => {
      seen.add(job.id);
      let row = rows.get(job.id);
      if (!row) {
        row = jobRow(job);
        rows.set(job.id, row);
      }
      updateJobRow(row, job);
      if (body.children[index] !== row) body.insertBefore(row, body.children[index] ?? null);
    });
    for (const [id, row] of rows) {
      if (!seen.has(id)) {
        row.remove();
        rows.delete(id);
      }
    }
    empty.hidden = jobs.length > 0;
    updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
  });
}

function navigateToJobs(status, pipelineID) {
  const params = new URLSearchParams();
  if (status) params.set("status", status);
  if (pipelineID) params.set("pipeline_id", pipelineID);
  location.hash = `#/jobs${params.size ? `?${params}` : ""}`;
}

function jobRow(job) {
  const row = h("tr", { "data-job-id": job.id, class: "clickable" });
  row.addEventListener("click", (event) => {
    if (event.target.closest("a")) return;
    location.hash = `#/jobs/${job.id}`;
  });
  row.append(
    h("td", {}, h("a", { href: `#/jobs/${job.id}` }, `#${job.id}`)),
    h("td", { class: "name" }),
    h("td", { class: "kind" }),
    h("td", { class: "status" }),
    h("td", { class: "duration" }),
    h("td", { class: "created muted" }),
  );
  return row;
}

function updateJobRow(row, job) {
  const set = (selector, text) => {
    const cell = row.querySelector(selector);
    if (cell.textContent !== text) cell.textContent = text;
  };
  set(".name", jobName(job));
  set(".kind", job.kind);
  set(".duration", formatDuration(elapsed(job.started_at, job.finished_at)));
  set(".created", formatTime(job.created_at));
  const statusCell = row.querySelector(".status");
  if (statusCell.textContent !== job.status) statusCell.replaceChildren(badge(job.status));
  row.dataset.status = job.status;
}

// ---------------------------------------------------------------------------
// Job page: header, phase timings, steps, and the live log.

const PHASES = ["build", "test", "publish"];

/** A step's first command line, or its type and name when it has no script of its own. */
function stepTitle(step) {
  const command = (step.content ?? "").split("\n")[0].trim();
  return step.type === "bash" && command ? command : [step.type, step.name].filter(Boolean).join(" · ");
}

function stepDuration(step) {
  return formatDuration(step.duration_seconds ?? (step.started_at ? elapsed(step.started_at, step.finished_at) : null));
}

function jobView(root, scope, jobID, focusStepID) {
  const page = new JobPage(root, scope, jobID);
  page.start(focusStepID);
  return { key: `job:${jobID}`, update: (stepID) => page.focusStep(stepID) };
}

class JobPage {
  constructor(root, scope, jobID) {
    this.scope = scope;
    this.jobID = jobID;
    this.job = null;
    this.stepsInfo = [];
    this.focusedStepID = null;
    this.shownSteps = null;
    this.cancelling = false;
    this.title = h("h1", {}, `Job #${jobID}`);
    this.statusBadge = h("span", { id: "job-status" });
    this.cancelButton = h("button", { type: "button", id: "cancel-job", class: "danger", onclick: () => this.cancel() }, "Cancel");
    this.retryButton = h("button", { type: "button", id: "retry-job", onclick: () => this.retry() }, "Retry");
    this.meta = h("dl", { class: "meta" });
    this.phases = h("div", { class: "phases", id: "phases" });
    this.stepList = h("ol", { class: "step-list", id: "step-list" });
    this.log = new LogView(jobID);
    root.append(
      h(
        "section",
        { class: "panel job-head" },
        h("div", { class: "crumbs" }, h("a", { href: "#/jobs" }, "← All jobs")),
        h("div", { class: "job-title" }, this.title, this.statusBadge, h("div", { class: "actions" }, this.cancelButton, this.retryButton)),
        this.meta,
        this.phases,
      ),
      h(
        "div",
        { class: "job-body" },
        h("aside", { class: "panel steps" }, h("h2", {}, "Steps"), this.stepList),
        this.log.element,
      ),
    );
    scope.onDispose(() => this.log.stop());
  }

  async start(focusStepID) {
    try {
      const details = await api("GET", `/jobs/${this.jobID}/details`);
      if (!this.scope.active) return;
      this.stepsInfo = details.steps.map((step) => ({ ...step, step_id: step.id }));
      this.renderJob(details.job);
      this.renderSteps();
      this.log.prepare(this.stepsInfo);
      this.log.onJobFinished = () => this.refresh().catch((error) => showNotice(error.message));
      this.log.start();
      if (focusStepID) this.focusStep(focusStepID);
    } catch (error) {
      showNotice(error.status === 404 ? `Job ${this.jobID} does not exist.` : error.message);
      return;
    }
    this.scope.every(POLL_MS, async () => {
      await this.refresh();
      return !FINAL_STATUSES.has(this.job.status);
    });
  }

  async refresh() {
    const [job, status] = await Promise.all([api("GET", `/jobs/${this.jobID}`), api("GET", `/jobs/${this.jobID}/status`)]);
    if (!this.scope.active) return;
    this.renderJob(job);
    this.renderPhases(status);
    const byID = new Map(status.steps.map((step) => [step.step_id, step]));
    this.stepsInfo = this.stepsInfo.map((step) => ({ ...step, ...(byID.get(step.step_id) ?? {}) }));
    this.renderSteps();
    this.log.updateSteps(this.stepsInfo);
  }

  renderJob(job) {
    this.job = job;
    this.title.textContent = `Job #${job.id} · ${jobName(job)}`;
    this.statusBadge.replaceChildren(badge(job.status));
    const final = FINAL_STATUSES.has(job.status);
    if (!this.cancelling) this.cancelButton.disabled = final;
    this.retryButton.disabled = !final;
    const entries = [
      ["Kind", job.kind],
      job.pipeline_id ? ["Pipeline", h("a", { href: `#/jobs?pipeline_id=${job.pipeline_id}` }, `${job.pipeline_name ?? ""} (#${job.pipeline_id})`)] : null,
      job.repo_name ? ["Repository", job.repo_name] : null,
      job.branch ? ["Branch", job.branch] : null,
      job.retry_of ? ["Retry of", h("a", { href: `#/jobs/${job.retry_of}` }, `#${job.retry_of}`)] : null,
      ["Created", formatTime(job.created_at)],
      ["Started", formatTime(job.started_at)],
      ["Finished", formatTime(job.finished_at)],
      ["Duration", formatDuration(elapsed(job.started_at, job.finished_at))],
    ].filter(Boolean);
    this.meta.replaceChildren(...entries.map(([term, value]) => h("div", {}, h("dt", {}, term), h("dd", {}, value))));
  }

  renderPhases(status) {
    const stamps = status.phase_timestamps;
    const boxes = PHASES.map((phase) => {
      const start = stamps[`${phase}_start`];
      const end = stamps[`${phase}_end`];
      const state = end ? "done" : start ? "active" : "idle";
      const seconds = status.metrics[`${phase}_duration_seconds`] ?? (start ? elapsed(start, null) : null);
      return h(
        "div",
        { class: `phase phase-${state}`, "data-phase": phase },
        h("span", { class: "phase-name" }, phase),
        h("span", { class: "phase-duration" }, start ? formatDuration(seconds) : "not run"),
        h("span", { class: "phase-times muted" }, start ? `${formatTime(start)} → ${end ? formatTime(end) : "…"}` : ""),
      );
    });
    const total = status.metrics.job_duration_seconds ?? elapsed(stamps.job_start, null);
    boxes.push(
      h(
        "div",
        { class: "phase phase-total" },
        h("span", { class: "phase-name" }, "total"),
        h("span", { class: "phase-duration" }, formatDuration(total)),
        h("span", { class: "phase-times muted" }, `${status.metrics.concurrent_jobs_total} job(s) running on the service`),
      ),
    );
    this.phases.replaceChildren(...boxes);
  }

  renderSteps() {
    // Rebuilt only when something shown changed, so a finished job's list stays still under the pointer.
    const shown = JSON.stringify([this.focusedStepID, this.stepsInfo.map((step) => [step.status, stepDuration(step)])]);
    if (shown === this.shownSteps) return;
    this.shownSteps = shown;
    this.stepList.replaceChildren(
      ...this.stepsInfo.map((step) =>
        h(
          "li",
          { "data-step-id": step.step_id, class: step.step_id === this.focusedStepID ? "focused" : null },
          h(
            "a",
            { href: `#/jobs/${this.jobID}/steps/${step.step_id}`, title: step.content ?? "" },
            h("span", { class: "step-order" }, step.order_num),
            h(
              "span",
              { class: "step-label" },
              h("span", { class: "step-title" }, stepTitle(step)),
              h("small", { class: "muted" }, `${step.phase} · ${stepDuration(step)}`),
            ),
            badge(step.status),
          ),
        ),
      ),
    );
  }

  focusStep(stepID) {
    this.focusedStepID = stepID;
    this.log.scrollToStep(stepID);
    for (const item of this.stepList.children) item.classList.toggle("focused", Number(item.dataset.stepId) === stepID);
  }

  async cancel() {
    this.cancelling = true;
    this.cancelButton.disabled = true;
    this.cancelButton.textContent = "Cancelling…";
    try {
      await api("POST", `/jobs/${this.jobID}/cancel`);
      showNotice(`Job ${this.jobID} was cancelled.`, "info");
    } catch (error) {
      showNotice(error.message);
    } finally {
      this.cancelling = false;
      this.cancelButton.textContent = "Cancel";
      if (this.scope.active) await this.refresh().catch((error) => showNotice(error.message));
    }
  }

  async retry() {
    this.retryButton.disabled = true;
    try {
      const job = await api("POST", `/jobs/${this.jobID}/retry`);
      location.hash = `#/jobs/${job.id}`;
    } catch (error) {
      showNotice(error.message);
      this.retryButton.disabled = false;
    }
  }
}

/** The bytes a base64 string encodes. */
function base64Bytes(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let index = 0; index < binary.length; index += 1) bytes[index] = binary.charCodeAt(index);
  return bytes;
}

/**
 * The log pane: one section per step, fed by the WebSocket of JSON events.
 *
 * The socket can drop at any time. Each step remembers how many bytes of its output are on
 * the page, so a reconnect (which replays from the start of the first unfinished step) shows
 * nothing twice; `since` skips the steps that were already complete.
 */
class LogView {
  constructor(jobID) {
    this.jobID = jobID;
    this.steps = new Map();
    this.finished = false;
    this.stopped = false;
    this.socket = null;
    this.connections = 0;
    this.retryDelay = 500;
    this.reconnectTimer = null;
    this.follow = true;
    this.autoScrollTop = 0;
    this.scrollPending = false;
    this.onJobFinished = () => {};
    this.state = h("span", { id: "log-state", class: "log-state" }, "connecting…");
    this.jumpButton = h("button", { type: "button", id: "jump-to-end", class: "small", hidden: true, onclick: () => this.resumeFollowing() }, "↓ Follow");
    this.pane = h("div", { id: "log", class: "log", tabindex: "0", "aria-label": "Job log" });
    this.pane.addEventListener("scroll", () => this.onScroll());
    this.element = h(
      "section",
      { class: "panel log-panel" },
      h("div", { class: "log-toolbar" }, h("h2", {}, "Log"), this.state, this.jumpButton),
      this.pane,
    );
  }

  /** Sections for every step in order, so output lands in place whichever step it belongs to. */
  prepare(steps) {
    for (const step of steps) this.section(step.step_id, step);
  }

  updateSteps(steps) {
    for (const step of steps) {
      const entry = this.steps.get(step.step_id);
      if (entry && entry.status !== step.status) this.setStepStatus(entry, step.status);
    }
  }

  section(stepID, info = {}) {
    let entry = this.steps.get(stepID);
    if (entry) return entry;
    const output = h("pre", { class: "log-output" });
    const statusSlot = h("span", { class: "step-status" });
    const element = h(
      "section",
      { class: "log-step", id: `log-step-${stepID}`, "data-step-id": stepID, hidden: !info.started_at },
      h(
        "div",
        { class: "log-step-head" },
        h("a", { class: "anchor", href: `#/jobs/${this.jobID}/steps/${stepID}`, title: "Link to this step" }, "#"),
        h("span", {}, `Step ${info.order_num ?? "?"} (${info.type ?? "step"})`),
        info.phase ? h("span", { class: "muted" }, info.phase) : null,
        info.content ? h("code", { class: "step-command", title: info.content }, info.content.split("\n")[0]) : null,
        statusSlot,
      ),
      output,
    );
    // `received` counts bytes (as the events' offsets do); one streaming decoder per step turns
    // them into text, so a character split across events or at a resume comes out whole.
    entry = {
      element, output, statusSlot, received: 0, decoder: new TextDecoder(), complete: false, status: null,
      ansi: new AnsiRenderer(), orderNum: info.order_num ?? Infinity,
    };
    this.setStepStatus(entry, info.status ?? "pending");
    const after = [...this.steps.values()].find((other) => other.orderNum > entry.orderNum);
    this.pane.insertBefore(element, after?.element ?? null);
    this.steps.set(stepID, entry);
    return entry;
  }

  setStepStatus(entry, status) {
    entry.status = status;
    entry.statusSlot.replaceChildren(badge(status));
    if (status !== "pending") entry.element.hidden = false;
  }

  start() {
    if (this.stopped || this.finished) return;
    const since = this.completeThrough();
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const url = `${scheme}//${location.host}/jobs/${this.jobID}/logs/stream${since ? `?since=${since}` : ""}`;
    const socket = new WebSocket(url, webSocketProtocols());
    this.socket = socket;
    this.connections += 1;
    this.setState(this.connections > 1 ? "reconnecting…" : "connecting…", "pending");
    socket.onopen = () => this.setState("live", "live");
    socket.onmessage = (message) => {
      this.retryDelay = 500;
      this.handle(JSON.parse(message.data));
    };
    socket.onclose = () => {
      this.socket = null;
      if (this.stopped || this.finished) return;
      this.setState("connection lost; reconnecting…", "lost");
      this.reconnectTimer = setTimeout(() => this.reconnect(), this.retryDelay);
      this.retryDelay = Math.min(this.retryDelay * 2, 5000);
    };
  }

  /**
   * Leaves the current socket without waiting for its closing handshake (a server busy
   * writing may answer it late); nothing it still delivers reaches the page.
   */
  detach() {
    const socket = this.socket;
    if (!socket) return;
    socket.onopen = socket.onmessage = socket.onclose = null;
    socket.close();
    this.socket = null;
  }

  /** Before reopening, an API call asks for the token if the service now refuses the stored one. */
  async reconnect() {
    try {
      await api("GET", `/jobs/${this.jobID}`);
    } catch (error) {
      if (error.status === 404) {
        this.setState("job not found", "lost");
        return;
      }
    }
    this.start();
  }

  /** The last step id up to which every step's whole output is on the page: the stream's `since`. */
  completeThrough() {
    let through = null;
    for (const [stepID, entry] of [...this.steps].sort((a, b) => a[1].orderNum - b[1].orderNum)) {
      if (!entry.complete) break;
      through = stepID;
    }
    return through;
  }

  handle(event) {
    switch (event.event) {
      case "step_started": {
        const entry = this.section(event.step_id, event);
        if (entry.status === "pending") this.setStepStatus(entry, "running");
        break;
      }
      case "log":
        this.appendOutput(event);
        break;
      case "step_finished": {
        const entry = this.section(event.step_id);
        entry.complete = true;
        entry.ansi.append(entry.output, entry.decoder.decode());
        entry.ansi.flush(entry.output);
        this.setStepStatus(entry, event.status);
        break;
      }
      case "job_finished":
        this.finished = true;
        this.setState(`finished: ${event.status}`, event.status);
        this.onJobFinished();
        break;
      case "service_stopping":
        this.setState("the service is stopping; reconnecting…", "lost");
        break;
      case "error":
        this.stopped = true;
        this.setState(event.message, "lost");
        break;
    }
    this.scheduleScroll();
  }

  /**
   * Appends only the bytes past what the step already shows. An event carries its bytes as
   * text (`data`) or, when they are not valid UTF-8, as base64 (`data_base64`).
   */
  appendOutput(event) {
    const entry = this.section(event.step_id);
    const bytes = event.data_base64 !== undefined ? base64Bytes(event.data_base64) : new TextEncoder().encode(event.data);
    const end = event.offset + bytes.length;
    if (end <= entry.received) return;
    if (event.offset > entry.received) {
      // A gap should never happen; replay from the stream rather than show a hole.
      this.detach();
      this.start();
      return;
    }
    const fresh = bytes.subarray(entry.received - event.offset);
    entry.received = end;
    entry.ansi.append(entry.output, entry.decoder.decode(fresh, { stream: true }));
  }

  setState(text, kind) {
    this.state.textContent = text;
    this.state.dataset.state = kind;
  }

  /** Following stops when the reader moves up from where the pane was put, and resumes at the bottom. */
  onScroll() {
    const top = this.pane.scrollTop;
    const fromBottom = this.pane.scrollHeight - this.pane.clientHeight - top;
    if (fromBottom <= 24) this.follow = true;
    else if (top < this.autoScrollTop - 4) this.follow = false;
    this.jumpButton.hidden = this.follow;
  }

  scheduleScroll() {
    if (!this.follow || this.scrollPending) return;
    this.scrollPending = true;
    requestAnimationFrame(() => {
      this.scrollPending = false;
      if (!this.follow) return;
      this.pane.scrollTop = this.pane.scrollHeight;
      this.autoScrollTop = this.pane.scrollTop;
    });
  }

  resumeFollowing() {
    this.follow = true;
    this.jumpButton.hidden = true;
    this.scheduleScroll();
  }

  scrollToStep(stepID) {
    const entry = this.steps.get(stepID);
    if (!entry) return;
    entry.element.hidden = false;
    this.follow = false;
    this.jumpButton.hidden = false;
    this.pane.scrollTop = entry.element.offsetTop;
    this.autoScrollTop = this.pane.scrollTop;
    entry.element.classList.remove("flash");
    void entry.element.offsetWidth;
    entry.element.classList.add("flash");
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    this.detach();
  }
}

/**
 * Renders terminal output with its colours: SGR 0 (reset), 1 (bold), 22, 30–37, 39 and
 * 90–97; other escape sequences are dropped. A sequence cut across two chunks is held until
 * the rest arrives.
 */
class AnsiRenderer {
  constructor() {
    this.colour = null;
    this.bold = false;
    this.carry = "";
  }

  append(target, chunk) {
    let text = this.carry + chunk;
    const cut = text.search(/\x1b(\[[0-9;?]*)?$/);
    this.carry = cut >= 0 ? text.slice(cut) : "";
    if (cut >= 0) text = text.slice(0, cut);
    const fragment = document.createDocumentFragment();
    const sequence = /\x1b\[([0-9;?]*)([@-~])|\x1b[@-_]?/g;
    let last = 0;
    for (const match of text.matchAll(sequence)) {
      this.emit(fragment, text.slice(last, match.index));
      if (match[2] === "m") this.apply(match[1]);
      last = match.index + match[0].length;
    }
    this.emit(fragment, text.slice(last));
    target.append(fragment);
  }

  /** Writes out a held partial sequence when its step ends (it was not a sequence after all). */
  flush(target) {
    if (!this.carry) return;
    const rest = this.carry.replace(/\x1b/g, "");
    this.carry = "";
    this.emit(target, rest);
  }

  emit(target, text) {
    if (!text) return;
    if (this.colour === null && !this.bold) {
      target.append(text);
      return;
    }
    const classes = [this.colour !== null ? `fg-${this.colour}` : "", this.bold ? "bold" : ""].filter(Boolean).join(" ");
    target.append(h("span", { class: classes }, text));
  }

  apply(parameters) {
    const codes = parameters === "" ? [0] : parameters.split(";").map((code) => Number(code) || 0);
    for (let index = 0; index < codes.length; index++) {
      const code = codes[index];
      if (code === 0) {
        this.colour = null;
        this.bold = false;
      } else if (code === 1) this.bold = true;
      else if (code === 22) this.bold = false;
      else if (code >= 30 && code <= 37) this.colour = code - 30;
      else if (code >= 90 && code <= 97) this.colour = code - 90 + 8;
      else if (code === 39) this.colour = null;
      else if (code === 38 || code === 48) index += codes[index + 1] === 5 ? 2 : codes[index + 1] === 2 ? 4 : 0;
    }
  }
}

// ---------------------------------------------------------------------------
// Pipelines

function pipelinesView(root, scope) {
  const list = h("div", { class: "pipelines", id: "pipelines" });
  root.append(h("section", { class: "panel" }, h("div", { class: "toolbar" }, h("h1", {}, "Pipelines")), list));
  (async () => {
    try {
      const pipelines = await api("GET", "/pipelines?limit=200");
      if (!scope.active) return;
      if (pipelines.length === 0) {
        list.append(h("p", { class: "empty" }, "No pipelines yet: create one with POST /pipelines or `rapidflow pipeline create`."));
      }
      for (const pipeline of pipelines) list.append(pipelineCard(pipeline));
    } catch (error) {
      showNotice(error.message);
    }
  })();
}

function pipelineCard(pipeline) {
  const run = h("button", { type: "button", class: "primary", "data-run-pipeline": pipeline.id }, "Run");
  run.addEventListener("click", async () => {
    run.disabled = true;
    try {
      const job = await api("POST", `/pipelines/${pipeline.id}/jobs`);
      location.hash = `#/jobs/${job.id}`;
    } catch (error) {
      showNotice(error.message);
      run.disabled = false;
    }
  });
  return h(
    "article",
    { class: "pipeline", "data-pipeline-id": pipeline.id },
    h(
      "header",
      {},
      h("h2", {}, pipeline.name, h("small", { class: "muted" }, ` #${pipeline.id}`)),
      h("div", { class: "actions" }, h("a", { href: `#/jobs?pipeline_id=${pipeline.id}` }, "Jobs"), run),
    ),
    h("pre", { class: "config" }, pipeline.config),
    h("p", { class: "muted small" }, `Updated ${formatTime(pipeline.updated_at)}`),
  );
}

// ---------------------------------------------------------------------------
// Image job form (POST /jobs, the image-build API's fields)

function imageJobView(root) {
  const field = (name, label, attributes = {}, hint = "", wide = false) =>
    h(
      "div",
      { class: wide ? "field wide" : "field" },
      h("label", { for: `field-${name}` }, label),
      h(attributes.rows ? "textarea" : "input", { id: `field-${name}`, name, ...attributes }),
      hint ? h("small", { class: "muted" }, hint) : null,
    );
  const error = h("p", { class: "form-error wide", id: "image-job-error", role: "alert", hidden: true });
  const form = h(
    "form",
    { class: "image-job", id: "image-job-form", novalidate: true },
    field("owner", "Owner", { required: true, placeholder: "team" }),
    field("git_ref", "Git ref", { placeholder: "main" }, "A branch, tag or commit."),
    field("repo_url", "Repository URL", { required: true, placeholder: "https://git.example.com/team/app.git" }, "", true),
    field("dockerfile_path", "Dockerfile path", { placeholder: "Dockerfile" }),
    field("image_tags", "Image tags", { placeholder: "1.0, latest" }, "Separated by commas or spaces."),
    field("registry_url", "Registry URL", { placeholder: "registry.example.com/team/app" }, "The image repository every tag is pushed to.", true),
    field("test_commands", "Test commands", { rows: 2, placeholder: "make test" }, "One command per line, each in a fresh container of the image.", true),
    h(
      "div",
      { class: "field checkbox wide" },
      h("label", {}, h("input", { type: "checkbox", name: "test_entry_point", id: "field-test_entry_point" }), " Also run the image's entry point as a test"),
    ),
    field("git_credentials_path", "Git credentials path", {}, "A file in the service's secrets directory."),
    field("registry_credentials_path", "Registry credentials path", {}, "A file in the service's secrets directory."),
    error,
    h("div", { class: "form-actions wide" }, h("button", { type: "submit", class: "primary" }, "Submit job")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const values = new FormData(form);
    const text = (name) => String(values.get(name) ?? "").trim();
    const request = {
      owner: text("owner"),
      repo_url: text("repo_url"),
      image_tags: text("image_tags").split(/[\s,]+/).filter(Boolean),
      test_commands: text("test_commands").split("\n").map((line) => line.trim()).filter(Boolean),
      test_entry_point: values.get("test_entry_point") === "on",
    };
    for (const name of ["git_ref", "dockerfile_path", "registry_url", "git_credentials_path", "registry_credentials_path"]) {
      if (text(name)) request[name] = text(name);
    }
    const submit = form.querySelector("button[type=submit]");
    submit.disabled = true;
    try {
      const answer = await api("POST", "/jobs", request);
      location.hash = `#/jobs/${answer.job_id}`;
    } catch (failure) {
      error.textContent = failure.message;
      error.hidden = false;
      error.scrollIntoView({ block: "nearest" });
    } finally {
      submit.disabled = false;
    }
  });
  root.append(
    h("section", { class: "panel narrow" }, h("h1", {}, "New image job"), h("p", { class: "muted" }, "Clone, build with the Dockerfile, run tests in the image and push the tags."), form),
  );
}

// ---------------------------------------------------------------------------
// Routing: #/jobs, #/jobs/12, #/jobs/12/steps/34, #/pipelines, #/image-job

let current = null;

function route() {
  const [path, queryString] = (location.hash.replace(/^#/, "") || "/jobs").split("?");
  const query = new URLSearchParams(queryString ?? "");
  const job = path.match(/^\/jobs\/(\d+)(?:\/steps\/(\d+))?$/);
  const key = job ? `job:${job[1]}` : `${path}?${queryString ?? ""}`;
  if (current && current.key === key && current.update) {
    current.update(job?.[2] ? Number(job[2]) : null);
    return;
  }
  current?.scope.dispose();
  clearNotice();
  const root = document.getElementById("view");
  root.replaceChildren();
  const scope = new Scope();
  let section = "jobs";
  let update = null;
  if (job) {
    update = jobView(root, scope, Number(job[1]), job[2] ? Number(job[2]) : null).update;
  } else if (path === "/pipelines") {
    section = "pipelines";
    pipelinesView(root, scope);
  } else if (path === "/image-job") {
    section = "image-job";
    imageJobView(root);
  } else {
    jobsView(root, scope, query);
  }
  for (const link of document.querySelectorAll("[data-nav]")) link.classList.toggle("active", link.dataset.nav === section);
  current = { key, scope, update };
}

document.getElementById("forget-token").addEventListener("click", () => {
  tokenStore.clear();
  location.reload();
});
document.getElementById("forget-token").hidden = !tokenStore.get();
window.addEventListener("hashchange", route);
route();
