// The live incident queue (事件队列) for dispatchers.
//
// The list comes from GET /api/v1/incidents (with the filter form's values as the query); live
// events from GET /api/v1/events (Server-Sent Events) then add new incidents at the top and change
// rows in place. Live rows obey the same filters as the list: a row that stops matching (it ended
// while the filter says "open", it was assigned while the filter says "new") leaves the list.
//
// The labels (rules, states, dispatch statuses) and the live-event connection are exported for the
// incident page, so both pages say the same thing the same way.

import { api, explain } from "../api.js";
import { el, statusLine } from "../dom.js";
import { addMessages, formatSeconds, formatTime, t } from "../i18n.js";

addMessages({
  "zh-CN": {
    "queue.title": "事件队列",
    "queue.doc_title": "事件队列 · 进行中 {open} · retina",
    "queue.counts": "新事件 {fresh} · 进行中 {open} · 列表中 {total}",
    "queue.mark_seen": "全部已读",
    "queue.connecting": "连接中…", "queue.live": "实时", "queue.reconnecting": "重新连接中…",
    "queue.offline": "连接已断开，稍后重试",
    "queue.sound_on": "提示音：开", "queue.sound_off": "提示音：关",
    "queue.sound_locked": "点击页面任意处即可启用提示音",
    "queue.filter.state": "事件状态", "queue.filter.dispatch": "处置状态", "queue.filter.since": "开始于（不早于）",
    "queue.filter.until": "开始于（早于）", "queue.filter.reset": "清除筛选",
    "queue.col.started": "开始时间", "queue.col.dwell": "持续", "queue.col.last_seen": "最后出现",
    "queue.col.dispatch": "处置", "queue.view": "查看",
    "queue.empty": "没有符合条件的事件。", "queue.more": "加载更多",
    "queue.cameras_failed": "摄像机列表不可用（{why}）：筛选项不完整，时间按本机时区显示。",
    "queue.state.open": "进行中", "queue.state.ended": "已结束",
    "queue.status.new": "待分拨", "queue.status.assigned": "已分派", "queue.status.handled": "已处置待核查",
    "queue.status.verifying": "核查中", "queue.status.verified": "已核查", "queue.status.reopened": "已重开",
    "queue.status.closed": "已关闭",
    "queue.rule.illegal_parking": "违法停车", "queue.rule.non_motor_parking": "非机动车乱停放",
    "queue.rule.street_vending": "占道经营", "queue.rule.exposed_trash": "暴露垃圾",
    "queue.rule.crowd_gathering": "人员聚集",
    "queue.actor.verifier": "平台自动核查",
  },
  en: {
    "queue.title": "Incident queue",
    "queue.doc_title": "Incidents · {open} open · retina",
    "queue.counts": "New {fresh} · open {open} · listed {total}",
    "queue.mark_seen": "Mark all seen",
    "queue.connecting": "Connecting…", "queue.live": "Live", "queue.reconnecting": "Reconnecting…",
    "queue.offline": "Disconnected, retrying soon",
    "queue.sound_on": "Sound: on", "queue.sound_off": "Sound: off",
    "queue.sound_locked": "Click anywhere on the page to enable the sound",
    "queue.filter.state": "Incident state", "queue.filter.dispatch": "Dispatch status",
    "queue.filter.since": "Started at or after", "queue.filter.until": "Started before",
    "queue.filter.reset": "Clear filters",
    "queue.col.started": "Started", "queue.col.dwell": "Dwell", "queue.col.last_seen": "Last seen",
    "queue.col.dispatch": "Dispatch", "queue.view": "Open",
    "queue.empty": "No incidents match the filters.", "queue.more": "Load more",
    "queue.cameras_failed": "The camera list is unavailable ({why}): filters are incomplete, times are in this computer's time zone.",
    "queue.state.open": "Ongoing", "queue.state.ended": "Ended",
    "queue.status.new": "New", "queue.status.assigned": "Assigned", "queue.status.handled": "Handled, to verify",
    "queue.status.verifying": "Verifying", "queue.status.verified": "Verified", "queue.status.reopened": "Reopened",
    "queue.status.closed": "Closed",
    "queue.rule.illegal_parking": "Illegal parking", "queue.rule.non_motor_parking": "Bicycle / scooter parking",
    "queue.rule.street_vending": "Street vending", "queue.rule.exposed_trash": "Exposed trash",
    "queue.rule.crowd_gathering": "Crowd gathering",
    "queue.actor.verifier": "Platform (automatic verification)",
  },
});

export const DISPATCH_STATUSES = ["new", "assigned", "handled", "verifying", "verified", "reopened", "closed"];
const FILTER_KEY = "retina.queue.filters"; // sessionStorage: the filters survive a visit to an incident
const MUTE_KEY = "retina.queue.muted"; // localStorage: the sound choice is per browser
const PAGE_SIZE = 200;
const MAX_ROWS = 1000; // the oldest rows leave the bottom when live arrivals push past this

// -- shared labels ---------------------------------------------------------------------------------

/** A message, or `fallback` when no language has one (t() answers the key itself then). */
function known(key, fallback) {
  const text = t(key);
  return text === key ? fallback : text;
}

/** The rule's readable name (the algorithm's name for a rule the console does not know). */
export function ruleName(algorithm) {
  return known(`queue.rule.${algorithm}`, algorithm || "—");
}

export function statusName(status) {
  return known(`queue.status.${status}`, status || "—");
}

export function stateBadge(state) {
  return el("span", { class: `badge ${state}` }, known(`queue.state.${state}`, state || "—"));
}

/** The dispatch status as a badge (its class is the status, which style.css colours). */
export function dispatchBadge(status, attrs = {}) {
  const value = status || "new";
  return el("span", { ...attrs, class: `badge ${value}`, "data-status": value }, statusName(value));
}

/** Who took a step: "user:ana" → "ana", "system:verifier" → the platform. */
export function actorName(actor) {
  if (!actor) return "";
  if (actor === "system:verifier") return t("queue.actor.verifier");
  return actor.replace(/^(user|system):/, "");
}

/** A datetime-local input's value (the browser's local time) as an ISO time; "" when empty or bad. */
export function localToIso(value) {
  if (!value) return "";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? "" : date.toISOString();
}

// -- live events -----------------------------------------------------------------------------------

function deliver(event, handler) {
  let data;
  try {
    data = JSON.parse(event.data);
  } catch (_) {
    return; // not JSON: nothing to show
  }
  if (data && typeof data === "object") handler(data);
}

/**
 * Listen to /api/v1/events. onState gets "connecting", "live", "reconnecting" or "offline".
 *
 * After a dropped connection the browser reconnects by itself and sends Last-Event-ID, so nothing
 * is lost. When the server answered with an error instead (503 while NATS is unreachable, 401 after
 * the session ended), EventSource gives up for good: then we wait, let the page catch up through
 * the REST API (`onResync`: a new stream starts from "now") and open a new one.
 * Returns the function that stops listening.
 */
export function liveEvents({ onIncident = () => {}, onDispatch = () => {}, onState = () => {}, onResync = async () => {} }) {
  let source = null;
  let timer = null;
  let stopped = false;
  let delay = 2000;

  function retryLater() {
    timer = setTimeout(async () => {
      timer = null;
      try {
        await onResync();
      } catch (_) { /* the page shows its own error; the stream is tried again anyway */ }
      if (!stopped) open();
    }, delay);
    delay = Math.min(delay * 2, 30000);
  }

  function open() {
    onState("connecting");
    source = new EventSource("/api/v1/events");
    source.addEventListener("open", () => {
      delay = 2000;
      onState("live");
    });
    source.addEventListener("error", () => {
      if (stopped) return;
      if (source.readyState === EventSource.CLOSED) {
        onState("offline");
        retryLater();
      } else {
        onState("reconnecting");
      }
    });
    source.addEventListener("incident", (event) => deliver(event, onIncident));
    source.addEventListener("dispatch", (event) => deliver(event, onDispatch));
  }

  open();
  return () => {
    stopped = true;
    clearTimeout(timer);
    if (source) source.close();
  };
}

/** The small "live / reconnecting" indicator; returns [node, setState]. */
export function liveIndicator() {
  const node = el("span", { class: "live-indicator connecting", role: "status" }, t("queue.connecting"));
  const set = (state) => {
    node.className = `live-indicator ${state}`;
    node.textContent = t(`queue.${state}`);
  };
  return [node, set];
}

// -- sound -----------------------------------------------------------------------------------------

// One AudioContext for the whole document. Browsers keep it silent until the user has interacted
// with the page, so it is made (or resumed) on the first click or key press.
let audio = null;

/** Make (or resume) the AudioContext; resolves to whether sound can play now. */
function unlockAudio() {
  const Context = window.AudioContext || window.webkitAudioContext;
  if (!Context) return Promise.resolve(false);
  try {
    if (!audio) audio = new Context();
  } catch (_) {
    return Promise.resolve(false);
  }
  if (audio.state === "running") return Promise.resolve(true);
  return audio.resume().then(() => audio.state === "running", () => false);
}

function audioReady() {
  return audio !== null && audio.state === "running";
}

let lastBeep = 0;

/** A short two-tone beep from an oscillator (no audio file); at most one a second. */
function beep() {
  if (!audioReady() || Date.now() - lastBeep < 1000) return;
  lastBeep = Date.now();
  const now = audio.currentTime;
  [[880, 0], [660, 0.16]].forEach(([frequency, offset]) => {
    const oscillator = audio.createOscillator();
    const gain = audio.createGain();
    oscillator.type = "sine";
    oscillator.frequency.value = frequency;
    gain.gain.setValueAtTime(0.0001, now + offset);
    gain.gain.exponentialRampToValueAtTime(0.25, now + offset + 0.01);
    gain.gain.exponentialRampToValueAtTime(0.0001, now + offset + 0.14);
    oscillator.connect(gain).connect(audio.destination);
    oscillator.start(now + offset);
    oscillator.stop(now + offset + 0.15);
  });
}

// -- filters ---------------------------------------------------------------------------------------

const FILTER_FIELDS = ["camera", "algorithm", "zone", "state", "dispatch_status", "since", "until"];

function savedFilters() {
  try {
    const value = JSON.parse(sessionStorage.getItem(FILTER_KEY) || "{}");
    return value && typeof value === "object" ? value : {};
  } catch (_) {
    return {};
  }
}

/** The filters as the API's query (since/until: the form holds local times). */
function filterQuery(filters) {
  return { ...filters, since: localToIso(filters.since), until: localToIso(filters.until) };
}

/** Does an incident belong in the list the filters describe? (the server's rules, for live rows) */
function matches(filters, incident) {
  if (filters.camera && incident.camera_id !== filters.camera) return false;
  if (filters.algorithm && incident.algorithm !== filters.algorithm) return false;
  if (filters.zone && incident.zone !== filters.zone) return false;
  if (filters.state && incident.state !== filters.state) return false;
  if (filters.dispatch_status && (incident.dispatch_status || "new") !== filters.dispatch_status) return false;
  const started = Date.parse(incident.started_at);
  const since = Date.parse(localToIso(filters.since));
  const until = Date.parse(localToIso(filters.until));
  if (!Number.isNaN(since) && !(started >= since)) return false;
  if (!Number.isNaN(until) && !(started < until)) return false;
  return true;
}

function option(value, label, selected) {
  return el("option", { value, selected: value === selected }, label);
}

/** Replace a select's options: "all", then `choices` ([value, label]); keeps `selected` even when
 * it is not among them (a camera since removed), so the form shows what is applied. */
function setOptions(select, choices, selected) {
  const values = choices.map(([value]) => value);
  if (selected && !values.includes(selected)) choices = [...choices, [selected, selected]];
  select.replaceChildren(option("", t("common.all"), selected), ...choices.map(([v, l]) => option(v, l, selected)));
}

/** The rules and zones the cameras offer (of one camera when `cameraId`). */
function rulesAndZones(cameras, cameraId, algorithm) {
  const rules = new Set();
  const zones = new Set();
  for (const [id, record] of cameras) {
    if (cameraId && id !== cameraId) continue;
    for (const spec of record.camera.algorithms || []) {
      rules.add(spec.name);
      if (!algorithm || spec.name === algorithm) (spec.zones || []).forEach((zone) => zones.add(zone.name));
    }
  }
  return { rules: [...rules].sort(), zones: [...zones].sort() };
}

function filterForm(cameras, filters, onApply) {
  const input = (name, attrs = {}) => el("input", { name, value: filters[name] || "", ...attrs });
  const camera = el("select", { name: "camera" });
  const algorithm = el("select", { name: "algorithm" });
  const zone = el("select", { name: "zone" });
  const state = el("select", { name: "state" });
  const dispatch = el("select", { name: "dispatch_status" });
  const cameraChoices = [...cameras.values()]
    .map((record) => [record.camera.id, record.camera.name || record.camera.id])
    .sort((a, b) => a[1].localeCompare(b[1]));
  setOptions(camera, cameraChoices, filters.camera);
  setOptions(state, ["open", "ended"].map((s) => [s, t(`queue.state.${s}`)]), filters.state);
  setOptions(dispatch, DISPATCH_STATUSES.map((s) => [s, statusName(s)]), filters.dispatch_status);

  // The rule choices follow the camera, the zone choices the camera and the rule.
  const refreshChoices = (rule, zoneName) => {
    const { rules, zones } = rulesAndZones(cameras, camera.value, rule);
    setOptions(algorithm, rules.map((r) => [r, ruleName(r)]), rule);
    setOptions(zone, zones.map((z) => [z, z]), zoneName);
  };
  camera.addEventListener("change", () => refreshChoices(algorithm.value, zone.value));
  algorithm.addEventListener("change", () => refreshChoices(algorithm.value, zone.value));
  refreshChoices(filters.algorithm || "", filters.zone || "");

  const form = el(
    "form",
    { class: "card row queue-filters", onsubmit: (event) => {
      event.preventDefault();
      const data = new FormData(form);
      onApply(Object.fromEntries(FILTER_FIELDS.map((name) => [name, String(data.get(name) || "")]).filter(([, v]) => v)));
    } },
    el("label", {}, t("common.camera"), camera),
    el("label", {}, t("common.rule"), algorithm),
    el("label", {}, t("common.zone"), zone),
    el("label", {}, t("queue.filter.state"), state),
    el("label", {}, t("queue.filter.dispatch"), dispatch),
    el("label", {}, t("queue.filter.since"), input("since", { type: "datetime-local" })),
    el("label", {}, t("queue.filter.until"), input("until", { type: "datetime-local" })),
    el("button", { type: "submit", class: "primary" }, t("common.apply")),
    el("button", { type: "button", onclick: () => onApply({}) }, t("queue.filter.reset")),
  );
  return form;
}

// -- rows ------------------------------------------------------------------------------------------

/** The fields an incident event (retina.incident/1) brings, in the REST API's shape. */
function fromMessage(message) {
  const fields = {
    id: message.id, camera_id: message.camera_id, camera_name: message.camera_name,
    algorithm: message.algorithm, zone: message.zone, dwell_seconds: message.dwell_seconds,
    started_at: message.started_at, last_seen_at: message.last_seen_at, ended_at: message.ended_at,
    end_reason: message.end_reason, revision: message.revision,
    state: message.event === "end" ? "ended" : "open",
  };
  return Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined && value !== null));
}

function rowCells(incident, timeZone) {
  const link = `#/incidents/${encodeURIComponent(incident.id)}`;
  return [
    el("td", {}, el("a", { href: link }, formatTime(incident.started_at, timeZone))),
    el("td", {}, incident.camera_name || incident.camera_id),
    el("td", {}, ruleName(incident.algorithm)),
    el("td", {}, incident.zone || "—"),
    el("td", { class: "dwell" }, formatSeconds(incident.dwell_seconds)),
    el("td", { class: "last-seen" }, formatTime(incident.last_seen_at, timeZone)),
    el("td", { class: "state" }, stateBadge(incident.state)),
    el(
      "td",
      { class: "dispatch" },
      dispatchBadge(incident.dispatch_status),
      incident.assignee ? el("div", { class: "muted small" }, incident.assignee) : null,
    ),
    el("td", {}, el("a", { href: link, class: "button" }, t("queue.view"))),
  ];
}

// -- the page --------------------------------------------------------------------------------------

export async function render(view, { context }) {
  const previousTitle = document.title;
  const status = statusLine();
  const camerasNote = el("p", { class: "status error", hidden: true });
  let cameras = new Map();
  try {
    cameras = await context.cameras();
  } catch (error) { // the queue still works; only the filter choices and time zones are missing
    camerasNote.hidden = false;
    camerasNote.textContent = t("queue.cameras_failed", { why: explain(error) });
  }
  const timeZone = (cameraId) => cameras.get(cameraId)?.camera.timezone;

  let filters = savedFilters();
  const rows = new Map(); // incident id → {tr, incident, fresh}
  const tbody = el("tbody", { id: "incident-queue" });
  const empty = el("p", { class: "muted queue-empty" }, t("queue.empty"));
  const counts = el("span", { class: "queue-counts", "aria-live": "polite" });
  const more = el("button", { type: "button", class: "queue-more", onclick: () => loadMore() }, t("queue.more"));
  const [indicator, setLive] = liveIndicator();
  const soundButton = el("button", { type: "button", class: "queue-sound", onclick: toggleSound });
  const soundHint = el("span", { class: "muted small" });
  let muted = localStorage.getItem(MUTE_KEY) === "1";
  let offset = 0;
  let loading = false; // while the list loads, live events wait in `pending` (then replayed)
  let pending = [];
  let stopped = false;

  // -- counters and title
  function refreshCounts() {
    const all = [...rows.values()];
    const open = all.filter((row) => row.incident.state === "open").length;
    const fresh = all.filter((row) => row.fresh).length;
    counts.replaceChildren(
      el("span", { class: fresh ? "badge fresh" : "badge" }, t("queue.counts", { fresh, open, total: all.length })),
    );
    document.title = (fresh ? `(${fresh}) ` : "") + t("queue.doc_title", { open });
    empty.hidden = rows.size > 0;
  }

  function markSeen(row) {
    row.fresh = false;
    row.tr.classList.remove("unseen");
  }

  // -- sound
  function refreshSound() {
    soundButton.textContent = muted ? t("queue.sound_off") : t("queue.sound_on");
    soundButton.setAttribute("aria-pressed", String(!muted));
    soundHint.textContent = !muted && !audioReady() ? t("queue.sound_locked") : "";
  }

  function toggleSound() {
    muted = !muted;
    localStorage.setItem(MUTE_KEY, muted ? "1" : "0");
    refreshSound();
  }

  // The first interaction unlocks the sound (a page opened after logging in usually had one).
  const unlock = () => {
    if (!audioReady()) unlockAudio().then(refreshSound);
  };
  if (navigator.userActivation?.hasBeenActive) unlockAudio().then(refreshSound);
  document.addEventListener("pointerdown", unlock);
  document.addEventListener("keydown", unlock);

  // -- rows
  function fill(row) {
    const { tr, incident } = row;
    tr.replaceChildren(...rowCells(incident, timeZone(incident.camera_id)));
    tr.classList.toggle("ended", incident.state === "ended");
    tr.classList.toggle("open", incident.state === "open");
  }

  function add(incident, { fresh = false, top = false } = {}) {
    const tr = el("tr", {
      "data-incident-id": incident.id,
      onclick: (event) => {
        if (event.target.closest("a")) return; // the link navigates by itself
        location.hash = `#/incidents/${encodeURIComponent(incident.id)}`;
      },
    });
    const row = { tr, incident, fresh };
    tr.addEventListener("click", () => markSeen(row));
    if (fresh) tr.classList.add("new-arrival", "unseen");
    rows.set(incident.id, row);
    fill(row);
    if (!top) {
      tbody.append(tr);
      return;
    }
    tbody.prepend(tr);
    while (rows.size > MAX_ROWS) remove(rows.get(tbody.lastElementChild.dataset.incidentId));
  }

  function remove(row) {
    rows.delete(row.incident.id);
    row.tr.remove();
  }

  /** Apply changes to a listed incident: in place, or out of the list when it no longer matches. */
  function update(row, changes) {
    Object.assign(row.incident, changes);
    if (matches(filters, row.incident)) fill(row);
    else remove(row);
  }

  // -- live events
  function onIncident(message) {
    if (loading) {
      pending.push(["incident", message]);
      return;
    }
    if (!message.id) return;
    const row = rows.get(message.id);
    if (row) {
      // A replay after a reload can be older than what the list already shows.
      if ((message.revision ?? 0) >= (row.incident.revision ?? 0)) update(row, fromMessage(message));
    } else if (message.event === "new") {
      const incident = { ...fromMessage(message), dispatch_status: "new" };
      if (!matches(filters, incident)) return;
      add(incident, { fresh: true, top: true });
      if (!muted) beep();
    }
    refreshCounts();
  }

  function onDispatch(message) {
    if (loading) {
      pending.push(["dispatch", message]);
      return;
    }
    const row = rows.get(message.incident_id);
    const changes = { dispatch_status: message.status };
    if (message.action === "assign" && message.details) {
      changes.assignee = message.details.assignee;
      changes.due_at = message.details.due_at;
    }
    if (row) update(row, changes);
    else if (filters.dispatch_status === message.status) fetchInto(message.incident_id);
    refreshCounts();
  }

  /** An incident that has just entered the filtered view through a dispatch step (e.g. the
   * filter is "reopened" and one was reopened): fetch it and list it. */
  async function fetchInto(id) {
    try {
      const { history, ...incident } = await api("GET", `/incidents/${encodeURIComponent(id)}`);
      if (stopped || rows.has(id) || !matches(filters, incident)) return;
      add(incident, { top: true });
      refreshCounts();
    } catch (_) { /* gone or out of scope: nothing to list */ }
  }

  // -- loading
  async function fetchPage(from) {
    const query = { ...filterQuery(filters), limit: PAGE_SIZE, offset: from };
    const { incidents } = await api("GET", "/incidents", { query });
    more.hidden = incidents.length < PAGE_SIZE;
    return incidents;
  }

  // A filter change and a resync may overlap: only the latest reload fills the list.
  let generation = 0;

  async function reload() {
    const mine = ++generation;
    loading = true;
    try {
      const incidents = await fetchPage(0);
      if (stopped || mine !== generation) return;
      rows.clear();
      tbody.replaceChildren();
      incidents.forEach((incident) => add(incident));
      offset = incidents.length;
      status.show("");
    } catch (error) {
      if (mine === generation) status.show(t("common.error", { why: explain(error) }), "error");
      throw error;
    } finally {
      if (mine === generation) {
        loading = false;
        const waiting = pending;
        pending = [];
        waiting.forEach(([kind, message]) => (kind === "incident" ? onIncident(message) : onDispatch(message)));
        refreshCounts();
      }
    }
  }

  async function loadMore() {
    more.disabled = true;
    try {
      const incidents = await fetchPage(offset);
      offset += incidents.length;
      incidents.forEach((incident) => rows.has(incident.id) || add(incident));
      refreshCounts();
    } catch (error) {
      status.show(t("common.error", { why: explain(error) }), "error");
    } finally {
      more.disabled = false;
    }
  }

  function applyFilters(values) {
    filters = values;
    sessionStorage.setItem(FILTER_KEY, JSON.stringify(filters));
    const fresh = filterForm(cameras, filters, applyFilters);
    form.replaceWith(fresh);
    form = fresh;
    reload().catch(() => {});
  }

  // -- layout
  let form = filterForm(cameras, filters, applyFilters);
  const headers = [
    t("queue.col.started"), t("common.camera"), t("common.rule"), t("common.zone"), t("queue.col.dwell"),
    t("queue.col.last_seen"), t("common.state"), t("queue.col.dispatch"), "",
  ];
  view.append(
    el(
      "div",
      { class: "queue-head" },
      el("h1", {}, t("queue.title")),
      indicator,
      counts,
      el("button", { type: "button", onclick: () => { rows.forEach(markSeen); refreshCounts(); } }, t("queue.mark_seen")),
      el("span", { class: "grow" }),
      soundHint,
      soundButton,
    ),
    form,
    camerasNote,
    status,
    el(
      "div",
      { class: "queue-table" },
      el("table", { class: "queue" }, el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))), tbody),
    ),
    empty,
    more,
  );
  refreshSound();
  refreshCounts();

  // Listen first, load second: what happens while the list loads waits and is replayed after it.
  loading = true;
  const stopEvents = liveEvents({ onIncident, onDispatch, onState: setLive, onResync: reload });
  await reload().catch(() => {});

  return () => {
    stopped = true;
    stopEvents();
    document.removeEventListener("pointerdown", unlock);
    document.removeEventListener("keydown", unlock);
    document.title = previousTitle;
  };
}
