// Assessment (综合评价) for supervisors and admins: #/assessment shows the figures of the cases opened
// in a period — 按期结案率, 结案率, 返工率, 延期率 — per department, handler or area (a supervisor's
// department sees its own rows; the server decides), and the AI's accuracy per rule and camera from
// the reviewers' decisions. Clicking a row lists its cases (through /api/v1/cases and its filters),
// each linking to the case page.

import { api, explain } from "../api.js";
import { clear, el, statusLine } from "../dom.js";
import { addMessages, formatTime, t } from "../i18n.js";
import { caseStatusBadge } from "./cases.js";

addMessages({
  "zh-CN": {
    "assess.title": "综合评价", "assess.by": "统计维度",
    "assess.by.department": "按部门", "assess.by.handler": "按处置人", "assess.by.area": "按区域",
    "assess.since": "立案自", "assess.until": "至", "assess.digits": "区域代码位数",
    "assess.col.key": "对象", "assess.col.cases": "案卷数", "assess.col.closed": "结案数",
    "assess.col.due": "应结案数", "assess.col.postponed": "缓办数", "assess.col.on_time": "按期结案数",
    "assess.col.on_time_rate": "按期结案率", "assess.col.close_rate": "结案率",
    "assess.col.rework_rate": "返工率", "assess.col.extension_rate": "延期率",
    "assess.unassigned": "（未派遣）", "assess.empty": "该时段没有案卷。", "assess.drill": "{key} 的案卷",
    "assess.ai": "AI 准确率（按复核结论）", "assess.ai.rules": "按规则", "assess.ai.cameras": "按摄像机",
    "assess.ai.incidents": "事件数", "assess.ai.reviewed": "已复核", "assess.ai.confirmed": "确认",
    "assess.ai.false_alarms": "误报", "assess.ai.precision": "准确率",
    "assess.note": "按期结案率 = 按期结案数 /（应结案数 − 缓办数）；返工 = 核查未通过（事件被重新打开）或结案后复发。",
    "assess.noDrill": "案卷清单仅对调度员和监督员开放：此处只显示统计。",
  },
  en: {
    "assess.title": "Assessment", "assess.by": "Group by",
    "assess.by.department": "Department", "assess.by.handler": "Handler", "assess.by.area": "Area",
    "assess.since": "Opened from", "assess.until": "until", "assess.digits": "Area code digits",
    "assess.col.key": "Who / where", "assess.col.cases": "Cases", "assess.col.closed": "Closed",
    "assess.col.due": "Due", "assess.col.postponed": "Postponed", "assess.col.on_time": "Closed on time",
    "assess.col.on_time_rate": "On-time rate", "assess.col.close_rate": "Close rate",
    "assess.col.rework_rate": "Rework rate", "assess.col.extension_rate": "Extension rate",
    "assess.unassigned": "(not dispatched)", "assess.empty": "No cases in this period.", "assess.drill": "Cases of {key}",
    "assess.ai": "AI accuracy (reviewers' decisions)", "assess.ai.rules": "Per rule", "assess.ai.cameras": "Per camera",
    "assess.ai.incidents": "Incidents", "assess.ai.reviewed": "Reviewed", "assess.ai.confirmed": "Confirmed",
    "assess.ai.false_alarms": "False alarms", "assess.ai.precision": "Precision",
    "assess.note": "On-time rate = closed on time / (due − postponed); rework = failed verification (an incident reopened) or a recurrence after closing.",
    "assess.noDrill": "Case lists are for dispatchers and supervisors: only the figures are shown here.",
  },
});

const BY = ["department", "handler", "area"];
const RATES = ["on_time_rate", "close_rate", "rework_rate", "extension_rate"];

/** "83.3 %", or "—" when there was nothing to divide by. */
function percent(value) {
  return value === null || value === undefined ? "—" : `${(value * 100).toFixed(1)} %`;
}

/** A datetime-local input's value as an ISO time (local clock), or undefined when empty. */
function isoOrNothing(input) {
  return input.value ? new Date(input.value).toISOString() : undefined;
}

/** The /api/v1/cases filters that list one row's cases. */
function caseFilters(by, row, period) {
  const filters = { ...period, limit: 200 };
  if (by === "department") filters.department = row.key;
  if (by === "handler" && row.key) filters.assignee = row.key;
  if (by === "area") filters.grid = row.key;
  return filters;
}

function table(headings, rows) {
  return el("div", { class: "queue-table" },
    el("table", {}, el("thead", {}, el("tr", {}, headings.map((h) => el("th", {}, h)))), el("tbody", {}, rows)));
}

export function render(view, { session }) {
  // Rows list their cases only for roles that may read cases (the server refuses the others).
  const readsCases = ["dispatcher", "supervisor"].some((role) => session.roles.includes(role));
  const status = statusLine();
  const bySelect = el("select", { name: "by" }, BY.map((b) => el("option", { value: b }, t(`assess.by.${b}`))));
  const monthAgo = new Date(Date.now() - 30 * 86400 * 1000);
  const since = el("input", { type: "datetime-local", name: "since",
    value: new Date(monthAgo.getTime() - monthAgo.getTimezoneOffset() * 60000).toISOString().slice(0, 16) });
  const until = el("input", { type: "datetime-local", name: "until" });
  const digits = el("input", { type: "number", name: "area_digits", min: 1, max: 32, value: 6 });
  const figures = el("div", { id: "assessment-rows" });
  const drill = el("div", { id: "assessment-cases" });
  const accuracy = el("div", { id: "assessment-ai" });

  function period() {
    return { since: isoOrNothing(since), until: isoOrNothing(until) };
  }

  async function showCases(by, row) {
    clear(drill);
    const label = row.key || t("assess.unassigned");
    try {
      const answer = await api("GET", "/cases", { query: caseFilters(by, row, period()) });
      const cases = by === "handler" && !row.key ? answer.cases.filter((c) => !c.assignee) : answer.cases;
      drill.append(el("h2", {}, t("assess.drill", { key: label })),
        table([t("cases.col.opened"), t("cases.col.category"), t("cases.col.department"), t("cases.col.status"), ""],
          cases.map((c) => el("tr", { "data-case": c.id },
            el("td", {}, formatTime(c.opened_at)), el("td", {}, `${c.category_code} ${c.category_name}`),
            el("td", {}, c.department), el("td", {}, caseStatusBadge(c.status)),
            el("td", {}, el("a", { href: `#/cases/${encodeURIComponent(c.id)}`, class: "button" }, t("cases.view")))))));
    } catch (error) {
      status.show(t("common.error", { why: explain(error) }), "error");
    }
  }

  async function load() {
    const by = bySelect.value;
    try {
      const query = { by, ...period(), ...(by === "area" ? { area_digits: digits.value } : {}) };
      const answer = await api("GET", "/assessment", { query });
      clear(figures); clear(drill);
      if (!answer.rows.length) figures.append(el("p", { class: "muted" }, t("assess.empty")));
      else figures.append(table(
        ["key", "cases", "closed", "due", "postponed", "on_time", ...RATES].map((c) => t(`assess.col.${c}`)),
        answer.rows.map((row) => el("tr", readsCases
            ? { class: "clickable", "data-key": row.key, onclick: () => showCases(by, row) }
            : { "data-key": row.key },
          el("td", {}, readsCases
            ? el("button", { type: "button", class: "link" }, row.key || t("assess.unassigned"))
            : row.key || t("assess.unassigned")),
          [row.cases, row.closed, row.due, row.postponed, row.closed_on_time].map((n) => el("td", {}, String(n))),
          RATES.map((rate) => el("td", {}, percent(row[rate])))))));
      const ai = await api("GET", "/assessment/ai", { query: period() });
      clear(accuracy);
      const heads = ["incidents", "reviewed", "confirmed", "false_alarms", "precision"].map((c) => t(`assess.ai.${c}`));
      const aiRows = (rows) => rows.map((r) => el("tr", {}, el("td", {}, r.key),
        [r.incidents, r.reviewed, r.confirmed, r.false_alarms].map((n) => el("td", {}, String(n))),
        el("td", {}, percent(r.precision))));
      accuracy.append(el("h2", {}, t("assess.ai")),
        el("h3", {}, t("assess.ai.rules")), table(["", ...heads], aiRows(ai.rules)),
        el("h3", {}, t("assess.ai.cameras")), table(["", ...heads], aiRows(ai.cameras)));
      status.show("");
    } catch (error) {
      status.show(t("common.error", { why: explain(error) }), "error");
    }
  }

  const form = el("form", { class: "card row queue-filters", onsubmit: (event) => { event.preventDefault(); load(); } },
    el("label", {}, t("assess.by"), bySelect), el("label", {}, t("assess.since"), since),
    el("label", {}, t("assess.until"), until), el("label", {}, t("assess.digits"), digits),
    el("button", { type: "submit", class: "primary" }, t("common.apply")));
  view.append(el("div", { class: "queue-head" }, el("h1", {}, t("assess.title"))), form, status,
    el("p", { class: "muted small" }, t("assess.note")),
    readsCases ? null : el("p", { class: "muted small", id: "assessment-no-drill" }, t("assess.noDrill")),
    figures, drill, accuracy);
  load();
}
