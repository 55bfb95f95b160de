// One incident (#/incidents/<id>): its evidence, where the camera is, its timeline, and the
// dispatch loop (分拨-处置-核查) as forms.
//
// The page reloads the incident (GET /api/v1/incidents/{id}) after each step and whenever a live
// event about it arrives, so the platform's automatic verification shows up by itself. A reload
// redraws only what changed: the facts always; the evidence when a new snapshot or the clip came;
// the forms when the dispatch status changed (so a half-typed note survives an update of the dwell
// time); the timeline only gets its new entries (each evidence image viewed is audited).

import { api, explain } from "../api.js";
import { clear, el, statusLine } from "../dom.js";
import { addMessages, formatSeconds, formatTime, t } from "../i18n.js";
import { renderMap } from "../map.js";
import {
  actorName, dispatchBadge, liveEvents, liveIndicator, localToIso, ruleName, stateBadge, statusName,
} from "./queue.js";

addMessages({
  "zh-CN": {
    "incident.back": "← 返回事件队列",
    "incident.title": "{rule} · {camera}",
    "incident.snapshot": "抓拍", "incident.no_snapshot": "暂无抓拍图",
    "incident.clip": "证据视频", "incident.no_clip": "证据视频尚未到达（通常在事件开始后数秒内上传）。",
    "incident.facts": "事件信息", "incident.place": "位置", "incident.started": "开始时间",
    "incident.last_seen": "最后出现", "incident.ended": "结束时间", "incident.dwell": "持续时间",
    "incident.dwell_ongoing": "{dwell}（仍在持续）", "incident.plate": "车牌", "incident.details": "其他信息",
    "plate.blue": "蓝牌", "plate.green": "绿牌", "plate.yellow": "黄牌", "plate.white": "白牌", "plate.black": "黑牌",
    "incident.dispatch": "处置状态", "incident.assignee": "处置人/队伍", "incident.due": "截止时间",
    "incident.overdue": "{time}（已超时）", "incident.verify_due": "自动核查时间",
    "incident.closed": "关闭", "incident.close_note": "关闭备注", "incident.closed_by": "{reason} · {actor}", "incident.id": "编号",
    "incident.end_reason": "结束原因",
    "incident.timeline": "处置记录", "incident.actions": "处置",
    "incident.no_actions": "当前状态下没有可进行的操作。",
    "incident.note": "备注", "incident.photo": "现场照片（可选，JPEG 或 PNG）", "incident.submit": "提交",
    "incident.assign.title": "分派", "incident.assign.assignee": "处置人或队伍",
    "incident.assign.due": "截止时间（可选）", "incident.assign.submit": "分派",
    "incident.handle.title": "处置完毕",
    "incident.handle.hint": "提交后，平台将在 {seconds} 秒后自动查看摄像机画面进行核查：仍存在则重开，已消除则核查通过。",
    "incident.handle.hint_manual": "本系统未开启自动核查：提交后请人工核查。",
    "incident.handle.submit": "提交处置结果",
    "incident.verify.title": "人工核查", "incident.verify.outcome": "核查结果",
    "incident.verify.submit": "提交核查结果",
    "incident.close.title": "关闭事件", "incident.close.reason": "关闭原因", "incident.close.submit": "关闭",
    "incident.reopen.title": "重新打开", "incident.reopen.submit": "重新打开",
    "incident.outcome.clear": "已消除（核查通过）", "incident.outcome.present": "仍存在（重开）",
    "incident.reason.resolved": "已解决", "incident.reason.false_alarm": "误报",
    "incident.reason.duplicate": "重复事件", "incident.reason.other": "其他",
    "incident.end.left_zone": "离开区域", "incident.end.moved": "已移走", "incident.end.lost": "目标丢失",
    "incident.end.end_of_stream": "视频流结束", "incident.end.camera_removed": "摄像机已移除",
    "incident.done": "已完成：{step}。", "incident.done.verifying": "已提交处置结果。平台将于 {time} 自动核查。",
    "incident.done.handled": "已提交处置结果，请人工核查。",
    "incident.refused": "操作未完成：{why}",
    "incident.changed": "处置状态已变为“{status}”。",
    "incident.ev.new": "事件发生", "incident.ev.update": "事件更新", "incident.ev.end": "事件结束",
    "incident.ev.assign": "分派给 {assignee}", "incident.ev.assign_due": "，截止 {time}",
    "incident.ev.handle": "处置完毕", "incident.ev.handle_verify": "，平台将于 {time} 自动核查",
    "incident.ev.verify_clear": "核查：已消除，核查通过", "incident.ev.verify_present": "核查：仍存在，已重开",
    "incident.ev.close": "关闭：{reason}", "incident.ev.reopen": "重新打开",
    "incident.ev.dwell": "持续 {dwell}", "incident.by": "操作人：{actor}",
    "incident.evidence": "证据图片", "incident.not_found": "无法打开该事件：{why}",
  },
  en: {
    "incident.back": "← Back to the queue",
    "incident.title": "{rule} · {camera}",
    "incident.snapshot": "Snapshot", "incident.no_snapshot": "No snapshot yet",
    "incident.clip": "Evidence clip",
    "incident.no_clip": "The evidence clip has not arrived yet (it is usually uploaded a few seconds after the incident starts).",
    "incident.facts": "Incident", "incident.place": "Location", "incident.started": "Started",
    "incident.last_seen": "Last seen", "incident.ended": "Ended", "incident.dwell": "Dwell",
    "incident.dwell_ongoing": "{dwell} (ongoing)", "incident.plate": "Plate", "incident.details": "Other facts",
    "plate.blue": "blue plate", "plate.green": "green plate", "plate.yellow": "yellow plate", "plate.white": "white plate",
    "plate.black": "black plate",
    "incident.dispatch": "Dispatch status", "incident.assignee": "Assigned to", "incident.due": "Due",
    "incident.overdue": "{time} (overdue)", "incident.verify_due": "Automatic verification at",
    "incident.closed": "Closed", "incident.close_note": "Closing note", "incident.closed_by": "{reason} · {actor}", "incident.id": "Id",
    "incident.end_reason": "End reason",
    "incident.timeline": "Timeline", "incident.actions": "Dispatch",
    "incident.no_actions": "No step can be taken in the current status.",
    "incident.note": "Note", "incident.photo": "Photo from the field (optional, JPEG or PNG)",
    "incident.submit": "Submit",
    "incident.assign.title": "Assign", "incident.assign.assignee": "Team or person",
    "incident.assign.due": "Due (optional)", "incident.assign.submit": "Assign",
    "incident.handle.title": "Handled",
    "incident.handle.hint": "After this, the platform looks at the camera again in {seconds} s and verifies by itself: still there reopens the incident, gone verifies it.",
    "incident.handle.hint_manual": "Automatic verification is off here: verify by hand after handling.",
    "incident.handle.submit": "Record the handling",
    "incident.verify.title": "Verify by hand", "incident.verify.outcome": "Outcome",
    "incident.verify.submit": "Record the verification",
    "incident.close.title": "Close", "incident.close.reason": "Reason", "incident.close.submit": "Close",
    "incident.reopen.title": "Reopen", "incident.reopen.submit": "Reopen",
    "incident.outcome.clear": "Gone (verified)", "incident.outcome.present": "Still there (reopen)",
    "incident.reason.resolved": "Resolved", "incident.reason.false_alarm": "False alarm",
    "incident.reason.duplicate": "Duplicate", "incident.reason.other": "Other",
    "incident.end.left_zone": "left the zone", "incident.end.moved": "moved away", "incident.end.lost": "lost from view",
    "incident.end.end_of_stream": "end of the stream", "incident.end.camera_removed": "camera removed",
    "incident.done": "Done: {step}.", "incident.done.verifying": "Handling recorded. The platform verifies at {time}.",
    "incident.done.handled": "Handling recorded; please verify by hand.",
    "incident.refused": "Not done: {why}",
    "incident.changed": "The dispatch status is now “{status}”.",
    "incident.ev.new": "Incident opened", "incident.ev.update": "Incident updated", "incident.ev.end": "Incident ended",
    "incident.ev.assign": "Assigned to {assignee}", "incident.ev.assign_due": ", due {time}",
    "incident.ev.handle": "Handled", "incident.ev.handle_verify": ", automatic verification at {time}",
    "incident.ev.verify_clear": "Verified: gone", "incident.ev.verify_present": "Verified: still there, reopened",
    "incident.ev.close": "Closed: {reason}", "incident.ev.reopen": "Reopened",
    "incident.ev.dwell": "dwell {dwell}", "incident.by": "by {actor}",
    "incident.evidence": "evidence image", "incident.not_found": "Cannot open this incident: {why}",
  },
});

// Which steps the dispatch status allows (the incident store's rules; the server decides anyway).
const STEPS = {
  assign: ["new", "assigned", "reopened", "handled"],
  handle: ["new", "assigned", "reopened"],
  verify: ["handled", "verifying"],
  close: ["new", "assigned", "handled", "verifying", "verified", "reopened"],
  reopen: ["closed", "verified"],
};
const CLOSE_REASONS = ["resolved", "false_alarm", "duplicate", "other"];
const CLIP_POLL_MS = 15000; // the clip arrives without a live event: look again while it may come
const CLIP_WAIT_MS = 10 * 60 * 1000;
const PLATE_KEYS = ["plate", "plate_text"];

function known(key, fallback) {
  const text = t(key);
  return text === key ? fallback : text;
}

const endReason = (reason) => known(`incident.end.${reason}`, reason);
const closeReason = (reason) => known(`incident.reason.${reason}`, reason || "—");

/** A <dl> from [label, value] pairs; pairs whose value is empty are left out. */
function factList(pairs) {
  const list = el("dl", { class: "incident-facts" });
  for (const [label, value, attrs] of pairs) {
    if (value === undefined || value === null || value === "") continue;
    list.append(el("dt", {}, label), el("dd", attrs || {}, value));
  }
  return list;
}

// -- the timeline ----------------------------------------------------------------------------------

/** What a history entry says happened, in words. */
function describe(entry, timeZone) {
  const d = entry.details || {};
  if (entry.kind === "incident") {
    let text = known(`incident.ev.${entry.action}`, entry.action);
    if (entry.action === "end" && d.end_reason) text += ` · ${endReason(d.end_reason)}`;
    if (d.dwell_seconds !== undefined) text += ` · ${t("incident.ev.dwell", { dwell: formatSeconds(d.dwell_seconds) })}`;
    return text;
  }
  switch (entry.action) {
    case "assign":
      return t("incident.ev.assign", { assignee: d.assignee || "—" })
        + (d.due_at ? t("incident.ev.assign_due", { time: formatTime(d.due_at, timeZone) }) : "");
    case "handle":
      return t("incident.ev.handle")
        + (d.verify_due_at ? t("incident.ev.handle_verify", { time: formatTime(d.verify_due_at, timeZone) }) : "");
    case "verify":
      return t(d.outcome === "present" ? "incident.ev.verify_present" : "incident.ev.verify_clear");
    case "close":
      return t("incident.ev.close", { reason: closeReason(d.reason) });
    case "reopen":
      return t("incident.ev.reopen");
    default:
      return entry.action;
  }
}

function timelineEntry(entry, timeZone) {
  const outcome = entry.action === "verify" ? ` verify-${entry.details?.outcome || ""}` : "";
  return el(
    "li",
    { class: `timeline-${entry.kind}${outcome}`, "data-kind": entry.kind, "data-action": entry.action },
    el(
      "div",
      { class: "timeline-head" },
      el("time", { datetime: entry.at }, formatTime(entry.at, timeZone)),
      el("strong", {}, describe(entry, timeZone)),
      entry.kind === "dispatch" && entry.status ? dispatchBadge(entry.status) : null,
    ),
    entry.actor ? el("div", { class: "muted small" }, t("incident.by", { actor: actorName(entry.actor) })) : null,
    entry.note ? el("p", { class: "timeline-note" }, entry.note) : null,
    entry.media_url
      ? el(
        "a",
        { href: entry.media_url, target: "_blank", rel: "noopener" },
        el("img", { class: "evidence timeline-image", src: entry.media_url, alt: t("incident.evidence"), loading: "lazy" }),
      )
      : null,
  );
}

/** An entry's identity, to tell which entries the timeline already shows. */
function entryKey(entry) {
  return [entry.kind, entry.action, entry.revision, entry.at, entry.details?.seq ?? ""].join("|");
}

// -- the forms of the dispatch loop ----------------------------------------------------------------

const field = (label, control) => el("label", {}, label, control);
const note = () => el("textarea", { name: "note", rows: 2, maxlength: 4096 });
const photo = () => el("input", { name: "photo", type: "file", accept: "image/jpeg,image/png" });

/** Multipart body for handle/verify: the photo only when one was chosen. */
function multipart(form, names) {
  const body = new FormData();
  for (const name of names) body.append(name, form.elements[name].value);
  const file = form.elements.photo.files[0];
  if (file) body.append("photo", file);
  return body;
}

const FORMS = {
  assign: (incident) => ({
    fields: [
      field(t("incident.assign.assignee"), el("input", {
        name: "assignee", required: true, maxlength: 256, value: incident.assignee || "",
      })),
      field(t("incident.assign.due"), el("input", { name: "due_at", type: "datetime-local" })),
      field(t("incident.note"), note()),
    ],
    body: (form) => ({
      assignee: form.elements.assignee.value.trim(),
      due_at: localToIso(form.elements.due_at.value) || null,
      note: form.elements.note.value,
    }),
  }),
  handle: (_incident, config) => ({
    fields: [
      el("p", { class: "muted small" }, config.verify_seconds > 0
        ? t("incident.handle.hint", { seconds: config.verify_seconds })
        : t("incident.handle.hint_manual")),
      field(t("incident.note"), note()),
      field(t("incident.photo"), photo()),
    ],
    body: (form) => multipart(form, ["note"]),
  }),
  verify: () => ({
    fields: [
      field(t("incident.verify.outcome"), el(
        "select",
        { name: "outcome", required: true },
        ["clear", "present"].map((o) => el("option", { value: o }, t(`incident.outcome.${o}`))),
      )),
      field(t("incident.note"), note()),
      field(t("incident.photo"), photo()),
    ],
    body: (form) => multipart(form, ["outcome", "note"]),
  }),
  close: () => ({
    fields: [
      field(t("incident.close.reason"), el(
        "select",
        { name: "reason", required: true },
        CLOSE_REASONS.map((r) => el("option", { value: r }, closeReason(r))),
      )),
      field(t("incident.note"), note()),
    ],
    body: (form) => ({ reason: form.elements.reason.value, note: form.elements.note.value }),
  }),
  reopen: () => ({
    fields: [field(t("incident.note"), note())],
    body: (form) => ({ note: form.elements.note.value }),
  }),
};

// -- the page --------------------------------------------------------------------------------------

export async function render(view, { params, context }) {
  const id = params[0];
  if (!id) {
    location.hash = "#/queue";
    return null;
  }
  const path = `/incidents/${encodeURIComponent(id)}`;
  const back = el("a", { href: "#/queue", class: "incident-back" }, t("incident.back"));
  const consoleConfig = await context.config().catch(() => ({ verify_seconds: 0 }));
  let incident;
  try {
    incident = await api("GET", path);
  } catch (error) {
    view.append(back, el("p", { class: "status error" }, t("incident.not_found", { why: explain(error) })));
    return null;
  }

  let cameras = new Map();
  try {
    cameras = await context.cameras();
  } catch (_) { /* without the camera list: the incident's own name and location, the browser's time zone */ }
  const record = cameras.get(incident.camera_id);
  const timeZone = record?.camera.timezone;

  // The page's parts; each is redrawn on its own (see the top of this file).
  const title = el("h1", {});
  const [indicator, setLive] = liveIndicator();
  const facts = el("div", { class: "card incident-facts-card" });
  const media = el("div", { class: "incident-media" });
  const mapBox = el("div", { class: "incident-map" });
  const notice = statusLine(); // outcomes of steps: kept across redraws of the forms
  const forms = el("div", { class: "incident-forms" });
  const timeline = el("ol", { id: "timeline", class: "timeline" });
  const shown = { media: null, status: null, entries: [] };
  let stepTaken = false; // this page just took a step: redraw the forms, without "status changed"
  let snapshotVersion = 0; // bumped when a live event brings a better snapshot
  let stopped = false;

  function drawTitle() {
    title.replaceChildren(t("incident.title", {
      rule: ruleName(incident.algorithm), camera: incident.camera_name || incident.camera_id,
    }));
  }

  function drawFacts() {
    const details = incident.details || {};
    // The plate read on the object's track (only for the roles that see originals), else a rule's own.
    const read = incident.plate ? `${incident.plate.text} · ${t(`plate.${incident.plate.colour}`)}` : "";
    const plate = read || PLATE_KEYS.map((key) => details[key]).find((value) => value);
    const others = Object.entries(details).filter(([key]) => !PLATE_KEYS.includes(key));
    const status = incident.dispatch_status || "new";
    const open = incident.state === "open";
    const due = incident.due_at ? formatTime(incident.due_at, timeZone) : "";
    const overdue = due && Date.parse(incident.due_at) < Date.now() && !["verified", "closed"].includes(status);
    clear(facts).append(
      el("h2", {}, t("incident.facts")),
      factList([
        [t("incident.dispatch"), dispatchBadge(status, { id: "dispatch-status" })],
        [t("common.state"), stateBadge(incident.state)],
        [t("incident.plate"), plate ? el("span", { class: "plate" }, String(plate)) : ""],
        [t("common.camera"), incident.camera_name || incident.camera_id],
        [t("common.rule"), ruleName(incident.algorithm)],
        [t("common.zone"), incident.zone],
        [t("incident.started"), formatTime(incident.started_at, timeZone)],
        [t("incident.last_seen"), formatTime(incident.last_seen_at, timeZone)],
        [t("incident.ended"), incident.ended_at ? formatTime(incident.ended_at, timeZone) : ""],
        [t("incident.end_reason"), incident.end_reason ? endReason(incident.end_reason) : ""],
        [t("incident.dwell"), open
          ? t("incident.dwell_ongoing", { dwell: formatSeconds(incident.dwell_seconds) })
          : formatSeconds(incident.dwell_seconds)],
        [t("incident.assignee"), incident.assignee],
        [t("incident.due"), overdue ? t("incident.overdue", { time: due }) : due, overdue ? { class: "overdue" } : null],
        [t("incident.verify_due"), incident.verify_due_at ? formatTime(incident.verify_due_at, timeZone) : ""],
        [t("incident.closed"), status === "closed" && incident.close_reason
          ? t("incident.closed_by", { reason: closeReason(incident.close_reason), actor: actorName(incident.closed_by) })
          : ""],
        [t("incident.close_note"), status === "closed" ? incident.close_note : ""],
        [t("incident.details"), others.length
          ? others.map(([key, value]) => `${key}: ${typeof value === "object" ? JSON.stringify(value) : value}`).join(" · ")
          : ""],
        [t("incident.id"), el("code", {}, incident.id)],
      ]),
    );
  }

  /** Snapshot and clip: redrawn only when either changes (a redraw restarts the video). */
  function drawMedia() {
    const key = `${incident.snapshot_url}|${incident.clip_url}|${incident.plate_url}|${snapshotVersion}`;
    if (shown.media === key) return;
    shown.media = key;
    const snapshotSrc = incident.snapshot_url && (snapshotVersion ? `${incident.snapshot_url}?v=${snapshotVersion}` : incident.snapshot_url);
    clear(media).append(
      el("h2", {}, t("incident.snapshot")),
      snapshotSrc
        ? el("img", { class: "evidence incident-snapshot", src: snapshotSrc, alt: t("incident.snapshot") })
        : el("p", { class: "muted" }, t("incident.no_snapshot")),
      el("h2", {}, t("incident.clip")),
      incident.clip_url
        ? el("video", { class: "evidence incident-clip", src: incident.clip_url, controls: true, preload: "metadata", playsinline: true })
        : el("p", { class: "muted" }, t("incident.no_clip")),
      incident.plate_url ? el("h2", {}, t("incident.plate")) : "",
      incident.plate_url ? el("img", { class: "evidence incident-plate", src: incident.plate_url, alt: t("incident.plate") }) : "",
    );
  }

  async function drawMap() {
    let tileUrl = null;
    try {
      tileUrl = (await context.config()).map_tile_url || null;
    } catch (_) { /* the map still shows the camera without tiles */ }
    if (stopped) return;
    const location = record?.camera.location || incident.location || {};
    renderMap(mapBox, [{
      id: incident.camera_id, label: incident.camera_name || incident.camera_id,
      lat: location.lat, lon: location.lon, active: true,
    }], { tileUrl, height: 240 });
  }

  /** The forms the current status allows; redrawn only when the status changes. */
  function drawForms() {
    const status = incident.dispatch_status || "new";
    if (shown.status === status && !stepTaken) return;
    if (shown.status !== null && shown.status !== status && !stepTaken) {
      notice.show(t("incident.changed", { status: statusName(status) }), "ok"); // someone else's step
    }
    shown.status = status;
    stepTaken = false;
    const allowed = Object.keys(STEPS).filter((action) => STEPS[action].includes(status));
    clear(forms).append(
      ...allowed.map((action) => stepForm(action)),
      allowed.length ? "" : el("p", { class: "muted" }, t("incident.no_actions")), // native append: null would show as "null"
    );
  }

  function stepForm(action) {
    const spec = FORMS[action](incident, consoleConfig);
    const submit = el("button", { type: "submit", class: action === "close" ? "danger" : "primary" }, t(`incident.${action}.submit`));
    const form = el(
      "form",
      { class: "card incident-step", "data-action": action, onsubmit: (event) => {
        event.preventDefault();
        takeStep(action, form, spec.body(form), submit);
      } },
      el("h3", {}, t(`incident.${action}.title`)),
      ...spec.fields,
      submit,
    );
    return form;
  }

  async function takeStep(action, form, body, button) {
    button.disabled = true;
    try {
      const updated = await api("POST", `${path}/${action}`, { body });
      form.reset();
      let message = t("incident.done", { step: t(`incident.${action}.title`) });
      if (action === "handle") {
        message = updated.dispatch_status === "verifying"
          ? t("incident.done.verifying", { time: formatTime(updated.verify_due_at, timeZone) })
          : t("incident.done.handled");
      }
      stepTaken = true;
      await reload();
      notice.show(message, "ok");
    } catch (error) {
      // 409: someone (or the platform) moved it on; show where it is now, then why this failed.
      if (error.status === 409) await reload();
      notice.show(t("incident.refused", { why: explain(error) }), "error");
    } finally {
      button.disabled = false;
    }
  }

  /** Only the entries not shown yet are added (each evidence image fetched is an audited view);
   * when the history is not an extension of what is shown, it is drawn again. */
  function drawTimeline() {
    const history = incident.history || [];
    const keys = history.map(entryKey);
    const continues = shown.entries.every((key, i) => keys[i] === key);
    if (!continues) {
      clear(timeline);
      shown.entries = [];
    }
    history.slice(shown.entries.length).forEach((entry) => timeline.append(timelineEntry(entry, timeZone)));
    shown.entries = keys;
  }

  function draw() {
    drawTitle();
    drawFacts();
    drawMedia();
    drawForms();
    drawTimeline();
  }

  // -- reloading: at most one request at a time; events during one ask for another after it
  let inFlight = null;
  let again = false;
  let soon = null;

  async function reload() {
    if (inFlight) {
      again = true;
      return inFlight;
    }
    inFlight = (async () => {
      try {
        do {
          again = false;
          const fresh = await api("GET", path);
          if (stopped) return;
          incident = fresh;
          draw();
        } while (again);
      } catch (error) {
        if (!stopped) notice.show(t("common.error", { why: explain(error) }), "error");
      } finally {
        inFlight = null;
      }
    })();
    return inFlight;
  }

  /** A burst of events (several updates, a step and its verification) makes one reload. */
  function reloadSoon() {
    clearTimeout(soon);
    soon = setTimeout(reload, 300);
  }

  // The clip is stored a few seconds after the incident's "new" event, and no event says so: look
  // again now and then while it may still come.
  const clipPoll = setInterval(() => {
    const opened = (incident.history || []).find((e) => e.kind === "incident" && e.action === "new");
    const young = Date.now() - Date.parse(opened ? opened.at : incident.started_at) < CLIP_WAIT_MS;
    if (!incident.clip_url && young) reload();
  }, CLIP_POLL_MS);

  view.append(
    el("div", { class: "incident-head" }, back, indicator),
    title,
    el(
      "div",
      { class: "split incident-page" },
      el("div", {}, media, el("h2", {}, t("incident.timeline")), timeline),
      el("div", {}, facts, el("h2", {}, t("incident.place")), mapBox, el("h2", {}, t("incident.actions")), notice, forms),
    ),
  );
  draw();
  drawMap().catch(() => {});

  const stopEvents = liveEvents({
    onIncident: (message) => {
      if (message.id !== id) return;
      if (message.snapshot) snapshotVersion += 1;
      reloadSoon();
    },
    onDispatch: (message) => {
      if (message.incident_id === id) reloadSoon();
    },
    onState: setLive,
    onResync: reload,
  });

  return () => {
    stopped = true;
    stopEvents();
    clearTimeout(soon);
    clearInterval(clipPoll);
  };
}
