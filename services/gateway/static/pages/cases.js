// City-management cases (案卷) for dispatchers and supervisors: #/cases lists the cases of the
// caller's scope with their deadlines (time left in working time, overdue in red); #/cases/<id>
// shows one case — its code, place, routing and clock, its incidents' evidence, its timeline — and
// the steps the caller may take now (the server lists them in `steps`, and checks them again).
//
// Time left is working time (the city's calendar), computed by the incident store when the page
// loads; both pages reload every minute so it stays current.

import { api, explain } from "../api.js";
import { clear, el, statusLine } from "../dom.js";
import { addMessages, formatSeconds, formatTime, t } from "../i18n.js";
import { actorName, localToIso, ruleName } from "./queue.js";

addMessages({
  "zh-CN": {
    "cases.title": "案卷", "cases.empty": "没有符合条件的案卷。", "cases.more": "加载更多",
    "cases.filter.status": "案卷状态", "cases.filter.overdue": "只看超时", "cases.filter.grid": "单元网格（前缀）",
    "cases.filter.category": "类别代码", "cases.filter.reset": "清除筛选",
    "cases.col.opened": "立案时间", "cases.col.category": "类别", "cases.col.place": "位置",
    "cases.col.department": "责任部门", "cases.col.status": "状态", "cases.col.incidents": "事件数",
    "cases.col.due": "处置时限", "cases.col.left": "剩余时间", "cases.view": "查看",
    "cases.status.new": "待派遣", "cases.status.assigned": "处置中", "cases.status.returned": "已回退",
    "cases.status.postponed": "缓办", "cases.status.closed": "已结案",
    "cases.left": "剩余 {time}", "cases.overdue": "已超时 {time}", "cases.closed_late": "超时结案",
    "cases.closed_on_time": "按期结案", "cases.working_time": "（工作时间）",
    "cases.pending.extension": "延期待审批", "cases.pending.postponement": "缓办待审批",
    "cases.recurrence": "复发", "cases.back": "← 返回案卷列表", "cases.not_found": "无法打开该案卷：{why}",
    "cases.facts": "案卷信息", "cases.id": "案卷编号", "cases.category": "小类", "cases.major": "大类",
    "cases.grid": "单元网格", "cases.address": "地址", "cases.camera": "摄像机 / 区域",
    "cases.department": "责任部门", "cases.routed_by": "派遣依据：{why}", "cases.opened": "立案时间",
    "cases.seen": "发现时间", "cases.dispatched": "派遣时间", "cases.assignee": "处置人/队伍",
    "cases.limit": "处置时限", "cases.limit.hours": "{n} 个工作小时", "cases.limit.days": "{n} 个工作日",
    "cases.due": "截止时间", "cases.time_left": "剩余时间", "cases.counts": "延期 / 缓办 / 回退",
    "cases.pending": "待审批申请", "cases.pending_text": "{kind}：至 {time}，申请人 {actor}，理由：{reason}",
    "cases.returned": "回退", "cases.returned_text": "{department} 回退：{reason}",
    "cases.recurrence_of": "复发自", "cases.recurrences": "复发次数", "cases.closed": "结案",
    "cases.incidents": "事件与证据", "cases.no_snapshot": "暂无抓拍图", "cases.timeline": "案卷记录",
    "cases.actions": "操作", "cases.no_actions": "当前没有您可进行的操作。", "cases.by": "操作人：{actor}",
    "cases.link.opened": "立案事件", "cases.link.same_place": "同一地点", "cases.link.nearby": "邻近摄像机",
    "cases.note": "备注", "cases.reason": "理由", "cases.new_due": "新的截止时间",
    "cases.step.assign": "派遣", "cases.step.assign.assignee": "处置人或队伍",
    "cases.step.assign.department": "转派至部门（可选，仅摄像机所属部门）",
    "cases.step.extend_request": "申请延期", "cases.step.extend_approve": "批准延期",
    "cases.step.extend_reject": "驳回延期", "cases.step.postpone_request": "申请缓办",
    "cases.step.postpone_approve": "批准缓办", "cases.step.postpone_reject": "驳回缓办",
    "cases.step.return": "回退（非本部门职责）", "cases.step.close": "结案",
    "cases.step.close.reason": "结案原因", "cases.done": "已完成：{step}。", "cases.refused": "操作未完成：{why}",
    "cases.ev.open": "立案", "cases.ev.merge": "并入事件 {incident}", "cases.ev.recur": "问题复发，新案卷 {case}",
    "cases.reason.resolved": "已解决", "cases.reason.false_alarm": "误报", "cases.reason.duplicate": "重复",
    "cases.reason.other": "其他", "cases.actor.system": "平台（自动立案、并案）",
  },
  en: {
    "cases.title": "Cases", "cases.empty": "No cases match the filters.", "cases.more": "Load more",
    "cases.filter.status": "Case status", "cases.filter.overdue": "Overdue only", "cases.filter.grid": "Grid (prefix)",
    "cases.filter.category": "Category code", "cases.filter.reset": "Clear filters",
    "cases.col.opened": "Opened", "cases.col.category": "Category", "cases.col.place": "Place",
    "cases.col.department": "Responsible", "cases.col.status": "Status", "cases.col.incidents": "Incidents",
    "cases.col.due": "Due", "cases.col.left": "Time left", "cases.view": "Open",
    "cases.status.new": "To dispatch", "cases.status.assigned": "In hand", "cases.status.returned": "Returned",
    "cases.status.postponed": "Postponed", "cases.status.closed": "Closed",
    "cases.left": "{time} left", "cases.overdue": "overdue by {time}", "cases.closed_late": "closed late",
    "cases.closed_on_time": "closed on time", "cases.working_time": " (working time)",
    "cases.pending.extension": "extension to approve", "cases.pending.postponement": "postponement to approve",
    "cases.recurrence": "recurrence", "cases.back": "← Back to the cases", "cases.not_found": "Cannot open this case: {why}",
    "cases.facts": "Case", "cases.id": "Case number", "cases.category": "Subcategory", "cases.major": "Major category",
    "cases.grid": "Unit grid", "cases.address": "Address", "cases.camera": "Camera / zone",
    "cases.department": "Responsible department", "cases.routed_by": "routed by {why}", "cases.opened": "Opened",
    "cases.seen": "Seen", "cases.dispatched": "Dispatched", "cases.assignee": "Assigned to",
    "cases.limit": "Time limit", "cases.limit.hours": "{n} working hours", "cases.limit.days": "{n} working days",
    "cases.due": "Due", "cases.time_left": "Time left", "cases.counts": "Extensions / postponements / returns",
    "cases.pending": "Pending request", "cases.pending_text": "{kind}: until {time}, asked by {actor}, because: {reason}",
    "cases.returned": "Returned", "cases.returned_text": "returned by {department}: {reason}",
    "cases.recurrence_of": "Recurrence of", "cases.recurrences": "Recurrences", "cases.closed": "Closed",
    "cases.incidents": "Incidents and evidence", "cases.no_snapshot": "No snapshot yet", "cases.timeline": "Timeline",
    "cases.actions": "Steps", "cases.no_actions": "There is no step you can take now.", "cases.by": "by {actor}",
    "cases.link.opened": "opened the case", "cases.link.same_place": "same place", "cases.link.nearby": "nearby camera",
    "cases.note": "Note", "cases.reason": "Reason", "cases.new_due": "New due time",
    "cases.step.assign": "Dispatch", "cases.step.assign.assignee": "Team or person",
    "cases.step.assign.department": "Send to department (optional; the camera's owner only)",
    "cases.step.extend_request": "Ask for an extension", "cases.step.extend_approve": "Approve the extension",
    "cases.step.extend_reject": "Reject the extension", "cases.step.postpone_request": "Ask to postpone",
    "cases.step.postpone_approve": "Approve the postponement", "cases.step.postpone_reject": "Reject the postponement",
    "cases.step.return": "Return (not our remit)", "cases.step.close": "Close",
    "cases.step.close.reason": "Reason", "cases.done": "Done: {step}.", "cases.refused": "Not done: {why}",
    "cases.ev.open": "Case opened", "cases.ev.merge": "Incident {incident} joined", "cases.ev.recur": "The problem came back: case {case}",
    "cases.reason.resolved": "Resolved", "cases.reason.false_alarm": "False alarm", "cases.reason.duplicate": "Duplicate",
    "cases.reason.other": "Other", "cases.actor.system": "the platform (filing)",
  },
});

const STATUSES = ["new", "assigned", "returned", "postponed", "closed"];
const CLOSE_REASONS = ["resolved", "false_alarm", "duplicate", "other"];
const PAGE_SIZE = 100;
const REFRESH_MS = 60000;
const FILTER_KEY = "retina.cases.filters";
// Each step's endpoint under /cases/{id}.
const STEP_PATHS = {
  assign: "assign", extend_request: "extension", extend_approve: "extension/approve",
  extend_reject: "extension/reject", postpone_request: "postponement", postpone_approve: "postponement/approve",
  postpone_reject: "postponement/reject", return: "return", close: "close",
};

function known(key, fallback) {
  const text = t(key);
  return text === key ? fallback : text;
}

export function caseStatusBadge(status) {
  return el("span", { class: `badge case-${status}`, "data-status": status }, known(`cases.status.${status}`, status));
}

/** "2h 10m left" / "overdue by 30m" (working time), or the close's timeliness, or "—". */
function timeLeft(item) {
  if (item.status === "closed") {
    if (!item.due_at) return el("span", { class: "muted" }, "—");
    return el("span", { class: item.overdue ? "overdue" : "muted" }, t(item.overdue ? "cases.closed_late" : "cases.closed_on_time"));
  }
  if (item.working_seconds_left === null || item.working_seconds_left === undefined) return el("span", { class: "muted" }, "—");
  const seconds = Math.abs(item.working_seconds_left);
  return item.overdue
    ? el("span", { class: "overdue" }, t("cases.overdue", { time: formatSeconds(seconds) }))
    : el("span", {}, t("cases.left", { time: formatSeconds(seconds) }));
}

/** Who took a step: a person's name, or the platform for the store's own transitions. */
function who(actor) {
  return actor === "system:cases" ? t("cases.actor.system") : actorName(actor);
}

function categoryText(item) {
  return `${item.category_code} ${item.category_name}`;
}

function placeText(item) {
  return [item.address, item.grid_code].filter(Boolean).join(" · ") || `${item.camera_id} / ${item.zone}`;
}

export function render(view, { params, session, context }) {
  return params[0] ? renderCase(view, params[0], session, context) : renderList(view);
}

// -- the list --------------------------------------------------------------------------------------

function savedFilters() {
  try {
    return JSON.parse(sessionStorage.getItem(FILTER_KEY) || "{}");
  } catch (_) {
    return {};
  }
}

function renderList(view) {
  let filters = savedFilters();
  const status = statusLine();
  const tbody = el("tbody", { id: "case-list" });
  const empty = el("p", { class: "muted", hidden: true }, t("cases.empty"));
  const more = el("button", { type: "button", class: "queue-more", hidden: true, onclick: () => load(true) }, t("cases.more"));
  let offset = 0;

  const statusSelect = el("select", { name: "status" },
    el("option", { value: "" }, t("common.all")),
    STATUSES.map((s) => el("option", { value: s, selected: filters.status === s }, known(`cases.status.${s}`, s))));
  const overdue = el("input", { type: "checkbox", name: "overdue", checked: filters.overdue === "true" });
  const grid = el("input", { name: "grid", value: filters.grid || "", maxlength: 32, pattern: "[0-9A-Za-z\\-]{1,32}" });
  const category = el("input", { name: "category", value: filters.category || "", maxlength: 17, placeholder: "05-05" });
  const form = el("form", { class: "card row queue-filters", onsubmit: (event) => {
    event.preventDefault();
    filters = Object.fromEntries(Object.entries({
      status: statusSelect.value, grid: grid.value.trim(), category: category.value.trim(),
      overdue: overdue.checked ? "true" : "",
    }).filter(([, v]) => v));
    sessionStorage.setItem(FILTER_KEY, JSON.stringify(filters));
    load(false);
  } },
  el("label", {}, t("cases.filter.status"), statusSelect),
  el("label", {}, t("cases.filter.category"), category),
  el("label", {}, t("cases.filter.grid"), grid),
  el("label", { class: "check" }, overdue, t("cases.filter.overdue")),
  el("button", { type: "submit", class: "primary" }, t("common.apply")),
  el("button", { type: "button", onclick: () => {
    filters = {};
    sessionStorage.removeItem(FILTER_KEY);
    statusSelect.value = ""; grid.value = ""; category.value = ""; overdue.checked = false;
    load(false);
  } }, t("cases.filter.reset")));

  function row(item) {
    const link = `#/cases/${encodeURIComponent(item.id)}`;
    const badges = [
      caseStatusBadge(item.status),
      item.pending_request ? el("span", { class: "badge pending" }, t(`cases.pending.${item.pending_request}`)) : null,
      item.recurrence_of ? el("span", { class: "badge recurrence" }, t("cases.recurrence")) : null,
    ];
    return el("tr", { class: item.overdue && item.status !== "closed" ? "overdue-row" : "", "data-case": item.id },
      el("td", {}, el("a", { href: link }, formatTime(item.opened_at))),
      el("td", {}, categoryText(item), el("div", { class: "muted small" }, item.major_name)),
      el("td", {}, placeText(item), el("div", { class: "muted small" }, `${item.camera_id} / ${item.zone}`)),
      el("td", {}, item.department),
      el("td", { class: "case-status" }, badges),
      el("td", {}, String(item.incident_count)),
      el("td", {}, formatTime(item.due_at)),
      el("td", { class: "time-left" }, timeLeft(item)),
      el("td", {}, el("a", { href: link, class: "button" }, t("cases.view"))),
    );
  }

  async function load(append) {
    offset = append ? offset : 0;
    try {
      const answer = await api("GET", "/cases", { query: { ...filters, limit: PAGE_SIZE, offset } });
      if (!append) clear(tbody);
      answer.cases.forEach((item) => tbody.append(row(item)));
      offset += answer.cases.length;
      more.hidden = answer.cases.length < PAGE_SIZE;
      empty.hidden = tbody.children.length > 0;
      status.show("");
    } catch (error) {
      status.show(t("common.error", { why: explain(error) }), "error");
    }
  }

  const head = [t("cases.col.opened"), t("cases.col.category"), t("cases.col.place"), t("cases.col.department"),
    t("cases.col.status"), t("cases.col.incidents"), t("cases.col.due"), t("cases.col.left"), ""];
  view.append(
    el("div", { class: "queue-head" }, el("h1", {}, t("cases.title")),
      el("button", { type: "button", onclick: () => load(false) }, t("common.refresh"))),
    form, status,
    el("div", { class: "queue-table" }, el("table", {}, el("thead", {}, el("tr", {}, head.map((h) => el("th", {}, h)))), tbody)),
    empty, more,
  );
  load(false);
  const timer = setInterval(() => load(false), REFRESH_MS);
  return () => clearInterval(timer);
}

// -- one case --------------------------------------------------------------------------------------

function factList(pairs) {
  const list = el("dl", { class: "incident-facts" });
  for (const [label, value, attrs] of pairs) {
    if (value === undefined || value === null || value === "") continue;
    list.append(el("dt", {}, label), el("dd", attrs || {}, value));
  }
  return list;
}

function describe(entry, timeZone) {
  const d = entry.details || {};
  switch (entry.action) {
    case "open": return t("cases.ev.open") + (d.routed_by ? ` · ${t("cases.routed_by", { why: d.routed_by })}` : "");
    case "merge": return t("cases.ev.merge", { incident: d.incident_id || "—" });
    case "recur": return t("cases.ev.recur", { case: d.recurrence || "—" });
    case "assign":
      return `${t("cases.step.assign")}: ${d.assignee || "—"}` + (d.department ? ` → ${d.department}` : "")
        + (d.due_at ? ` · ${t("cases.due")} ${formatTime(d.due_at, timeZone)}` : "");
    case "extend_request":
    case "postpone_request":
      return `${t(`cases.step.${entry.action}`)}: ${formatTime(d.requested_due_at, timeZone)} · ${d.reason || ""}`;
    case "return": return `${t("cases.step.return")}: ${d.reason || ""}`;
    case "close": return `${t("cases.step.close")}: ${known(`cases.reason.${d.reason}`, d.reason || "")}`;
    default: return known(`cases.step.${entry.action}`, entry.action)
      + (d.requested_by ? ` · ${t("cases.by", { actor: actorName(d.requested_by) })} → ${formatTime(d.due_at, timeZone)}` : "");
  }
}

/** The form of one step: its fields, and the body it sends. */
function stepFields(action, item, session) {
  const note = el("textarea", { name: "note", rows: 2, maxlength: 4096 });
  const reason = el("textarea", { name: "reason", rows: 2, maxlength: 1024, required: true });
  const due = el("input", { type: "datetime-local", name: "due_at", required: true });
  const label = (text, control) => el("label", {}, text, control);
  if (action === "assign") {
    const assignee = el("input", { name: "assignee", required: true, maxlength: 256, value: item.assignee || "" });
    const department = el("input", { name: "department", maxlength: 64, pattern: "[A-Za-z0-9_\\-]{1,64}" });
    const owner = session.department === item.camera_department;
    return {
      fields: [label(t("cases.step.assign.assignee"), assignee),
        owner ? label(t("cases.step.assign.department"), department) : null, label(t("cases.note"), note)],
      body: () => ({ assignee: assignee.value.trim(), note: note.value, ...(department.value.trim() ? { department: department.value.trim() } : {}) }),
    };
  }
  if (action === "extend_request" || action === "postpone_request") {
    return {
      fields: [label(t("cases.new_due"), due), label(t("cases.reason"), reason), label(t("cases.note"), note)],
      body: () => ({ due_at: localToIso(due.value), reason: reason.value, note: note.value }),
    };
  }
  if (action === "return") {
    return { fields: [label(t("cases.reason"), reason), label(t("cases.note"), note)], body: () => ({ reason: reason.value, note: note.value }) };
  }
  if (action === "close") {
    const select = el("select", { name: "reason" }, CLOSE_REASONS.map((r) => el("option", { value: r }, known(`cases.reason.${r}`, r))));
    return { fields: [label(t("cases.step.close.reason"), select), label(t("cases.note"), note)], body: () => ({ reason: select.value, note: note.value }) };
  }
  return { fields: [label(t("cases.note"), note)], body: () => ({ note: note.value }) }; // the decisions
}

async function renderCase(view, id, session, context) {
  const path = `/cases/${encodeURIComponent(id)}`;
  const notice = statusLine();
  const title = el("h1", {});
  const facts = el("div", { class: "card incident-facts-card" });
  const incidents = el("div", { class: "grid case-incidents" });
  const forms = el("div", { class: "incident-forms" });
  const timeline = el("ol", { class: "timeline" });
  let item = null;
  let timeZone;
  // What the incidents and the forms were drawn from: they are drawn again only when it changes (an
  // evidence image fetched is an audited view; a half-typed note must survive the minute's reload).
  let drawn = { incidents: "", forms: "" };

  function drawFacts() {
    const limit = item.limit_working_hours
      ? t("cases.limit.hours", { n: item.limit_working_hours })
      : t("cases.limit.days", { n: item.limit_working_days });
    const pending = item.pending_request ? t("cases.pending_text", {
      kind: t(`cases.pending.${item.pending_request}`), time: formatTime(item.pending_due_at, timeZone),
      actor: actorName(item.pending_by), reason: item.pending_reason,
    }) : "";
    clear(facts).append(el("h2", {}, t("cases.facts")), factList([
      [t("cases.id"), item.id],
      [t("cases.category"), categoryText(item)],
      [t("cases.major"), `${item.major_code} ${item.major_name}`],
      [t("cases.address"), item.address],
      [t("cases.grid"), item.grid_code],
      [t("cases.camera"), `${item.camera_id} / ${item.zone}`],
      [t("cases.department"), `${item.department} (${t("cases.routed_by", { why: item.routed_by })})`],
      [t("cases.opened"), formatTime(item.opened_at, timeZone)],
      [t("cases.seen"), `${formatTime(item.first_seen_at, timeZone)} – ${formatTime(item.last_seen_at, timeZone)}`],
      [t("cases.limit"), limit],
      [t("cases.dispatched"), item.dispatched_at ? formatTime(item.dispatched_at, timeZone) : ""],
      [t("cases.assignee"), item.assignee],
      [t("cases.due"), item.due_at ? formatTime(item.due_at, timeZone) : "", item.overdue ? { class: "overdue" } : null],
      [t("cases.time_left"), timeLeft(item)],
      [t("cases.counts"), `${item.extensions} / ${item.postponements} / ${item.returns}`],
      [t("cases.pending"), pending],
      [t("cases.returned"), item.return_reason ? t("cases.returned_text", { department: item.returned_by, reason: item.return_reason }) : ""],
      [t("cases.recurrence_of"), item.recurrence_of ? el("a", { href: `#/cases/${encodeURIComponent(item.recurrence_of)}` }, item.recurrence_of) : ""],
      [t("cases.recurrences"), item.recurrences ? String(item.recurrences) : ""],
      [t("cases.closed"), item.closed_at ? `${formatTime(item.closed_at, timeZone)} · ${known(`cases.reason.${item.close_reason}`, item.close_reason)} · ${actorName(item.closed_by)}${item.close_note ? ` · ${item.close_note}` : ""}` : ""],
    ]));
  }

  function drawIncidents() {
    clear(incidents).append(...item.incidents.map((incident) => el("figure", { class: "card case-incident", "data-incident": incident.id },
      incident.snapshot_url
        ? el("a", { href: incident.snapshot_url, target: "_blank", rel: "noopener" },
          el("img", { class: "evidence", src: incident.snapshot_url, alt: t("cases.incidents"), loading: "lazy" }))
        : el("p", { class: "muted" }, t("cases.no_snapshot")),
      incident.clip_url ? el("video", { class: "evidence", src: incident.clip_url, controls: true, preload: "none" }) : null,
      el("figcaption", { class: "small" },
        el("strong", {}, ruleName(incident.algorithm)), ` · ${formatTime(incident.started_at, timeZone)}`,
        el("div", { class: "muted" }, `${incident.camera_id} / ${incident.zone} · ${t(`cases.link.${incident.link}`)}`)))));
  }

  function drawForms() {
    clear(forms);
    if (!item.steps.length) {
      forms.append(el("p", { class: "muted" }, t("cases.no_actions")));
      return;
    }
    for (const action of item.steps) {
      const spec = stepFields(action, item, session);
      const submit = el("button", { type: "submit", class: action === "close" || action.endsWith("_reject") ? "danger" : "primary" },
        t(`cases.step.${action}`));
      const form = el("form", { class: "card incident-step", "data-action": action, onsubmit: async (event) => {
        event.preventDefault();
        submit.disabled = true;
        try {
          await api("POST", `${path}/${STEP_PATHS[action]}`, { body: spec.body() });
          form.reset();
          await reload();
          notice.show(t("cases.done", { step: t(`cases.step.${action}`) }), "ok");
        } catch (error) {
          if (error.status === 409) await reload();
          notice.show(t("cases.refused", { why: explain(error) }), "error");
        } finally {
          submit.disabled = false;
        }
      } }, el("h3", {}, t(`cases.step.${action}`)), ...spec.fields, submit);
      forms.append(form);
    }
  }

  function drawTimeline() {
    clear(timeline).append(...item.history.map((entry) => el("li", { class: `timeline-case case-${entry.action}`, "data-action": entry.action },
      el("div", { class: "timeline-head" }, el("time", { datetime: entry.at }, formatTime(entry.at, timeZone)),
        el("strong", {}, describe(entry, timeZone)), caseStatusBadge(entry.status)),
      el("div", { class: "muted small" }, `${entry.department} · ${t("cases.by", { actor: who(entry.actor) })}`),
      entry.note ? el("p", { class: "timeline-note" }, entry.note) : null)));
  }

  async function reload() {
    item = await api("GET", path);
    timeZone = await context.timeZone(item.camera_id).catch(() => undefined);
    title.replaceChildren(`${categoryText(item)} · ${item.address || item.camera_id} `, caseStatusBadge(item.status));
    drawFacts();
    const incidentsKey = item.incidents.map((i) => `${i.id}|${i.snapshot_url}|${i.clip_url}`).join(",");
    if (incidentsKey !== drawn.incidents) drawIncidents();
    const formsKey = `${item.status}|${item.pending_request}|${item.department}|${item.steps.join(",")}`;
    if (formsKey !== drawn.forms) drawForms();
    drawn = { incidents: incidentsKey, forms: formsKey };
    drawTimeline();
  }

  view.append(
    el("p", {}, el("a", { href: "#/cases" }, t("cases.back"))),
    el("div", { class: "incident-head" }, title), notice,
    el("div", { class: "split" },
      el("div", {}, el("h2", {}, t("cases.incidents")), incidents, el("h2", {}, t("cases.timeline")), timeline),
      el("div", {}, facts, el("h2", {}, t("cases.actions")), forms)),
  );
  try {
    await reload();
  } catch (error) {
    view.replaceChildren(el("p", {}, el("a", { href: "#/cases" }, t("cases.back"))),
      el("p", { class: "status error" }, t("cases.not_found", { why: explain(error) })));
    return null;
  }
  const timer = setInterval(() => reload().catch(() => {}), REFRESH_MS);
  return () => clearInterval(timer);
}
