// RapidFlow dashboard: the job list, a job's live log, pipelines, the image job form, secrets and webhooks.
// Plain modern JavaScript served by the service itself; it talks only to the API it is served by.
// No libraries: the log viewer, the ANSI colours and the routing are all here.

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

// Why a pending job waits, from its `waiting_for`: short for the list (empty for a plain
// slot), whole words for the job's page.
function waitReason(waitingFor, short) {
  if (waitingFor === "owner_limit") return short ? "owner limit" : "its owner's limit";
  if (waitingFor && waitingFor.startsWith("concurrency_group:")) {
    const group = waitingFor.slice("concurrency_group:".length);
    return short ? `group ${group}` : `its concurrency group ${group}`;
  }
  return short ? "" : "a slot";
}

/** "just now", "12 s ago", "3 min ago", "5 h ago", "2 d ago"; older than a month, the date. */
function formatRelative(timestamp, now = Date.now()) {
  if (!timestamp) return "—";
  const seconds = Math.round((now - Date.parse(timestamp)) / 1000);
  if (seconds < 10) return "just now";
  if (seconds < 60) return `${seconds} s ago`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `${hours} h ago`;
  const days = Math.floor(hours / 24);
  if (days < 31) return `${days} d ago`;
  return new Date(timestamp).toLocaleDateString();
}

/** A time still to come: "in 12 s", "in 3 min", "in 5 h"; "now" once it is due; further off, the date. */
function formatUntil(timestamp, now = Date.now()) {
  if (!timestamp) return "—";
  const seconds = Math.round((Date.parse(timestamp) - now) / 1000);
  if (seconds <= 0) return "now";
  if (seconds < 60) return `in ${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `in ${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `in ${hours} h`;
  return new Date(timestamp).toLocaleString();
}

/** The full local date and time, for a tooltip. */
function fullTime(timestamp) {
  if (!timestamp) return null;
  return new Date(timestamp).toLocaleString(undefined, { dateStyle: "full", timeStyle: "long" });
}

/** A relative time whose tooltip is the full date and time. */
function timeElement(timestamp) {
  if (!timestamp) return "—";
  return h("time", { datetime: timestamp, title: fullTime(timestamp) }, formatRelative(timestamp));
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

/**
 * The token's role (`GET /tokens/current`), kept on <body data-role>: the style sheet hides
 * what the role may not do (`data-needs="run"` or `"admin"`), so a read-only token shows no
 * Cancel, Retry or Run, and only an admin token shows editing and secrets.
 */
async function learnRole() {
  try {
    const me = await api("GET", "/tokens/current");
    document.body.dataset.role = me.role;
    document.getElementById("token-role").textContent = me.role === "admin" ? "" : `${me.name} · ${me.role}${me.owners ? ` · ${me.owners.join(", ")}` : ""}`;
  } catch {
    // Unknown: show everything, and let the service refuse what it refuses.
    delete document.body.dataset.role;
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
      learnRole();
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
// Job list: filters and search run on the service (`GET /jobs?status=&pipeline_id=&branch=&q=`),
// and so does paging (`before=<id>`: the jobs older than that id). Everything the list shows
// is in the address, so a filtered page can be linked and reloaded.

const PAGE_SIZE = 50;
const SEARCH_DELAY_MS = 300;

/**
 * The `before` of each page the reader came through with "Older", so "Newer" can go back one
 * page (the API pages only towards older jobs). Reset whenever the filters change.
 */
let newerPages = [];

/** The list's filters from an address's query; anything malformed is left out. */
function jobFilters(query) {
  const number = (name) => (/^\d+$/.test(query.get(name) ?? "") ? query.get(name) : "");
  return {
    status: STATUSES.includes(query.get("status")) ? query.get("status") : "",
    pipeline_id: number("pipeline_id"),
    branch: (query.get("branch") ?? "").trim(),
    owner: /^[a-z0-9][a-z0-9._-]{0,62}$/.test(query.get("owner") ?? "") ? query.get("owner") : "",
    q: (query.get("q") ?? "").trim(),
    before: number("before"),
  };
}

function jobsAddress(filters) {
  const params = new URLSearchParams();
  for (const name of ["status", "pipeline_id", "branch", "owner", "q", "before"]) if (filters[name]) params.set(name, filters[name]);
  return `#/jobs${params.size ? `?${params}` : ""}`;
}

function jobsView(root, scope, query) {
  const list = new JobList(root, scope, query);
  return { key: "jobs", update: (match) => list.show(match.query) };
}

class JobList {
  constructor(root, scope, query) {
    this.scope = scope;
    this.filters = jobFilters(query);
    this.rows = new Map();
    this.request = 0;
    this.pipelineNames = new Map();
    this.searchTimer = null;
    scope.onDispose(() => clearTimeout(this.searchTimer));

    this.statusFilter = h(
      "select",
      { id: "status-filter", "aria-label": "Filter by status", onchange: () => this.navigate({ status: this.statusFilter.value }) },
      h("option", { value: "" }, "All statuses"),
      STATUSES.map((value) => h("option", { value }, value)),
    );
    this.pipelineFilter = h(
      "select",
      { id: "pipeline-filter", "aria-label": "Filter by pipeline", onchange: () => this.navigate({ pipeline_id: this.pipelineFilter.value }) },
      h("option", { value: "" }, "All pipelines"),
    );
    this.branchFilter = h("input", {
      id: "branch-filter",
      type: "text",
      placeholder: "any branch",
      "aria-label": "Filter by branch (exact name)",
      spellcheck: "false",
      onchange: () => this.navigate({ branch: this.branchFilter.value.trim() }),
    });
    this.ownerFilter = h("input", {
      id: "owner-filter",
      type: "text",
      placeholder: "any owner",
      "aria-label": "Filter by owner",
      spellcheck: "false",
      onchange: () => this.navigate({ owner: this.ownerFilter.value.trim() }),
    });
    this.search = h("input", {
      id: "job-search",
      type: "search",
      placeholder: "Search pipeline, branch or job id",
      "aria-label": "Search jobs",
      spellcheck: "false",
      oninput: () => this.searchTyped(),
      onkeydown: (event) => event.key === "Enter" && this.searchTyped(0),
    });
    this.updated = h("span", { class: "muted", id: "jobs-updated" });
    this.body = h("tbody", { id: "jobs-body" });
    this.empty = h("p", { class: "empty", id: "jobs-empty", hidden: true });
    this.newer = h("button", { type: "button", id: "jobs-newer", onclick: () => this.pageNewer() }, "← Newer");
    this.older = h("button", { type: "button", id: "jobs-older", onclick: () => this.pageOlder() }, "Older →");
    this.pageInfo = h("span", { class: "muted", id: "jobs-page-info" });
    this.clear = h("a", { href: "#/jobs", id: "jobs-clear-filters", hidden: true, onclick: () => (newerPages = []) }, "Clear filters");
    root.append(
      h(
        "section",
        { class: "panel" },
        h("div", { class: "toolbar" }, h("h1", {}, "Jobs"), this.search, this.updated),
        h(
          "div",
          { class: "filters" },
          h("label", { class: "filter" }, "Status ", this.statusFilter),
          h("label", { class: "filter" }, "Pipeline ", this.pipelineFilter),
          h("label", { class: "filter" }, "Branch ", this.branchFilter),
          h("label", { class: "filter" }, "Owner ", this.ownerFilter),
          this.clear,
        ),
        h(
          "table",
          { class: "jobs" },
          h("thead", {}, h("tr", {}, ["Job", "Pipeline / repository", "Branch", "Owner", "Kind", "Status", "Duration", "Created"].map((title) => h("th", {}, title)))),
          this.body,
        ),
        this.empty,
        h("div", { class: "pager" }, this.newer, this.pageInfo, this.older),
      ),
    );
    this.syncControls();
    this.loadPipelines();
    scope.every(POLL_MS, () => this.refresh());
  }

  /** Applies the filters of a new address (a same-page navigation). */
  show(query) {
    const filters = jobFilters(query);
    if (JSON.stringify(filters) === JSON.stringify(this.filters)) return;
    this.filters = filters;
    this.syncControls();
    this.body.replaceChildren();
    this.rows.clear();
    this.empty.hidden = true;
    this.pageInfo.textContent = "Loading…";
    this.refresh().catch((error) => showNotice(error.message));
  }

  syncControls() {
    const filters = this.filters;
    this.statusFilter.value = filters.status;
    this.ensurePipelineOption(filters.pipeline_id);
    this.pipelineFilter.value = filters.pipeline_id;
    if (document.activeElement !== this.branchFilter) this.branchFilter.value = filters.branch;
    if (document.activeElement !== this.ownerFilter) this.ownerFilter.value = filters.owner;
    if (document.activeElement !== this.search) this.search.value = filters.q;
    this.clear.hidden = !(filters.status || filters.pipeline_id || filters.branch || filters.owner || filters.q || filters.before);
  }

  /** A new address for changed filters; any filter change starts again at the newest page. */
  navigate(change) {
    newerPages = [];
    location.hash = jobsAddress({ ...this.filters, before: "", ...change });
  }

  /** Typing searches after a pause, replacing the address rather than adding one per key. */
  searchTyped(delay = SEARCH_DELAY_MS) {
    clearTimeout(this.searchTimer);
    this.searchTimer = setTimeout(() => {
      const q = this.search.value.trim();
      if (q === this.filters.q) return;
      newerPages = [];
      const address = jobsAddress({ ...this.filters, q, before: "" });
      history.replaceState(null, "", address);
      this.show(new URLSearchParams(address.split("?")[1] ?? ""));
    }, delay);
  }

  pageOlder() {
    const last = this.lastShownID;
    if (!last) return;
    newerPages.push(this.filters.before);
    location.hash = jobsAddress({ ...this.filters, before: String(last) });
  }

  pageNewer() {
    location.hash = jobsAddress({ ...this.filters, before: newerPages.pop() ?? "" });
  }

  async loadPipelines() {
    try {
      const pipelines = await api("GET", "/pipelines?limit=500");
      if (!this.scope.active) return;
      for (const pipeline of pipelines) this.pipelineNames.set(String(pipeline.id), pipeline.name);
      const selected = this.filters.pipeline_id;
      this.pipelineFilter.replaceChildren(
        h("option", { value: "" }, "All pipelines"),
        ...[...this.pipelineNames].map(([id, name]) => h("option", { value: id }, `${name} (#${id})`)),
      );
      this.ensurePipelineOption(selected);
      this.pipelineFilter.value = selected;
    } catch (error) {
      showNotice(error.message);
    }
  }

  /** A pipeline named in the address but not (or not yet) in the list still shows as selected. */
  ensurePipelineOption(id) {
    if (!id || [...this.pipelineFilter.options].some((option) => option.value === id)) return;
    this.pipelineFilter.append(h("option", { value: id }, `pipeline #${id}`));
  }

  /** One page from the service; one more than shown is asked for, to know whether older jobs exist. */
  async refresh() {
    const filters = this.filters;
    const ticket = ++this.request;
    const params = new URLSearchParams({ limit: String(PAGE_SIZE + 1) });
    for (const name of ["status", "pipeline_id", "branch", "owner", "q", "before"]) if (filters[name]) params.set(name, filters[name]);
    const answer = await api("GET", `/jobs?${params}`);
    // A later request (the filters changed meanwhile) wins over an earlier one answered late.
    if (!this.scope.active || ticket !== this.request) return;
    const jobs = answer.slice(0, PAGE_SIZE);
    const now = Date.now();
    const seen = new Set();
    jobs.forEach((job, index) => {
      seen.add(job.id);
      let row = this.rows.get(job.id);
      if (!row) {
        row = jobRow(job);
        this.rows.set(job.id, row);
      }
      updateJobRow(row, job, now);
      if (this.body.children[index] !== row) this.body.insertBefore(row, this.body.children[index] ?? null);
    });
    for (const [id, row] of this.rows) {
      if (!seen.has(id)) {
        row.remove();
        this.rows.delete(id);
      }
    }
    this.lastShownID = jobs.at(-1)?.id ?? null;
    this.older.disabled = answer.length <= PAGE_SIZE;
    this.newer.disabled = !filters.before;
    this.pageInfo.textContent = jobs.length
      ? `${filters.before ? "" : "Newest: "}jobs #${jobs[0].id} – #${jobs.at(-1).id}`
      : "";
    this.empty.hidden = jobs.length > 0;
    this.empty.textContent = this.emptyText();
    this.updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
  }

  emptyText() {
    const { status, pipeline_id: pipelineID, branch, q, before } = this.filters;
    if (before) return "No older jobs.";
    if (!(status || pipelineID || branch || q)) return "No jobs yet: run a pipeline or submit an image job.";
    const parts = [
      status ? `status ${status}` : null,
      pipelineID ? `pipeline ${this.pipelineNames.get(pipelineID) ?? `#${pipelineID}`}` : null,
      branch ? `branch ${branch}` : null,
      q ? `“${q}”` : null,
    ].filter(Boolean);
    return `No jobs match ${parts.join(", ")}.`;
  }
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
    h("td", { class: "branch" }),
    h("td", { class: "owner" }),
    h("td", { class: "kind" }),
    h("td", { class: "status" }),
    h("td", { class: "duration" }),
    h("td", { class: "created muted" }, h("time")),
  );
  return row;
}

function updateJobRow(row, job, now = Date.now()) {
  const set = (selector, text) => {
    const cell = row.querySelector(selector);
    if (cell.textContent !== text) cell.textContent = text;
  };
  set(".name", jobName(job));
  set(".branch", job.branch ?? "");
  set(".owner", job.owner ?? "");
  set(".kind", job.kind);
  set(".duration", formatDuration(elapsed(job.started_at, job.finished_at)));
  const created = row.querySelector(".created time");
  if (created.dateTime !== job.created_at) {
    created.dateTime = job.created_at;
    created.title = fullTime(job.created_at);
  }
  const relative = formatRelative(job.created_at, now);
  if (created.textContent !== relative) created.textContent = relative;
  const statusCell = row.querySelector(".status");
  // A pending job says where it stands in the queue, and why it waits.
  const reason = waitReason(job.waiting_for, true);
  const place = job.queue_position ? `#${job.queue_position}${reason ? ` · ${reason}` : ""}` : "";
  if (statusCell.textContent !== job.status + place) {
    statusCell.replaceChildren(badge(job.status), ...(place ? [h("small", { class: "muted queue-place", title: "place in the queue" }, place)] : []));
  }
  row.dataset.status = job.status;
}
// ---------------------------------------------------------------------------
// Job page: header, phase cards, steps, and the live log.

const PHASES = ["build", "test", "publish"];

/** A step's first command line, or its type and name when it has no script of its own. */
function stepTitle(step) {
  const command = (step.content ?? "").split("\n")[0].trim();
  return step.type === "bash" && command ? command : [step.type, step.name].filter(Boolean).join(" · ");
}

function stepDuration(step) {
  return formatDuration(step.duration_seconds ?? (step.started_at ? elapsed(step.started_at, step.finished_at) : null));
}

/**
 * A phase's own outcome from its steps' statuses: a failed test phase is "failed" even when
 * the build before it passed, and a phase the failure stopped is "skipped".
 */
function phaseOutcome(steps) {
  if (steps.length === 0) return "none";
  const statuses = new Set(steps.map((step) => step.status));
  if (statuses.has("running")) return "running";
  if (statuses.has("failed")) return "failed";
  if (statuses.has("cancelled")) return "cancelled";
  if (statuses.has("pending")) return statuses.has("success") ? "running" : "pending";
  if (statuses.has("success")) return "success";
  return "skipped";
}

const PHASE_LABELS = {
  none: "no steps",
  pending: "waiting",
  running: "running",
  success: "passed",
  failed: "failed",
  cancelled: "cancelled",
  skipped: "skipped",
};

/** `#/jobs/12`, `#/jobs/12/steps/34` (a step) or `#/jobs/12/L345` (a line of the log). */
function jobView(root, scope, match) {
  const page = new JobPage(root, scope, match.jobID);
  page.start(match);
  return { key: `job:${match.jobID}`, update: (next) => page.focus(next) };
}

class JobPage {
  constructor(root, scope, jobID) {
    this.root = root;
    this.scope = scope;
    this.jobID = jobID;
    this.job = null;
    this.stepsInfo = [];
    this.focusedStepID = null;
    this.shownSteps = null;
    this.cancelling = false;
    this.title = h("h1", {}, `Job #${jobID}`);
    this.statusBadge = h("span", { id: "job-status" });
    this.cancelButton = h("button", { type: "button", id: "cancel-job", class: "danger", "data-needs": "run", onclick: () => this.cancel() }, "Cancel");
    this.retryButton = h("button", { type: "button", id: "retry-job", "data-needs": "run", onclick: () => this.retry() }, "Retry");
    this.meta = h("dl", { class: "meta" });
    this.phases = h("div", { class: "phases", id: "phases" });
    this.stepList = h("ol", { class: "step-list", id: "step-list" });
    // What the job kept (its config's `artifacts:`), shown once the job has ended.
    this.artifactList = h("ul", { class: "artifact-list", id: "artifact-list" });
    this.artifactPanel = h("div", { class: "artifacts", id: "artifacts", hidden: true }, h("h2", {}, "Artifacts"), this.artifactList);
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
        h("aside", { class: "panel steps" }, h("h2", {}, "Steps"), this.stepList, this.artifactPanel),
        this.log.element,
      ),
    );
    scope.onDispose(() => this.log.stop());
  }

  /**
   * The job and its steps' statuses come first (small answers), so the log starts at once; the
   * steps' commands follow from the details, which carry every step's output too and so can be
   * slow for a long log.
   */
  async start(match) {
    try {
      const [job, status] = await Promise.all([api("GET", `/jobs/${this.jobID}`), api("GET", `/jobs/${this.jobID}/status`)]);
      if (!this.scope.active) return;
      this.stepsInfo = status.steps;
      this.renderJob(job);
      this.renderPhases(status);
      this.renderSteps();
      this.log.prepare(this.stepsInfo);
      this.log.onJobFinished = () => this.refresh().catch((error) => showNotice(error.message));
      await this.log.preload(this.stepsInfo);
      if (!this.scope.active) return;
      this.log.start();
      // After the finished steps' output is in, so a step's place in the log is where it stays.
      this.focus(match);
    } catch (error) {
      if (error.status === 404) notFoundView(this.root, `Job ${this.jobID} does not exist.`);
      else showNotice(error.message);
      return;
    }
    this.loadCommands();
    if (FINAL_STATUSES.has(this.job.status)) this.loadArtifacts();
    this.scope.every(POLL_MS, async () => {
      await this.refresh();
      const running = !FINAL_STATUSES.has(this.job.status);
      if (!running) this.loadArtifacts();
      return running;
    });
  }

  /** The job's artifacts with their sizes; each downloads (with the token when there is one). */
  async loadArtifacts() {
    try {
      const list = await api("GET", `/jobs/${this.jobID}/artifacts`);
      if (!this.scope.active || list.artifacts.length === 0) return;
      this.artifactList.replaceChildren(
        ...list.artifacts.map((artifact) =>
          h(
            "li",
            { "data-path": artifact.path },
            rawLink(artifact.url, artifact.path.split("/").pop(), artifact.path, { class: "artifact-link", title: `sha256 ${artifact.sha256}` }),
            h("span", { class: "muted artifact-size" }, ` ${formatBytes(artifact.size_bytes)}`),
          ),
        ),
        h("li", {}, rawLink(list.archive_url, `job-${this.jobID}-artifacts.tar.gz`, "All, as .tar.gz", { class: "artifact-archive" })),
      );
      this.artifactPanel.hidden = false;
    } catch (error) {
      showNotice(error.message);
    }
  }

  async loadCommands() {
    try {
      const details = await api("GET", `/jobs/${this.jobID}/details`);
      if (!this.scope.active) return;
      const byID = new Map(details.steps.map((step) => [step.id, step]));
      this.stepsInfo = this.stepsInfo.map((step) => {
        const detail = byID.get(step.step_id);
        return detail ? { ...step, content: detail.content, name: detail.name, started_at: detail.started_at, finished_at: detail.finished_at } : step;
      });
      this.shownSteps = null;
      this.renderSteps();
      this.log.updateSteps(this.stepsInfo);
    } catch (error) {
      showNotice(error.message);
    }
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
      job.event ? ["Event", job.event] : null,
      job.pipeline_id ? ["Pipeline", h("a", { href: `#/jobs?pipeline_id=${job.pipeline_id}` }, `${job.pipeline_name ?? ""} (#${job.pipeline_id})`)] : null,
      job.repo_name ? ["Repository", job.repo_name] : null,
      job.branch ? ["Branch", job.branch] : null,
      // The commit a forge's push, tag or pull request named (none for API triggers).
      job.commit_sha ? ["Commit", h("code", { class: "commit-sha", title: job.commit_sha }, job.commit_sha.slice(0, 12))] : null,
      job.commit_ref ? ["Ref", job.commit_ref] : null,
      job.commit_message ? ["Message", h("span", { title: job.commit_message }, job.commit_message.trim().split("\n")[0].trim())] : null,
      job.commit_author ? ["Author", job.commit_author] : null,
      job.owner ? ["Owner", job.owner] : null,
      job.priority && job.priority !== "normal" ? ["Priority", job.priority] : null,
      job.queue_position ? ["Queue", `#${job.queue_position}, waiting for ${waitReason(job.waiting_for, false)}`] : null,
      job.concurrency_group ? ["Concurrency group", job.concurrency_group] : null,
      job.retry_of ? ["Retry of", h("a", { href: `#/jobs/${job.retry_of}` }, `#${job.retry_of}`)] : null,
      ["Created", timeElement(job.created_at)],
      ["Started", timeElement(job.started_at)],
      ["Finished", timeElement(job.finished_at)],
      ["Duration", formatDuration(elapsed(job.started_at, job.finished_at))],
    ].filter(Boolean);
    this.meta.replaceChildren(...entries.map(([term, value]) => h("div", {}, h("dt", {}, term), h("dd", {}, value))));
  }

  renderPhases(status) {
    const stamps = status.phase_timestamps;
    const boxes = PHASES.map((phase) => {
      const start = stamps[`${phase}_start`];
      const end = stamps[`${phase}_end`];
      const outcome = phaseOutcome(status.steps.filter((step) => step.phase === phase));
      const seconds = status.metrics[`${phase}_duration_seconds`] ?? (start ? elapsed(start, null) : null);
      return h(
        "div",
        { class: `phase phase-${outcome}`, "data-phase": phase, "data-outcome": outcome },
        h("span", { class: "phase-name" }, phase, h("span", { class: "phase-outcome" }, PHASE_LABELS[outcome])),
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

  /** Scrolls the log to what the address names: a step, a line, or nothing. */
  focus(match) {
    if (match.line) {
      this.log.focusLine(match.line);
    } else if (match.stepID) {
      this.focusedStepID = match.stepID;
      this.log.scrollToStep(match.stepID);
    }
    for (const item of this.stepList.children) item.classList.toggle("focused", Number(item.dataset.stepId) === this.focusedStepID);
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

const FINAL_STEP_STATUSES = new Set(["success", "failed", "cancelled", "skipped"]);

/** A plain-text answer's bytes, exactly as sent. */
async function fetchBytes(path) {
  const response = await fetch(path, { headers: authorizationHeaders() });
  if (!response.ok) throw new ApiError(response.status, null, `the service answered HTTP ${response.status} for ${path}`);
  return new Uint8Array(await response.arrayBuffer());
}

/** The bytes a base64 string encodes. */
function base64Bytes(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let index = 0; index < binary.length; index += 1) bytes[index] = binary.charCodeAt(index);
  return bytes;
}

/**
 * A raw log link: a plain link while the service needs no token; with a token the page fetches
 * the text itself (a link cannot carry the Authorization header) and saves it.
 */
function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

function rawLink(path, fileName, label, attributes = {}) {
  const link = h("a", { href: path, download: fileName, ...attributes }, label);
  link.addEventListener("click", async (event) => {
    const token = tokenStore.get();
    if (!token) return;
    event.preventDefault();
    try {
      const response = await fetch(path, { headers: authorizationHeaders(token) });
      if (!response.ok) throw new Error(`the service answered HTTP ${response.status} for ${path}`);
      const url = URL.createObjectURL(await response.blob());
      const save = h("a", { href: url, download: fileName });
      document.body.append(save);
      save.click();
      save.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (error) {
      showNotice(error.message);
    }
  });
  return link;
}
// ---------------------------------------------------------------------------
// The log viewer.
//
// A job's log can have hundreds of thousands of lines, so the page keeps them as strings and
// draws only the rows on screen: every row has a fixed height, a spacer element is as tall as
// all of them, and the rows in (and a little around) the visible window are rebuilt when the
// pane scrolls or new output arrives. Colours are worked out per line when a line is drawn.

const LINE_HEIGHT = 20; // px: `.log-line` in style.css
const HEAD_HEIGHT = 32; // px: `.log-step-head` in style.css
const OVERSCAN_PX = 600; // rows drawn beyond each edge of the pane, so a quick scroll shows no gap
const COMPACT_AT = 4096; // a line longer than this with `\r` in it is stored as it looks

/** One step's output split in lines, as printed (escapes and `\r` kept), with the colours each starts with. */
class StepLog {
  constructor(stepID, info) {
    this.stepID = stepID;
    this.info = { ...info };
    this.orderNum = info.order_num ?? Infinity;
    this.status = info.status ?? "pending";
    this.lines = [];
    this.starts = [];
    // The line still being printed, and the colours at its start.
    this.tail = "";
    this.state = PLAIN;
    this.plainCache = new Map();
    // `received` counts bytes (as the events' offsets do); one streaming decoder turns them
    // into text, so a character split across events or at a resume comes out whole.
    this.received = 0;
    this.decoder = new TextDecoder();
    this.complete = false;
    this.forceShown = false;
  }

  get lineCount() {
    return this.lines.length + (this.tail ? 1 : 0);
  }

  /** A step that has not started has no place in the log yet (unless a link points at it). */
  get shown() {
    return this.forceShown || this.status !== "pending" || this.lineCount > 0;
  }

  append(text) {
    if (!text) return;
    const parts = (this.tail + text).split("\n");
    this.tail = parts.pop();
    for (let line of parts) {
      if (line.endsWith("\r")) line = line.slice(0, -1); // CRLF ends a line; it does not overwrite it
      if (line.length > COMPACT_AT && line.includes("\r")) line = compactLine(line, this.state);
      this.lines.push(line);
      this.starts.push(this.state);
      if (line.includes("\x1b")) this.state = parseLine(line, this.state).end;
    }
    // A progress bar redrawn with `\r` for minutes is one ever-growing line: keep what it shows.
    if (this.tail.length > COMPACT_AT) {
      const cut = this.tail.lastIndexOf("\r");
      if (cut > 0) this.tail = compactLine(this.tail.slice(0, cut + 1), this.state) + this.tail.slice(cut + 1);
    }
  }

  raw(index) {
    return index < this.lines.length ? this.lines[index] : this.tail;
  }

  start(index) {
    return index < this.lines.length ? this.starts[index] : this.state;
  }

  /** What a line shows, without colours: for search and copying. */
  plain(index) {
    const raw = this.raw(index);
    if (!SPECIAL.test(raw)) return raw;
    if (index < this.lines.length) {
      let text = this.plainCache.get(index);
      if (text === undefined) {
        text = plainOf(raw, this.start(index));
        this.plainCache.set(index, text);
      }
      return text;
    }
    return plainOf(raw, this.state);
  }
}

/**
 * The log pane: every step's output, fed by the WebSocket of JSON events.
 *
 * The socket can drop at any time. Each step remembers how many bytes of its output are on
 * the page, so a reconnect (which replays from the start of the first unfinished step) shows
 * nothing twice; `since` skips the steps that were already complete.
 *
 * Lines are numbered across the whole job, in step order (steps run one after the other, so a
 * number never changes); `#/jobs/12/L345` links to one.
 */
class LogView {
  constructor(jobID) {
    this.jobID = jobID;
    this.steps = new Map();
    this.ordered = [];
    this.finished = false;
    this.stopped = false;
    this.socket = null;
    this.connections = 0;
    this.retryDelay = 500;
    this.reconnectTimer = null;
    this.follow = true;
    this.autoScrollTop = 0;
    this.renderPending = false;
    this.layoutCache = null;
    this.rendered = new Map();
    this.targetLine = null;
    this.pendingLine = null;
    this.flashStepID = null;
    this.flashTimer = null;
    this.query = "";
    this.matches = [];
    this.matchIndex = -1;
    this.searchTimer = null;
    this.searchJump = false;
    this.onJobFinished = () => {};

    this.state = h("span", { id: "log-state", class: "log-state" }, "connecting…");
    this.jumpButton = h("button", { type: "button", id: "jump-to-end", class: "small", hidden: true, onclick: () => this.resumeFollowing() }, "↓ Follow");
    this.searchInput = h("input", {
      id: "log-search",
      type: "search",
      placeholder: "Search log",
      "aria-label": "Search the log",
      spellcheck: "false",
      oninput: () => this.searchTyped(),
      onkeydown: (event) => this.searchKey(event),
    });
    this.searchCount = h("span", { id: "log-search-count", class: "search-count", "aria-live": "polite" });
    this.rows = h("div", { class: "log-rows", id: "log-rows" });
    this.pane = h("div", { id: "log", class: "log", tabindex: "0", "aria-label": "Job log" }, this.rows);
    this.pane.addEventListener("scroll", () => this.onScroll());
    // The viewer itself, for reading the whole text (only the visible rows are in the page).
    this.pane.logView = this;
    this.element = h(
      "section",
      { class: "panel log-panel" },
      h(
        "div",
        { class: "log-toolbar" },
        h("h2", {}, "Log"),
        this.state,
        h(
          "div",
          { class: "log-search" },
          this.searchInput,
          this.searchCount,
          h("button", { type: "button", id: "log-search-prev", class: "small", title: "Previous match (Shift+Enter)", onclick: () => this.searchStep(-1) }, "↑"),
          h("button", { type: "button", id: "log-search-next", class: "small", title: "Next match (Enter)", onclick: () => this.searchStep(1) }, "↓"),
        ),
        rawLink(`/jobs/${jobID}/logs/raw`, `job-${jobID}.log`, "Raw", { id: "log-raw", class: "raw-link", title: "The whole log as plain text" }),
        this.jumpButton,
      ),
      this.pane,
    );
  }

  /** Every step in order, so output lands in place whichever step it belongs to. */
  prepare(steps) {
    for (const step of steps) this.section(step.step_id, step);
  }

  updateSteps(steps) {
    for (const step of steps) {
      const entry = this.steps.get(step.step_id);
      if (!entry) continue;
      Object.assign(entry.info, step);
      if (entry.status !== step.status) this.setStepStatus(entry, step.status);
    }
    this.changed();
  }

  section(stepID, info = {}) {
    let entry = this.steps.get(stepID);
    if (entry) return entry;
    entry = new StepLog(stepID, info);
    this.steps.set(stepID, entry);
    const after = this.ordered.findIndex((other) => other.orderNum > entry.orderNum);
    this.ordered.splice(after < 0 ? this.ordered.length : after, 0, entry);
    this.changed();
    return entry;
  }

  setStepStatus(entry, status) {
    entry.status = status;
    this.changed();
  }

  // -- The stream -----------------------------------------------------------

  /**
   * The steps that had finished when the page opened come as their raw bytes, one plain-text
   * answer each (far lighter than the stream's JSON events for a long log); the stream then
   * starts after them. A step whose bytes cannot be fetched is left to the stream.
   */
  async preload(steps) {
    const finished = [];
    for (const step of [...steps].sort((a, b) => a.order_num - b.order_num)) {
      if (!FINAL_STEP_STATUSES.has(step.status)) break;
      finished.push(step.step_id);
    }
    const outputs = await Promise.all(finished.map((stepID) => fetchBytes(`/steps/${stepID}/logs/raw`).catch(() => null)));
    for (const [index, stepID] of finished.entries()) {
      const entry = this.steps.get(stepID);
      const bytes = outputs[index];
      if (!bytes || !entry || entry.received > 0) break;
      entry.received = bytes.length;
      entry.append(entry.decoder.decode(bytes));
      entry.complete = true;
    }
    this.changed();
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
    for (const entry of this.ordered) {
      if (!entry.complete) break;
      through = entry.stepID;
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
        entry.append(entry.decoder.decode());
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
    this.changed();
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
    entry.append(entry.decoder.decode(fresh, { stream: true }));
    if (this.query) this.scheduleSearch(500);
  }

  setState(text, kind) {
    this.state.textContent = text;
    this.state.dataset.state = kind;
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.searchTimer);
    clearTimeout(this.flashTimer);
    this.detach();
  }

  // -- Layout and drawing ---------------------------------------------------

  /** Something shown changed: the next frame draws it. */
  changed() {
    this.layoutCache = null;
    this.scheduleRender();
  }

  scheduleRender() {
    if (this.renderPending) return;
    this.renderPending = true;
    requestAnimationFrame(() => {
      this.renderPending = false;
      this.render();
    });
  }

  /** Where each shown step starts (in pixels and in line numbers), and the totals. */
  layout() {
    if (this.layoutCache) return this.layoutCache;
    const blocks = [];
    let top = 0;
    let lines = 0;
    for (const entry of this.ordered) {
      if (!entry.shown) continue;
      const count = entry.lineCount;
      blocks.push({ entry, top, base: lines, count });
      top += HEAD_HEIGHT + count * LINE_HEIGHT;
      lines += count;
    }
    this.layoutCache = { blocks, height: top, lines };
    return this.layoutCache;
  }

  /** The block holding line `number` (1-based, across the job) and the line's index in its step. */
  locate(number) {
    for (const block of this.layout().blocks) {
      if (number > block.base && number <= block.base + block.count) return { block, index: number - block.base - 1 };
    }
    return null;
  }

  get totalLines() {
    return this.layout().lines;
  }

  render() {
    const layout = this.layout();
    const height = `${layout.height}px`;
    if (this.rows.style.height !== height) this.rows.style.height = height;
    const gutter = `${String(Math.max(layout.lines, 1)).length + 1}ch`;
    if (this.gutter !== gutter) {
      this.gutter = gutter;
      this.pane.style.setProperty("--gutter", gutter);
    }
    if (this.pendingLine !== null && this.pendingLine <= layout.lines) {
      const line = this.pendingLine;
      this.pendingLine = null;
      this.scrollToLine(line);
    } else if (this.follow) {
      this.pane.scrollTop = this.pane.scrollHeight;
      this.autoScrollTop = this.pane.scrollTop;
    }

    const offset = this.rows.offsetTop;
    const viewTop = this.pane.scrollTop - offset - OVERSCAN_PX;
    const viewBottom = this.pane.scrollTop - offset + this.pane.clientHeight + OVERSCAN_PX;
    const current = this.matchIndex >= 0 ? this.matches[this.matchIndex] : null;
    const wanted = [];
    for (const block of layout.blocks) {
      const { entry, top, base, count } = block;
      if (top + HEAD_HEIGHT + count * LINE_HEIGHT < viewTop) continue;
      if (top > viewBottom) break;
      if (top + HEAD_HEIGHT > viewTop) {
        const signature = JSON.stringify([entry.status, entry.info.content, entry.info.type, entry.info.phase, this.flashStepID === entry.stepID]);
        wanted.push({ key: `H${entry.stepID}`, top, raw: signature, flags: "", build: () => this.stepHead(entry) });
      }
      const first = Math.max(0, Math.floor((viewTop - top - HEAD_HEIGHT) / LINE_HEIGHT));
      const last = Math.min(count - 1, Math.floor((viewBottom - top - HEAD_HEIGHT) / LINE_HEIGHT));
      for (let index = first; index <= last; index++) {
        const number = base + index + 1;
        const raw = entry.raw(index);
        const flags = `${number === this.targetLine ? "t" : ""}${number === current ? "c" : ""}|${this.query}`;
        wanted.push({
          key: `L${number}`,
          top: top + HEAD_HEIGHT + index * LINE_HEIGHT,
          raw,
          flags,
          build: () => this.lineRow(number, raw, entry.start(index), number === current),
        });
      }
    }

    // Rows still on screen are kept (and stay selectable); the page keeps them in line order.
    const kept = new Map();
    let previous = null;
    for (const row of wanted) {
      let drawn = this.rendered.get(row.key);
      if (drawn && (drawn.raw !== row.raw || drawn.flags !== row.flags)) {
        drawn.element.remove();
        drawn = null;
      }
      if (!drawn) drawn = { element: row.build(), raw: row.raw, flags: row.flags, top: null };
      if (drawn.top !== row.top) {
        drawn.element.style.top = `${row.top}px`;
        drawn.top = row.top;
      }
      const expected = previous ? previous.nextSibling : this.rows.firstChild;
      if (expected !== drawn.element) this.rows.insertBefore(drawn.element, expected);
      previous = drawn.element;
      kept.set(row.key, drawn);
    }
    for (const [key, drawn] of this.rendered) if (!kept.has(key)) drawn.element.remove();
    this.rendered = kept;
  }

  stepHead(entry) {
    const info = entry.info;
    const command = (info.content ?? "").split("\n")[0];
    return h(
      "div",
      { class: `log-step-head${this.flashStepID === entry.stepID ? " flash" : ""}`, id: `log-step-${entry.stepID}`, "data-step-id": entry.stepID },
      h("a", { class: "anchor", href: `#/jobs/${this.jobID}/steps/${entry.stepID}`, title: "Link to this step" }, "#"),
      h("span", {}, `Step ${info.order_num ?? "?"} (${info.type ?? "step"})`),
      info.phase ? h("span", { class: "muted" }, info.phase) : null,
      command ? h("code", { class: "step-command", title: info.content }, command) : h("span", { class: "step-command" }),
      rawLink(`/steps/${entry.stepID}/logs/raw`, `step-${entry.stepID}.log`, "raw", { class: "step-raw", title: "This step's output as plain text" }),
      h("span", { class: "step-status" }, badge(entry.status)),
    );
  }

  lineRow(number, raw, start, isCurrent) {
    const classes = ["log-line"];
    if (number === this.targetLine) classes.push("target");
    if (isCurrent) classes.push("current-match");
    const text = h("span", { class: "log-text" });
    const { segments } = parseLine(raw, start);
    appendSegments(text, segments, this.query ? matchRanges(segments, this.query) : []);
    return h(
      "div",
      { class: classes.join(" "), "data-line": number },
      h("a", { class: "ln", href: `#/jobs/${this.jobID}/L${number}`, "data-n": number, "aria-label": `Line ${number}` }),
      text,
    );
  }

  // -- Scrolling ------------------------------------------------------------

  /** Following stops when the reader moves up from where the pane was put, and resumes at the bottom. */
  onScroll() {
    const top = this.pane.scrollTop;
    const fromBottom = this.pane.scrollHeight - this.pane.clientHeight - top;
    if (fromBottom <= 24) this.follow = true;
    else if (top < this.autoScrollTop - 4) this.follow = false;
    this.jumpButton.hidden = this.follow;
    this.scheduleRender();
  }

  resumeFollowing() {
    this.follow = true;
    this.jumpButton.hidden = true;
    this.scheduleRender();
  }

  stopFollowing() {
    this.follow = false;
    this.jumpButton.hidden = false;
  }

  scrollToStep(stepID) {
    const entry = this.steps.get(stepID);
    if (!entry) return;
    entry.forceShown = true;
    this.layoutCache = null;
    this.stopFollowing();
    const block = this.layout().blocks.find((candidate) => candidate.entry === entry);
    this.rows.style.height = `${this.layout().height}px`;
    this.pane.scrollTop = this.rows.offsetTop + block.top;
    this.autoScrollTop = this.pane.scrollTop;
    this.flashStepID = stepID;
    clearTimeout(this.flashTimer);
    this.flashTimer = setTimeout(() => {
      this.flashStepID = null;
      this.scheduleRender();
    }, 1200);
    this.render();
  }

  /** Marks line `number` and scrolls to it, now or once the stream has brought it. */
  focusLine(number) {
    this.targetLine = number;
    this.stopFollowing();
    if (number <= this.totalLines) {
      this.pendingLine = null;
      this.scrollToLine(number);
    } else {
      this.pendingLine = number;
    }
    this.render();
  }

  /** Puts line `number` a third of the way down the pane. */
  scrollToLine(number) {
    const place = this.locate(number);
    if (!place) return;
    const layout = this.layout();
    this.rows.style.height = `${layout.height}px`;
    const top = this.rows.offsetTop + place.block.top + HEAD_HEIGHT + place.index * LINE_HEIGHT;
    this.pane.scrollTop = Math.max(0, top - Math.floor(this.pane.clientHeight / 3));
    this.autoScrollTop = this.pane.scrollTop;
  }

  // -- Search ---------------------------------------------------------------

  searchTyped() {
    this.scheduleSearch(200, true);
  }

  searchKey(event) {
    if (event.key === "Enter") {
      event.preventDefault();
      // A search still waiting for the pause after typing runs now, at its first match.
      if (this.searchTimer !== null && this.searchJump) this.runSearch(true);
      else this.searchStep(event.shiftKey ? -1 : 1);
    } else if (event.key === "Escape") {
      this.searchInput.value = "";
      this.runSearch(false);
    }
  }

  /** A search after `delay`; one the reader typed still jumps to its first match when new output reschedules it. */
  scheduleSearch(delay, jump = false) {
    clearTimeout(this.searchTimer);
    this.searchJump = this.searchJump || jump;
    this.searchTimer = setTimeout(() => this.runSearch(this.searchJump), delay);
  }

  /** Finds every line holding the text (case-insensitive); `jump` goes to the first match. */
  runSearch(jump) {
    clearTimeout(this.searchTimer);
    this.searchTimer = null;
    this.searchJump = false;
    const query = this.searchInput.value.toLowerCase();
    const current = this.matchIndex >= 0 ? this.matches[this.matchIndex] : null;
    const matches = [];
    if (query) {
      for (const { entry, base, count } of this.layout().blocks) {
        for (let index = 0; index < count; index++) {
          if (entry.plain(index).toLowerCase().includes(query)) matches.push(base + index + 1);
        }
      }
    }
    this.query = query;
    this.matches = matches;
    this.matchIndex = current === null || query !== this.lastQuery ? -1 : matches.indexOf(current);
    this.lastQuery = query;
    if (jump && matches.length) this.searchStep(1);
    else {
      this.showSearchCount();
      this.scheduleRender();
    }
  }

  searchStep(direction) {
    if (this.searchTimer !== null) this.runSearch(false);
    const count = this.matches.length;
    if (count === 0) return;
    this.matchIndex = this.matchIndex < 0 ? (direction > 0 ? 0 : count - 1) : (this.matchIndex + direction + count) % count;
    this.stopFollowing();
    this.scrollToLine(this.matches[this.matchIndex]);
    this.showSearchCount();
    this.render();
  }

  showSearchCount() {
    const count = this.matches.length;
    if (!this.query) this.searchCount.textContent = "";
    else if (count === 0) this.searchCount.textContent = "no matches";
    else this.searchCount.textContent = this.matchIndex >= 0 ? `${this.matchIndex + 1} of ${count}` : `${count} matches`;
  }

  /** The whole log as plain text (what the steps printed, without escapes or overwritten text). */
  text() {
    const parts = [];
    for (const { entry, count } of this.layout().blocks) {
      for (let index = 0; index < entry.lines.length; index++) parts.push(entry.plain(index), "\n");
      if (count > entry.lines.length) parts.push(entry.plain(entry.lines.length));
    }
    return parts.join("");
  }
}

// ---------------------------------------------------------------------------
// ANSI escapes: SGR colours and styles (16 colours, 256 colours `38;5;N` / `48;5;N`,
// truecolour `38;2;R;G;B`), `\r` and erase-in-line overwriting the line; every other escape
// or control character is dropped.

/** A colour state. States are frozen and shared, so lines hold them by reference. */
const PLAIN = Object.freeze({ fg: null, bg: null, bold: false, faint: false, italic: false, underline: false, inverse: false });

const SPECIAL = /[\x00-\x08\x0b-\x1f\x7f]/;
const TOKENS = /\x1b\[([0-9;:?<=>]*)[ -/]*([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[ -/]*[0-~]|\r|[\x00-\x08\x0b-\x1f\x7f]/g;
// An escape cut off at the end of what has arrived so far: not shown until it is whole.
const INCOMPLETE_ESCAPE = /\x1b(?:\[[0-9;:?<=>]*[ -/]*|\][^\x07\x1b]*|[ -/]*)$/;
const ERASE_IN_LINE = /\x1b\[[0-2]?K/;

function applySgr(state, parameters) {
  const codes = parameters === "" ? [0] : parameters.split(/[;:]/).map((code) => Number(code) || 0);
  const next = { ...state };
  for (let index = 0; index < codes.length; index++) {
    const code = codes[index];
    if (code === 0) Object.assign(next, PLAIN);
    else if (code === 1) next.bold = true;
    else if (code === 2) next.faint = true;
    else if (code === 3) next.italic = true;
    else if (code === 4) next.underline = true;
    else if (code === 7) next.inverse = true;
    else if (code === 22) next.bold = next.faint = false;
    else if (code === 23) next.italic = false;
    else if (code === 24) next.underline = false;
    else if (code === 27) next.inverse = false;
    else if (code >= 30 && code <= 37) next.fg = code - 30;
    else if (code === 39) next.fg = null;
    else if (code >= 40 && code <= 47) next.bg = code - 40;
    else if (code === 49) next.bg = null;
    else if (code >= 90 && code <= 97) next.fg = code - 90 + 8;
    else if (code >= 100 && code <= 107) next.bg = code - 100 + 8;
    else if (code === 38 || code === 48) {
      const key = code === 38 ? "fg" : "bg";
      if (codes[index + 1] === 5 && index + 2 < codes.length) {
        next[key] = Math.min(255, codes[index + 2]);
        index += 2;
      } else if (codes[index + 1] === 2 && index + 4 < codes.length) {
        const [r, g, b] = codes.slice(index + 2, index + 5).map((value) => Math.min(255, value));
        next[key] = `#${[r, g, b].map((value) => value.toString(16).padStart(2, "0")).join("")}`;
        index += 4;
      } else {
        break; // malformed: the rest of the sequence cannot be read reliably
      }
    }
  }
  const same = (a) => Object.keys(PLAIN).every((key) => next[key] === a[key]);
  if (same(PLAIN)) return PLAIN;
  if (same(state)) return state;
  return Object.freeze(next);
}

/**
 * A line as `[text, state]` segments, and the state after it. `\r` moves back to the start of
 * the line, so what follows overwrites what was there (a progress bar shows its last state);
 * `ESC[K` erases to the end of the line.
 */
function parseLine(raw, start) {
  if (!SPECIAL.test(raw)) return { segments: raw ? [[raw, start]] : [], end: start };
  const text = raw.includes("\x1b") ? raw.replace(INCOMPLETE_ESCAPE, "") : raw;
  const overlay = text.includes("\r") || ERASE_IN_LINE.test(text);
  const segments = [];
  const cells = overlay ? [] : null;
  let state = start;
  let cursor = 0;
  const write = (chunk) => {
    if (!chunk) return;
    if (!cells) {
      const last = segments.at(-1);
      if (last && last[1] === state) last[0] += chunk;
      else segments.push([chunk, state]);
      return;
    }
    for (const character of chunk) {
      while (cells.length < cursor) cells.push([" ", PLAIN]);
      cells[cursor++] = [character, state];
    }
  };
  let last = 0;
  for (const match of text.matchAll(TOKENS)) {
    write(text.slice(last, match.index));
    last = match.index + match[0].length;
    if (match[0] === "\r") cursor = 0;
    else if (match[2] === "m") state = applySgr(state, match[1]);
    else if (match[2] === "K" && cells) {
      const mode = Number(match[1] || 0);
      if (mode === 0) cells.length = Math.min(cells.length, cursor);
      else if (mode === 1) for (let index = 0; index <= cursor && index < cells.length; index++) cells[index] = [" ", PLAIN];
      else if (mode === 2) cells.length = 0;
    }
  }
  write(text.slice(last));
  if (cells) {
    for (const [character, cellState] of cells) {
      const previous = segments.at(-1);
      if (previous && previous[1] === cellState) previous[0] += character;
      else segments.push([character, cellState]);
    }
  }
  return { segments, end: state };
}

function plainOf(raw, start) {
  return parseLine(raw, start).segments.map(([text]) => text).join("");
}

/** The escape sequence that sets `state` from any other. */
function sgrFor(state) {
  const codes = [0];
  if (state.bold) codes.push(1);
  if (state.faint) codes.push(2);
  if (state.italic) codes.push(3);
  if (state.underline) codes.push(4);
  if (state.inverse) codes.push(7);
  const colour = (value, base, bright, extended) => {
    if (value === null) return;
    if (typeof value === "string") codes.push(extended, 2, ...[1, 3, 5].map((at) => parseInt(value.slice(at, at + 2), 16)));
    else if (value < 8) codes.push(base + value);
    else if (value < 16) codes.push(bright + value - 8);
    else codes.push(extended, 5, value);
  };
  colour(state.fg, 30, 90, 38);
  colour(state.bg, 40, 100, 48);
  return `\x1b[${codes.join(";")}m`;
}

/**
 * A line rewritten as it looks (its overwritten parts gone), keeping the colours it ends with
 * and, when it ends with `\r`, the cursor at its start.
 */
function compactLine(raw, start) {
  const { segments, end } = parseLine(raw, start);
  const body = segments.map(([text, state]) => sgrFor(state) + text).join("");
  return `${sgrFor(start)}${body}${sgrFor(end)}${raw.endsWith("\r") ? "\r" : ""}`;
}

/** The 256-colour palette beyond the first 16: a 6×6×6 cube, then 24 greys. */
function colourValue(colour) {
  if (typeof colour === "string") return colour;
  if (colour < 16) return `var(--ansi-${colour})`;
  if (colour >= 232) {
    const grey = 8 + (colour - 232) * 10;
    return `rgb(${grey}, ${grey}, ${grey})`;
  }
  const levels = [0, 95, 135, 175, 215, 255];
  const index = colour - 16;
  return `rgb(${levels[Math.floor(index / 36)]}, ${levels[Math.floor(index / 6) % 6]}, ${levels[index % 6]})`;
}

/** Text in a state's colours: the 16 basic colours as classes, the others as inline colours. */
function styled(text, state) {
  if (state === PLAIN) return document.createTextNode(text);
  const span = document.createElement("span");
  const classes = [];
  const style = [];
  if (state.inverse) {
    style.push(`color: ${state.bg === null ? "var(--log-bg)" : colourValue(state.bg)}`);
    style.push(`background-color: ${state.fg === null ? "var(--log-text)" : colourValue(state.fg)}`);
  } else {
    if (typeof state.fg === "number" && state.fg < 16) classes.push(`fg-${state.fg}`);
    else if (state.fg !== null) style.push(`color: ${colourValue(state.fg)}`);
    if (typeof state.bg === "number" && state.bg < 16) classes.push(`bg-${state.bg}`);
    else if (state.bg !== null) style.push(`background-color: ${colourValue(state.bg)}`);
  }
  if (state.bold) classes.push("bold");
  if (state.faint) classes.push("faint");
  if (state.italic) classes.push("italic");
  if (state.underline) classes.push("underline");
  if (classes.length) span.className = classes.join(" ");
  if (style.length) span.style.cssText = style.join("; ");
  span.textContent = text;
  return span;
}

/** Where `query` (lower case) occurs in the segments' text, as [start, end) offsets. */
function matchRanges(segments, query) {
  const text = segments.map(([part]) => part).join("").toLowerCase();
  const ranges = [];
  for (let at = text.indexOf(query); at >= 0; at = text.indexOf(query, at + query.length)) ranges.push([at, at + query.length]);
  return ranges;
}

/** The segments into `target`, with the text in `ranges` wrapped in `<mark>`. */
function appendSegments(target, segments, ranges) {
  let offset = 0;
  let next = 0;
  for (const [text, state] of segments) {
    const end = offset + text.length;
    let position = 0;
    while (position < text.length) {
      while (next < ranges.length && ranges[next][1] <= offset + position) next++;
      const range = ranges[next];
      if (!range || range[0] >= end) {
        target.append(styled(text.slice(position), state));
        break;
      }
      const markStart = Math.max(range[0] - offset, position);
      if (markStart > position) target.append(styled(text.slice(position, markStart), state));
      const markEnd = Math.min(range[1] - offset, text.length);
      target.append(h("mark", {}, styled(text.slice(markStart, markEnd), state)));
      position = markEnd;
    }
    offset = end;
  }
}
// ---------------------------------------------------------------------------
// Pipelines: the list with Run (now, or with a branch and environment), and the form that
// creates or edits one. The service validates every config; its message is shown in place.

/** Shown once after the next navigation (a notice is cleared by navigating). */
let noticeAfterNavigation = null;

function pipelinesView(root, scope) {
  const list = h("div", { class: "pipelines", id: "pipelines" });
  root.append(
    h(
      "section",
      { class: "panel" },
      h("div", { class: "toolbar" }, h("h1", {}, "Pipelines"), h("a", { href: "#/pipelines/new", id: "new-pipeline", class: "button primary", "data-needs": "admin" }, "New pipeline")),
      list,
    ),
  );
  (async () => {
    try {
      const pipelines = await api("GET", "/pipelines?limit=500");
      if (!scope.active) return;
      if (pipelines.length === 0) {
        list.append(h("p", { class: "empty" }, "No pipelines yet: create one with “New pipeline”, POST /pipelines or `rapidflow pipeline create`."));
      }
      for (const pipeline of pipelines) list.append(pipelineCard(pipeline));
    } catch (error) {
      showNotice(error.message);
    }
  })();
}

/** `KEY=value` lines (blank lines and `#` comments skipped) as an object; a malformed line throws. */
function parseEnvironment(text) {
  const env = {};
  text.split("\n").forEach((line, index) => {
    const trimmed = line.trim();
    if (!trimmed || trimmed.startsWith("#")) return;
    const equals = line.indexOf("=");
    if (equals <= 0) throw new Error(`env line ${index + 1} is not KEY=value: ${trimmed}`);
    env[line.slice(0, equals).trim()] = line.slice(equals + 1);
  });
  return env;
}

async function runPipeline(pipelineID, body) {
  const job = await api("POST", `/pipelines/${pipelineID}/jobs`, body);
  location.hash = `#/jobs/${job.id}`;
}

function pipelineCard(pipeline) {
  const run = h("button", { type: "button", class: "primary", "data-run-pipeline": pipeline.id, "data-needs": "run" }, "Run");
  run.addEventListener("click", async () => {
    run.disabled = true;
    try {
      await runPipeline(pipeline.id);
    } catch (error) {
      showNotice(error.message);
      run.disabled = false;
    }
  });

  const branch = h("input", { name: "branch", type: "text", placeholder: "the config's branch", spellcheck: "false", "aria-label": "Branch" });
  const env = h("textarea", { name: "env", rows: 3, placeholder: "KEY=value, one per line", spellcheck: "false", "aria-label": "Environment" });
  const error = h("p", { class: "form-error run-error", role: "alert", hidden: true });
  const submit = h("button", { type: "submit", class: "primary", "data-run-with": pipeline.id }, "Run with these");
  const options = h(
    "form",
    { class: "run-options", hidden: true, "data-run-form": pipeline.id },
    h("div", { class: "field" }, h("label", {}, "Branch"), branch, h("small", { class: "muted" }, "Leave empty for the config's branch.")),
    h("div", { class: "field" }, h("label", {}, "Environment"), env, h("small", { class: "muted" }, "Added to the config's env; these win for the same name.")),
    error,
    h("div", { class: "form-actions" }, submit),
  );
  options.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const body = {};
    try {
      if (branch.value.trim()) body.branch = branch.value.trim();
      const variables = parseEnvironment(env.value);
      if (Object.keys(variables).length) body.env = variables;
    } catch (failure) {
      error.textContent = failure.message;
      error.hidden = false;
      return;
    }
    submit.disabled = true;
    try {
      await runPipeline(pipeline.id, body);
    } catch (failure) {
      error.textContent = failure.message;
      error.hidden = false;
    } finally {
      submit.disabled = false;
    }
  });
  const toggle = h("button", { type: "button", "data-run-options": pipeline.id, "data-needs": "run", "aria-expanded": "false", title: "Run with a branch or environment" }, "Run…");
  toggle.addEventListener("click", () => {
    options.hidden = !options.hidden;
    toggle.setAttribute("aria-expanded", String(!options.hidden));
    if (!options.hidden) branch.focus();
  });

  return h(
    "article",
    { class: "pipeline", "data-pipeline-id": pipeline.id },
    h(
      "header",
      {},
      h("h2", {}, pipeline.name, h("small", { class: "muted" }, ` #${pipeline.id}`)),
      h(
        "div",
        { class: "actions" },
        h("a", { href: `#/jobs?pipeline_id=${pipeline.id}` }, "Jobs"),
        h("a", { href: `#/pipelines/${pipeline.id}/edit`, "data-edit-pipeline": pipeline.id, "data-needs": "admin" }, "Edit"),
        toggle,
        run,
      ),
    ),
    options,
    h("pre", { class: "config" }, pipeline.config),
    h("p", { class: "muted small" }, "Updated ", timeElement(pipeline.updated_at)),
  );
}

const CONFIG_TEMPLATE = `name: my-pipeline
steps:
  - echo "hello from RapidFlow"
  - type: bash
    content: echo "tests go here"
    phase: test
`;

/** `#/pipelines/new` and `#/pipelines/12/edit`. */
function pipelineFormView(root, scope, pipelineID) {
  const editing = pipelineID !== null;
  const name = h("input", { id: "pipeline-name", name: "name", type: "text", required: true, maxlength: 200, spellcheck: "false" });
  const config = h("textarea", { id: "pipeline-config", name: "config", rows: 16, spellcheck: "false", wrap: "off" });
  const error = h("p", { class: "form-error", id: "pipeline-form-error", role: "alert", hidden: true });
  const save = h("button", { type: "submit", class: "primary" }, editing ? "Save changes" : "Create pipeline");
  const form = h(
    "form",
    { id: "pipeline-form", novalidate: true },
    h("div", { class: "field" }, h("label", { for: "pipeline-name" }, "Name"), name, h("small", { class: "muted" }, "Left empty, the config's name: is used.")),
    h(
      "div",
      { class: "field" },
      h("label", { for: "pipeline-config" }, "Config (YAML)"),
      config,
      h("small", { class: "muted" }, "Steps, image, env, branch… The service checks it before storing anything."),
    ),
    error,
    h("div", { class: "form-actions" }, h("a", { href: "#/pipelines", class: "button" }, "Cancel"), save),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const text = config.value;
    const named = name.value.trim() || (text.match(/^name:[ \t]*["']?(.*?)["']?[ \t]*$/m)?.[1] ?? "");
    save.disabled = true;
    try {
      const body = { name: named, config: text };
      const pipeline = editing ? await api("PUT", `/pipelines/${pipelineID}`, body) : await api("POST", "/pipelines", body);
      noticeAfterNavigation = [`Pipeline “${pipeline.name}” (#${pipeline.id}) was ${editing ? "saved" : "created"}.`, "info"];
      location.hash = "#/pipelines";
    } catch (failure) {
      error.textContent = failure.message;
      error.hidden = false;
      error.scrollIntoView({ block: "nearest" });
    } finally {
      save.disabled = false;
    }
  });
  root.append(h("section", { class: "panel narrow" }, h("h1", {}, editing ? `Edit pipeline #${pipelineID}` : "New pipeline"), form));

  if (!editing) {
    config.value = CONFIG_TEMPLATE;
    return;
  }
  save.disabled = true;
  (async () => {
    try {
      const pipeline = await api("GET", `/pipelines/${pipelineID}`);
      if (!scope.active) return;
      name.value = pipeline.name;
      config.value = pipeline.config;
      save.disabled = false;
    } catch (failure) {
      if (failure.status === 404) notFoundView(root, `Pipeline ${pipelineID} does not exist.`);
      else showNotice(failure.message);
    }
  })();
}
// ---------------------------------------------------------------------------
// Secrets: stored secrets' metadata, a form that sets one and a delete per row. Values go in
// and never come back: no route answers one, so the page has none to show.

function secretScopeQuery(scope) {
  if (scope === "global") return "";
  if (scope.pipeline_id !== undefined) return `?pipeline_id=${scope.pipeline_id}`;
  return `?owner=${encodeURIComponent(scope.owner)}`;
}

function secretScopeText(scope, pipelineNames) {
  if (scope === "global") return "global";
  if (scope.pipeline_id !== undefined) {
    const name = pipelineNames.get(scope.pipeline_id);
    return name ? `pipeline ${name} (#${scope.pipeline_id})` : `pipeline #${scope.pipeline_id}`;
  }
  return `owner ${scope.owner}`;
}

function secretsView(root, scope) {
  const pipelineNames = new Map();
  const body = h("tbody", {});
  const empty = h("p", { class: "empty", hidden: true }, "No secrets yet: set one with the form below, PUT /secrets/NAME or `rapidflow secret set`.");
  const table = h(
    "table",
    { class: "jobs secrets", id: "secrets" },
    h("thead", {}, h("tr", {}, ["Name", "Scope", "Updated", "Last used", "Last job", ""].map((title) => h("th", {}, title)))),
    body,
  );

  const name = h("input", { id: "secret-name", name: "name", type: "text", maxlength: 128, spellcheck: "false", autocomplete: "off", placeholder: "DEPLOY_TOKEN" });
  const kind = h(
    "select",
    { id: "secret-scope", name: "scope", "aria-label": "Scope" },
    h("option", { value: "global" }, "Global: every job"),
    h("option", { value: "pipeline" }, "One pipeline"),
    h("option", { value: "owner" }, "One owner"),
  );
  const pipeline = h("select", { id: "secret-pipeline", name: "pipeline_id", "aria-label": "Pipeline", hidden: true });
  const owner = h("input", { id: "secret-owner", name: "owner", type: "text", maxlength: 100, spellcheck: "false", placeholder: "team", "aria-label": "Owner", hidden: true });
  // A textarea, for multi-line values such as keys; its characters are drawn as dots.
  const value = h("textarea", {
    id: "secret-value", name: "value", rows: 3, class: "secret-value", spellcheck: "false", autocomplete: "off",
    autocorrect: "off", autocapitalize: "off",
  });
  const error = h("p", { class: "form-error", id: "secret-form-error", role: "alert", hidden: true });
  const save = h("button", { type: "submit", class: "primary" }, "Set secret");
  kind.addEventListener("change", () => {
    pipeline.hidden = kind.value !== "pipeline";
    owner.hidden = kind.value !== "owner";
  });
  const form = h(
    "form",
    { id: "secret-form", novalidate: true },
    h("div", { class: "field" }, h("label", { for: "secret-name" }, "Name"), name, h("small", { class: "muted" }, "A-Z, 0-9 and _, not starting with a digit; the variable a step sees.")),
    h("div", { class: "field" }, h("label", { for: "secret-scope" }, "Scope"), h("div", { class: "scope-choice" }, kind, pipeline, owner), h("small", { class: "muted" }, "A job gets the narrowest: its pipeline's, then its owner's, then the global one.")),
    h("div", { class: "field" }, h("label", { for: "secret-value" }, "Value"), value, h("small", { class: "muted" }, "Write-only: it is stored sealed and never shown again. Setting an existing name and scope replaces it.")),
    error,
    h("div", { class: "form-actions" }, save),
  );

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const request = { value: value.value };
    if (kind.value === "pipeline") request.scope = { pipeline_id: Number(pipeline.value) };
    else if (kind.value === "owner") request.scope = { owner: owner.value.trim() };
    const refuse = (message) => {
      error.textContent = message;
      error.hidden = false;
    };
    if (!name.value.trim()) return refuse("Give the secret a name.");
    if (kind.value === "pipeline" && !pipeline.value) return refuse("There is no pipeline to choose: create one first.");
    save.disabled = true;
    try {
      const secret = await api("PUT", `/secrets/${encodeURIComponent(name.value.trim())}`, request);
      value.value = "";
      if (!scope.active) return;
      showNotice(`Secret ${secret.name} was set (${secretScopeText(secret.scope, pipelineNames)}).`, "info");
      await load();
    } catch (failure) {
      refuse(failure.message);
    } finally {
      save.disabled = false;
    }
  });

  function row(secret) {
    const actions = h("td", { class: "actions" });
    const remove = h("button", { type: "button", class: "danger small", "data-delete-secret": "" }, "Delete");
    const confirm = h("button", { type: "button", class: "danger small", "data-confirm-delete": "" }, "Delete it");
    const keep = h("button", { type: "button", class: "small" }, "Keep");
    const question = h("span", { class: "confirm", hidden: true }, "Delete for good? ", confirm, " ", keep);
    remove.addEventListener("click", () => {
      remove.hidden = true;
      question.hidden = false;
      keep.focus();
    });
    keep.addEventListener("click", () => {
      question.hidden = true;
      remove.hidden = false;
    });
    confirm.addEventListener("click", async () => {
      confirm.disabled = keep.disabled = true;
      try {
        await api("DELETE", `/secrets/${encodeURIComponent(secret.name)}${secretScopeQuery(secret.scope)}`);
        if (!scope.active) return;
        showNotice(`Secret ${secret.name} was deleted (${secretScopeText(secret.scope, pipelineNames)}).`, "info");
        await load();
      } catch (failure) {
        showNotice(failure.message);
        confirm.disabled = keep.disabled = false;
      }
    });
    actions.append(remove, question);
    const lastJob = secret.last_used_job_id ? h("a", { href: `#/jobs/${secret.last_used_job_id}` }, `#${secret.last_used_job_id}`) : "—";
    return h(
      "tr",
      { "data-secret": secret.name, "data-scope": JSON.stringify(secret.scope) },
      h("td", { class: "secret-name" }, secret.name),
      h("td", {}, secretScopeText(secret.scope, pipelineNames)),
      h("td", {}, timeElement(secret.updated_at)),
      h("td", {}, timeElement(secret.last_used_at)),
      h("td", {}, lastJob),
      actions,
    );
  }

  async function load() {
    const secrets = await api("GET", "/secrets");
    if (!scope.active) return;
    body.replaceChildren(...secrets.map(row));
    empty.hidden = secrets.length > 0;
    table.hidden = secrets.length === 0;
  }

  root.append(
    h("section", { class: "panel" }, h("div", { class: "toolbar" }, h("h1", {}, "Secrets")), table, empty),
    h("section", { class: "panel narrow set-secret" }, h("h2", {}, "Set a secret"), form),
  );
  (async () => {
    try {
      const pipelines = await api("GET", "/pipelines?limit=500");
      if (!scope.active) return;
      for (const item of pipelines) pipelineNames.set(item.id, item.name);
      pipeline.replaceChildren(...pipelines.map((item) => h("option", { value: item.id }, `${item.name} (#${item.id})`)));
      await load();
    } catch (failure) {
      showNotice(failure.message);
    }
  })();
}

// ---------------------------------------------------------------------------
// Webhooks: the outgoing webhooks (`GET /webhooks`) and, for the one in the address
// (`#/webhooks/3`), its recent deliveries, kept up to date while shown (a pending delivery is
// tried again on the service's schedule); then the incoming hooks forges deliver pushes to
// (`GET /hooks`). Reading them needs a token that reaches every owner; sending a delivery
// again needs an admin. Secrets never come back from these routes, so none is shown.

const DELIVERY_LIMIT = 50;

function webhooksView(root, scope, match) {
  const page = new WebhooksPage(root, scope);
  page.select(match.webhookID);
  return { key: "webhooks", update: (next) => page.select(next.webhookID) };
}

class WebhooksPage {
  constructor(root, scope) {
    this.scope = scope;
    this.webhooks = new Map();
    this.selectedID = null;
    // A webhook whose deliveries the service refused (403, 404): not asked again until another is chosen.
    this.refusedID = null;
    this.request = 0;
    this.deliveryRows = new Map();

    this.webhookBody = h("tbody", { id: "webhooks-body" });
    this.webhookTable = h(
      "table",
      { class: "jobs webhooks", id: "webhooks", hidden: true },
      h("thead", {}, h("tr", {}, ["Webhook", "URL", "Events", "Owner", "Pipeline", "Created", "State"].map((title) => h("th", {}, title)))),
      this.webhookBody,
    );
    this.webhookEmpty = h("p", { class: "empty", id: "webhooks-empty", hidden: true }, "No webhooks yet: register one with POST /webhooks or `rapidflow webhook create`.");
    this.hint = h("p", { class: "muted small", id: "webhooks-hint", hidden: true }, "Choose a webhook to see its recent deliveries.");

    this.deliveriesTitle = h("h2", { id: "deliveries-title" });
    this.deliveriesUpdated = h("span", { class: "muted", id: "deliveries-updated" });
    this.deliveryBody = h("tbody", { id: "deliveries-body" });
    this.deliveryTable = h(
      "table",
      { class: "jobs deliveries", id: "webhook-deliveries", hidden: true },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["Delivery", "Event", "Job", "State", "Tries", "Status", "Error", "Duration", "Next try", "Created", "Delivered", ""].map((title) => h("th", {}, title)),
        ),
      ),
      this.deliveryBody,
    );
    this.deliveryEmpty = h("p", { class: "empty", id: "deliveries-empty", hidden: true }, "No deliveries yet: one is written when a job does what the webhook listens for.");
    this.deliveriesPanel = h(
      "section",
      { class: "panel deliveries-panel", id: "deliveries-panel", hidden: true },
      h("div", { class: "toolbar" }, this.deliveriesTitle, this.deliveriesUpdated),
      h("div", { class: "table-scroll" }, this.deliveryTable),
      this.deliveryEmpty,
    );

    this.hookBody = h("tbody", { id: "hooks-body" });
    this.hookTable = h(
      "table",
      { class: "jobs hooks", id: "hooks", hidden: true },
      h("thead", {}, h("tr", {}, ["Name", "Forge", "Path", "Owner", "Commit statuses", "Last delivery"].map((title) => h("th", {}, title)))),
      this.hookBody,
    );
    this.hookEmpty = h("p", { class: "empty", id: "hooks-empty", hidden: true }, "No incoming hooks: set one up with POST /hooks or `rapidflow hook create`, then point the forge at its path.");

    root.append(
      h(
        "section",
        { class: "panel" },
        h("div", { class: "toolbar" }, h("h1", {}, "Webhooks")),
        h("p", { class: "muted intro" }, "URLs the service tells when jobs are created, start and finish, and when steps finish."),
        this.webhookTable,
        this.webhookEmpty,
        this.hint,
      ),
      this.deliveriesPanel,
      h(
        "section",
        { class: "panel hooks-panel" },
        h("h2", {}, "Incoming hooks"),
        h("p", { class: "muted intro" }, "Where forges and git servers deliver pushes, tags and pull requests that start pipelines."),
        this.hookTable,
        this.hookEmpty,
      ),
    );
    this.load();
    scope.every(POLL_MS, () => this.refreshDeliveries());
  }

  /** Both lists; each shows if the service gave it, and a refusal (a token limited to some owners) is shown once. */
  async load() {
    const [webhooks, hooks] = await Promise.allSettled([api("GET", "/webhooks"), api("GET", "/hooks")]);
    if (!this.scope.active) return;
    if (webhooks.status === "fulfilled") this.showWebhooks(webhooks.value);
    if (hooks.status === "fulfilled") this.showHooks(hooks.value);
    const failure = [webhooks, hooks].find((result) => result.status === "rejected");
    if (failure) showNotice(failure.reason.message);
  }

  showWebhooks(webhooks) {
    this.webhooks = new Map(webhooks.map((webhook) => [webhook.id, webhook]));
    this.webhookBody.replaceChildren(...webhooks.map(webhookRow));
    this.webhookTable.hidden = webhooks.length === 0;
    this.webhookEmpty.hidden = webhooks.length > 0;
    this.markSelected();
  }

  showHooks(hooks) {
    this.hookBody.replaceChildren(...hooks.map(hookRow));
    this.hookTable.hidden = hooks.length === 0;
    this.hookEmpty.hidden = hooks.length > 0;
  }

  /** The webhook the address names (`#/webhooks/3`), or none (`#/webhooks`). */
  select(webhookID) {
    if (webhookID === this.selectedID) return;
    this.selectedID = webhookID;
    this.refusedID = null;
    this.request += 1; // an answer about the webhook shown before is dropped
    this.deliveryRows.clear();
    this.deliveryBody.replaceChildren();
    this.deliveryTable.hidden = true;
    this.deliveryEmpty.hidden = true;
    this.deliveriesUpdated.textContent = "";
    this.deliveriesPanel.hidden = webhookID === null;
    this.markSelected();
    if (webhookID !== null) this.refreshDeliveries().catch((error) => showNotice(error.message));
  }

  markSelected() {
    for (const row of this.webhookBody.children) {
      const selected = Number(row.dataset.webhookId) === this.selectedID;
      row.classList.toggle("selected", selected);
      if (selected) row.setAttribute("aria-current", "true");
      else row.removeAttribute("aria-current");
    }
    this.hint.hidden = this.selectedID !== null || this.webhooks.size === 0;
    if (this.selectedID === null) return;
    const webhook = this.webhooks.get(this.selectedID);
    this.deliveriesTitle.textContent = `Recent deliveries · webhook #${this.selectedID}${webhook ? ` · ${webhook.url}` : ""}`;
  }

  /**
   * The chosen webhook's newest deliveries. Rows stay in place and only their changed cells
   * are rewritten, so a Redeliver button does not move under the pointer. A refusal (the
   * webhook does not exist, the token may not read it) is shown once and not asked again;
   * anything else is left to the scope's retrying.
   */
  async refreshDeliveries() {
    const webhookID = this.selectedID;
    if (webhookID === null || webhookID === this.refusedID) return;
    const ticket = ++this.request;
    let deliveries;
    try {
      deliveries = await api("GET", `/webhooks/${webhookID}/deliveries?limit=${DELIVERY_LIMIT}`);
    } catch (error) {
      if (!this.scope.active || ticket !== this.request) return;
      if (!(error instanceof ApiError) || error.status >= 500) throw error;
      this.refusedID = webhookID;
      showNotice(error.message);
      return;
    }
    // A later request (another webhook chosen meanwhile) wins over an earlier one answered late.
    if (!this.scope.active || ticket !== this.request) return;
    const newest = [...deliveries].sort((a, b) => b.id - a.id);
    const now = Date.now();
    const seen = new Set();
    newest.forEach((delivery, index) => {
      seen.add(delivery.id);
      let row = this.deliveryRows.get(delivery.id);
      if (!row) {
        row = this.deliveryRow(delivery);
        this.deliveryRows.set(delivery.id, row);
      }
      updateDeliveryRow(row, delivery, now);
      if (this.deliveryBody.children[index] !== row) this.deliveryBody.insertBefore(row, this.deliveryBody.children[index] ?? null);
    });
    for (const [id, row] of this.deliveryRows) {
      if (!seen.has(id)) {
        row.remove();
        this.deliveryRows.delete(id);
      }
    }
    this.deliveryTable.hidden = newest.length === 0;
    this.deliveryEmpty.hidden = newest.length > 0;
    this.deliveriesUpdated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
  }

  deliveryRow(delivery) {
    const redeliver = h(
      "button",
      { type: "button", class: "small", "data-redeliver": delivery.id, "data-needs": "admin", title: "Send it again: the same message and body" },
      "Redeliver",
    );
    redeliver.addEventListener("click", () => this.redeliver(delivery, redeliver));
    return h(
      "tr",
      { "data-delivery-id": delivery.id, "data-job-id": delivery.job_id },
      h("td", { class: "delivery muted" }, `#${delivery.id}`),
      h("td", { class: "event" }, delivery.event),
      h("td", { class: "job" }, h("a", { href: `#/jobs/${delivery.job_id}` }, `#${delivery.job_id}`)),
      h("td", { class: "state" }),
      h("td", { class: "tries" }),
      h("td", { class: "http-status" }),
      h("td", { class: "error" }),
      h("td", { class: "duration" }),
      h("td", { class: "next-try" }),
      h("td", { class: "created muted" }),
      h("td", { class: "delivered" }),
      h("td", { class: "actions" }, redeliver),
    );
  }

  async redeliver(delivery, button) {
    button.disabled = true;
    try {
      await api("POST", `/webhooks/${delivery.webhook_id}/deliveries/${delivery.id}/redeliver`);
      if (!this.scope.active) return;
      showNotice(`Delivery ${delivery.id} (${delivery.event}, job ${delivery.job_id}) will be sent again.`, "info");
      await this.refreshDeliveries();
    } catch (error) {
      showNotice(error.message);
    } finally {
      button.disabled = false;
    }
  }
}

function webhookRow(webhook) {
  const address = `#/webhooks/${webhook.id}`;
  const row = h("tr", { "data-webhook-id": webhook.id, class: webhook.disabled_at ? "clickable disabled" : "clickable" });
  row.addEventListener("click", (event) => {
    if (event.target.closest("a")) return;
    location.hash = address;
  });
  // A target that answered 410 Gone is sent nothing more: said in the row, with when and why.
  const state = webhook.disabled_at
    ? [
        badge("disabled"),
        h("small", { class: "disabled-note" }, "since ", timeElement(webhook.disabled_at), webhook.disabled_reason ? `: ${webhook.disabled_reason}` : null),
      ]
    : badge("active");
  row.append(
    h("td", {}, h("a", { href: address }, `#${webhook.id}`)),
    h("td", { class: "url" }, webhook.url),
    h("td", { class: "events" }, webhook.events.join(", ")),
    h("td", { class: "owner" }, webhook.owner ?? h("span", { class: "muted" }, "any")),
    h(
      "td",
      { class: "pipeline-id" },
      webhook.pipeline_id ? h("a", { href: `#/jobs?pipeline_id=${webhook.pipeline_id}` }, `#${webhook.pipeline_id}`) : h("span", { class: "muted" }, "any"),
    ),
    h("td", { class: "created muted" }, timeElement(webhook.created_at)),
    h("td", { class: "state" }, state),
  );
  return row;
}

/** A cell holding a time (its tooltip the full date), or "—"; the page changes only when what it shows does. */
function setTimeCell(cell, timestamp, text) {
  if (!timestamp) {
    if (cell.textContent !== "—") cell.textContent = "—";
    return;
  }
  let time = cell.querySelector("time");
  if (!time) {
    time = h("time");
    cell.replaceChildren(time);
  }
  if (time.dateTime !== timestamp) {
    time.dateTime = timestamp;
    time.title = fullTime(timestamp);
  }
  if (time.textContent !== text) time.textContent = text;
}

function updateDeliveryRow(row, delivery, now = Date.now()) {
  const set = (selector, text) => {
    const cell = row.querySelector(selector);
    if (cell.textContent !== text) cell.textContent = text;
  };
  if (row.dataset.state !== delivery.state) {
    row.querySelector(".state").replaceChildren(badge(delivery.state));
    row.dataset.state = delivery.state;
  }
  set(".tries", String(delivery.tries));
  // No status when the last try got no answer (refused, timed out): its error says why.
  set(".http-status", String(delivery.status_code ?? "—"));
  set(".error", delivery.error ?? "");
  set(".duration", delivery.duration_ms === null || delivery.duration_ms === undefined ? "—" : `${delivery.duration_ms} ms`);
  setTimeCell(row.querySelector(".next-try"), delivery.next_try_at, formatUntil(delivery.next_try_at, now));
  setTimeCell(row.querySelector(".created"), delivery.created_at, formatRelative(delivery.created_at, now));
  setTimeCell(row.querySelector(".delivered"), delivery.delivered_at, formatRelative(delivery.delivered_at, now));
}

function hookRow(hook) {
  return h(
    "tr",
    { "data-hook-id": hook.id },
    h("td", { class: "hook-name" }, hook.name),
    h("td", { class: "forge" }, hook.forge),
    h("td", { class: "path" }, h("code", {}, hook.path)),
    h("td", { class: "owner" }, hook.owner ?? h("span", { class: "muted" }, "any")),
    h("td", { class: "commit-status" }, hook.posts_commit_status ? "yes" : h("span", { class: "muted" }, "no")),
    h("td", { class: "last-delivery" }, hook.last_delivery_at ? timeElement(hook.last_delivery_at) : h("span", { class: "muted" }, "never")),
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
    field("registry_credentials_secret", "Registry credentials secret", { placeholder: "REGISTRY_LOGIN" }, "Or a stored secret's name (the owner's, else the global one)."),
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
    for (const name of ["git_ref", "dockerfile_path", "registry_url", "git_credentials_path", "registry_credentials_path", "registry_credentials_secret"]) {
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
// Not found, and the routing: #/jobs, #/jobs/12, #/jobs/12/steps/34, #/jobs/12/L345,
// #/pipelines, #/pipelines/new, #/pipelines/12/edit, #/image-job, #/secrets, #/webhooks, #/webhooks/3

function notFoundView(root, message) {
  root.replaceChildren(
    h(
      "section",
      { class: "panel narrow not-found", id: "not-found" },
      h("h1", {}, "Not found"),
      h("p", {}, message),
      h("p", {}, h("a", { href: "#/jobs" }, "← All jobs"), " · ", h("a", { href: "#/pipelines" }, "Pipelines")),
    ),
  );
}

/** What an address names: the view, its section of the top bar, and its parameters. */
function parseRoute(hash) {
  const [path, queryString] = (hash.replace(/^#/, "") || "/jobs").split("?");
  const query = new URLSearchParams(queryString ?? "");
  if (path === "/jobs" || path === "/") return { view: "jobs", section: "jobs", key: "jobs", query };
  const job = path.match(/^\/jobs\/(\d+)(?:\/steps\/(\d+)|\/L(\d+))?$/);
  if (job) {
    return {
      view: "job",
      section: "jobs",
      key: `job:${job[1]}`,
      jobID: Number(job[1]),
      stepID: job[2] ? Number(job[2]) : null,
      line: job[3] ? Number(job[3]) : null,
    };
  }
  if (path === "/pipelines") return { view: "pipelines", section: "pipelines", key: "pipelines" };
  if (path === "/pipelines/new") return { view: "pipeline-form", section: "pipelines", key: "pipeline-form:new", pipelineID: null };
  const edit = path.match(/^\/pipelines\/(\d+)\/edit$/);
  if (edit) return { view: "pipeline-form", section: "pipelines", key: `pipeline-form:${edit[1]}`, pipelineID: Number(edit[1]) };
  if (path === "/image-job") return { view: "image-job", section: "image-job", key: "image-job" };
  if (path === "/secrets") return { view: "secrets", section: "secrets", key: "secrets" };
  // One view for the list and a chosen webhook's deliveries, so choosing another keeps the page.
  if (path === "/webhooks") return { view: "webhooks", section: "webhooks", key: "webhooks", webhookID: null };
  const webhook = path.match(/^\/webhooks\/(\d+)$/);
  if (webhook) return { view: "webhooks", section: "webhooks", key: "webhooks", webhookID: Number(webhook[1]) };
  return { view: "not-found", section: null, key: `not-found:${path}`, path };
}

let current = null;

function route() {
  const match = parseRoute(location.hash);
  // The same view with new parameters (a step or line of the same job, other list filters) stays.
  if (current && current.key === match.key && current.update) {
    current.update(match);
    return;
  }
  current?.scope.dispose();
  clearNotice();
  const root = document.getElementById("view");
  root.replaceChildren();
  const scope = new Scope();
  let update = null;
  switch (match.view) {
    case "jobs":
      update = jobsView(root, scope, match.query).update;
      break;
    case "job":
      update = jobView(root, scope, match).update;
      break;
    case "pipelines":
      pipelinesView(root, scope);
      break;
    case "pipeline-form":
      pipelineFormView(root, scope, match.pipelineID);
      break;
    case "image-job":
      imageJobView(root);
      break;
    case "secrets":
      secretsView(root, scope);
      break;
    case "webhooks":
      update = webhooksView(root, scope, match).update;
      break;
    default:
      notFoundView(root, `There is no page at #${match.path}.`);
  }
  for (const link of document.querySelectorAll("[data-nav]")) link.classList.toggle("active", link.dataset.nav === match.section);
  current = { key: match.key, scope, update };
  if (noticeAfterNavigation) {
    showNotice(...noticeAfterNavigation);
    noticeAfterNavigation = null;
  }
}

document.getElementById("forget-token").addEventListener("click", () => {
  tokenStore.clear();
  location.reload();
});
document.getElementById("forget-token").hidden = !tokenStore.get();
window.addEventListener("hashchange", route);
route();
learnRole();
