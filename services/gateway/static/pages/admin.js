// Administration (admin): users, API tokens, the audit trail and the false-alarm ratio per camera
// and rule. "#/admin/<tab>" picks the tab: users (default), tokens, audit, false-alarms.

import { api, explain } from "../api.js";
import { clear, el, statusLine } from "../dom.js";
import { addMessages, formatTime, t } from "../i18n.js";
import { renderFalseAlarms } from "./cameras.js";

const ROLES = ["dispatcher", "supervisor", "police", "ops", "admin"];
const TABS = ["users", "tokens", "audit", "false-alarms"];
const AUDIT_PAGE = 50;
const AUDIT_ACTIONS = ["login", "search", "media.view", "dispatch.", "camera.", "user.", "token.", "audit.read"];

addMessages({
  "zh-CN": {
    "admin.title": "管理", "admin.tab.users": "用户", "admin.tab.tokens": "API 令牌", "admin.tab.audit": "审计日志",
    "admin.tab.false-alarms": "误报统计",
    "admin.name": "用户名", "admin.roles": "角色", "admin.source": "来源", "admin.created": "创建时间",
    "admin.state": "状态", "admin.active": "正常", "admin.disabledState": "已停用", "admin.disable": "停用",
    "admin.enable": "启用", "admin.confirmDisable": "停用用户 {name}？其登录会话将立即结束。",
    "admin.confirmDisableSelf": "你要停用自己的账号 {name}，你会被立即登出。继续？",
    "admin.addUser": "添加用户", "admin.password": "密码（至少 10 个字符）", "admin.add": "添加",
    "admin.userAdded": "已添加用户 {name}", "admin.needRole": "请至少选择一个角色", "admin.noUsers": "没有用户",
    "admin.tokenId": "编号", "admin.user": "用户", "admin.label": "用途", "admin.expires": "过期时间",
    "admin.lastUsed": "最近使用", "admin.revoked": "已吊销", "admin.expired": "已过期", "admin.revoke": "吊销",
    "admin.confirmRevoke": "吊销令牌 {id}（{label}）？使用它的系统将无法再访问。", "admin.createToken": "创建令牌",
    "admin.days": "有效天数", "admin.create": "创建", "admin.tokenOnce": "令牌只显示这一次，请立即复制并妥善保存：",
    "admin.copy": "复制", "admin.copied": "已复制", "admin.copyFailed": "无法自动复制，请手动选中复制",
    "admin.done": "我已保存", "admin.noTokens": "没有令牌",
    "admin.actor": "操作者", "admin.action": "操作", "admin.target": "对象", "admin.outcome": "结果",
    "admin.details": "详情", "admin.since": "从", "admin.until": "到", "admin.prev": "上一页", "admin.next": "下一页",
    "admin.page": "第 {from}–{to} 条", "admin.noEntries": "没有符合条件的记录",
    "role.dispatcher": "调度员", "role.supervisor": "指挥长（审批）", "role.police": "公安", "role.ops": "运维", "role.admin": "管理员",
  },
  en: {
    "admin.title": "Administration", "admin.tab.users": "Users", "admin.tab.tokens": "API tokens",
    "admin.tab.audit": "Audit trail", "admin.tab.false-alarms": "False alarms",
    "admin.name": "Name", "admin.roles": "Roles", "admin.source": "Source", "admin.created": "Created",
    "admin.state": "State", "admin.active": "active", "admin.disabledState": "disabled", "admin.disable": "Disable",
    "admin.enable": "Enable", "admin.confirmDisable": "Disable user {name}? Their sessions end at once.",
    "admin.confirmDisableSelf": "You are disabling your own account {name} and will be logged out. Go on?",
    "admin.addUser": "Add a user", "admin.password": "Password (at least 10 characters)", "admin.add": "Add",
    "admin.userAdded": "Added user {name}", "admin.needRole": "Tick at least one role", "admin.noUsers": "No users",
    "admin.tokenId": "Id", "admin.user": "User", "admin.label": "Label", "admin.expires": "Expires",
    "admin.lastUsed": "Last used", "admin.revoked": "revoked", "admin.expired": "expired", "admin.revoke": "Revoke",
    "admin.confirmRevoke": "Revoke token {id} ({label})? Systems using it lose access.", "admin.createToken": "Create a token",
    "admin.days": "Valid for (days)", "admin.create": "Create",
    "admin.tokenOnce": "This token is shown only once. Copy it now and keep it safe:", "admin.copy": "Copy",
    "admin.copied": "Copied", "admin.copyFailed": "Could not copy; select the token and copy it by hand",
    "admin.done": "I have saved it", "admin.noTokens": "No tokens",
    "admin.actor": "Actor", "admin.action": "Action", "admin.target": "Target", "admin.outcome": "Outcome",
    "admin.details": "Details", "admin.since": "From", "admin.until": "To", "admin.prev": "Previous", "admin.next": "Next",
    "admin.page": "Entries {from}–{to}", "admin.noEntries": "No entries match",
    "role.dispatcher": "dispatcher", "role.supervisor": "supervisor", "role.police": "police", "role.ops": "ops", "role.admin": "admin",
  },
});

/** An epoch-seconds value (or an ISO string) in the browser's clock. */
function when(value) {
  if (value === null || value === undefined || value === "") return "—";
  return formatTime(typeof value === "number" ? new Date(value * 1000).toISOString() : value);
}

function isoOf(input) {
  if (!input.value) return undefined;
  const date = new Date(input.value);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

function table(headers, rows, empty) {
  if (!rows.length) return el("p", { class: "muted" }, empty);
  return el("div", { class: "table-scroll" }, el("table", {},
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows)));
}

// -- users ----------------------------------------------------------------------------------------

async function usersTab(box, session) {
  const status = statusLine();
  const list = el("div", {});

  async function load() {
    try {
      const { users } = await api("GET", "/users");
      clear(list).append(table(
        [t("admin.name"), t("common.department"), t("admin.roles"), t("admin.source"), t("admin.created"), t("admin.state"), ""],
        users.map(userRow), t("admin.noUsers")));
    } catch (error) {
      status.show(t("common.error", { why: explain(error) }), "error");
    }
  }

  function userRow(user) {
    const action = user.disabled ? "enable" : "disable";
    return el("tr", { class: user.disabled ? "ended" : "", dataset: { user: user.name } },
      el("td", {}, user.name),
      el("td", {}, user.department),
      el("td", {}, (user.roles || []).map((r) => t(`role.${r}`)).join(", ")),
      el("td", {}, user.source || "—"),
      el("td", {}, when(user.created_at)),
      el("td", {}, el("span", { class: `badge ${user.disabled ? "disabled" : "enabled"}` },
        user.disabled ? t("admin.disabledState") : t("admin.active"))),
      el("td", {}, el("button", { type: "button", class: user.disabled ? "" : "danger",
        onclick: () => setDisabled(user, action) }, t(`admin.${action}`))));
  }

  async function setDisabled(user, action) {
    if (action === "disable") {
      const question = user.name === session.name ? "admin.confirmDisableSelf" : "admin.confirmDisable";
      if (!confirm(t(question, { name: user.name }))) return;
    }
    try {
      await api("POST", `/users/${encodeURIComponent(user.name)}/${action}`);
      status.show("");
      await load();
    } catch (error) {
      status.show(t("common.error", { why: explain(error) }), "error");
    }
  }

  const name = el("input", { name: "name", required: true, maxlength: 128, autocomplete: "off" });
  const department = el("input", { name: "department", required: true, maxlength: 64, value: session.department });
  const password = el("input", { name: "password", type: "password", required: true, minlength: 10, autocomplete: "new-password" });
  const roles = el("div", { class: "checks" }, ROLES.map((role) =>
    el("label", { class: "check" }, el("input", { type: "checkbox", name: "roles", value: role }), t(`role.${role}`))));
  const form = el("form", { class: "card add-user", onsubmit: async (event) => {
    event.preventDefault();
    const chosen = [...roles.querySelectorAll("input:checked")].map((box) => box.value);
    if (!chosen.length) return status.show(t("admin.needRole"), "error");
    try {
      await api("POST", "/users", { body: { name: name.value.trim(), department: department.value.trim(), roles: chosen, password: password.value } });
      status.show(t("admin.userAdded", { name: name.value.trim() }), "ok");
      form.reset();
      department.value = session.department;
      await load();
    } catch (error) {
      status.show(t("common.error", { why: explain(error) }), "error");
    }
  } },
  el("h2", {}, t("admin.addUser")),
  el("div", { class: "row" },
    el("label", {}, t("admin.name"), name),
    el("label", {}, t("common.department"), department),
    el("label", {}, t("admin.password"), password)),
  el("fieldset", {}, el("legend", {}, t("admin.roles")), roles),
  el("button", { type: "submit", class: "primary" }, t("admin.add")));

  box.append(status, list, form);
  await load();
}

// -- tokens ---------------------------------------------------------------------------------------

/** The new token, shown once, with a copy button. */
function tokenReveal(token, onDone) {
  const field = el("input", { readonly: true, value: token, class: "token-value", "aria-label": "token",
    onfocus: (e) => e.target.select() });
  const note = statusLine();
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(token);
      note.show(t("admin.copied"), "ok");
    } catch (_) { // no clipboard API (plain http): leave it selected for Ctrl+C
      field.select();
      note.show(t("admin.copyFailed"), "error");
    }
  };
  return el("div", { class: "card token-reveal", role: "alert" },
    el("p", {}, el("strong", {}, t("admin.tokenOnce"))),
    el("div", { class: "row" }, field, el("button", { type: "button", class: "primary", onclick: copy }, t("admin.copy"))),
    note,
    el("button", { type: "button", onclick: onDone }, t("admin.done")));
}

async function tokensTab(box) {
  const status = statusLine();
  const list = el("div", {});
  const reveal = el("div", {});
  const userNames = el("datalist", { id: "admin-user-names" });

  async function load() {
    try {
      const { tokens } = await api("GET", "/tokens");
      const now = Date.now() / 1000;
      clear(list).append(table(
        [t("admin.tokenId"), t("admin.user"), t("admin.label"), t("admin.created"), t("admin.expires"), t("admin.lastUsed"),
          t("admin.state"), ""],
        tokens.map((token) => tokenRow(token, now)), t("admin.noTokens")));
    } catch (error) {
      status.show(t("common.error", { why: explain(error) }), "error");
    }
  }

  function tokenRow(token, now) {
    const state = token.revoked_at ? "revoked" : token.expires_at && token.expires_at < now ? "expired" : "active";
    return el("tr", { class: state === "active" ? "" : "ended", dataset: { tokenId: token.id } },
      el("td", {}, el("code", {}, token.id)),
      el("td", {}, token.user_name),
      el("td", {}, token.label || "—"),
      el("td", {}, when(token.created_at)),
      el("td", {}, when(token.expires_at)),
      el("td", {}, when(token.last_used_at)),
      el("td", {}, el("span", { class: `badge ${state === "active" ? "enabled" : "disabled"}` },
        state === "revoked" ? t("admin.revoked") : state === "expired" ? t("admin.expired") : t("admin.active"))),
      el("td", {}, state === "revoked" ? null
        : el("button", { type: "button", class: "danger", onclick: () => revoke(token) }, t("admin.revoke"))));
  }

  async function revoke(token) {
    if (!confirm(t("admin.confirmRevoke", { id: token.id, label: token.label || "—" }))) return;
    try {
      await api("POST", `/tokens/${encodeURIComponent(token.id)}/revoke`);
      await load();
    } catch (error) {
      status.show(t("common.error", { why: explain(error) }), "error");
    }
  }

  const user = el("input", { name: "user", required: true, list: "admin-user-names", autocomplete: "off" });
  const days = el("input", { name: "days", type: "number", min: 1, step: 1, value: 90, required: true });
  const label = el("input", { name: "label", maxlength: 200 });
  const form = el("form", { class: "card", onsubmit: async (event) => {
    event.preventDefault();
    try {
      const answer = await api("POST", "/tokens", { body: { user: user.value.trim(), days: Number(days.value), label: label.value.trim() } });
      form.reset();
      clear(reveal).append(tokenReveal(answer.token, () => clear(reveal)));
      status.show("");
      await load();
    } catch (error) {
      status.show(t("common.error", { why: explain(error) }), "error");
    }
  } },
  el("h2", {}, t("admin.createToken")),
  el("div", { class: "row" },
    el("label", {}, t("admin.user"), user),
    el("label", {}, t("admin.days"), days),
    el("label", { class: "grow" }, t("admin.label"), label),
    el("button", { type: "submit", class: "primary" }, t("admin.create"))));

  box.append(status, reveal, list, form, userNames);
  api("GET", "/users").then(({ users }) => userNames.append(...users.map((u) => el("option", { value: u.name }))))
    .catch(() => { /* suggestions only */ });
  await load();
}

// -- audit ----------------------------------------------------------------------------------------

async function auditTab(box) {
  const status = statusLine();
  const list = el("div", {});
  const actor = el("input", { name: "actor", maxlength: 128 });
  const department = el("input", { name: "department", maxlength: 64 });
  const action = el("input", { name: "action", maxlength: 64, list: "admin-audit-actions" });
  const since = el("input", { type: "datetime-local", step: 1 });
  const until = el("input", { type: "datetime-local", step: 1 });
  const prev = el("button", { type: "button", disabled: true, onclick: () => load(Math.max(0, offset - AUDIT_PAGE)) }, t("admin.prev"));
  const next = el("button", { type: "button", disabled: true, onclick: () => load(offset + AUDIT_PAGE) }, t("admin.next"));
  const pageNote = el("span", { class: "muted" });
  let offset = 0;

  async function load(at = 0) {
    try {
      const { entries } = await api("GET", "/audit", { query: {
        actor: actor.value.trim(), department: department.value.trim(), action: action.value.trim(),
        since: isoOf(since), until: isoOf(until), limit: AUDIT_PAGE, offset: at,
      } });
      offset = at;
      status.show("");
      clear(list).append(table(
        ["#", t("common.time"), t("admin.actor"), t("common.department"), t("admin.action"), t("admin.target"),
          t("admin.outcome"), t("admin.details")],
        entries.map(auditRow), t("admin.noEntries")));
      prev.disabled = offset === 0;
      next.disabled = entries.length < AUDIT_PAGE;
      pageNote.textContent = entries.length ? t("admin.page", { from: offset + 1, to: offset + entries.length }) : "";
    } catch (error) {
      status.show(t("common.error", { why: explain(error) }), "error");
    }
  }

  function auditRow(entry) {
    const details = entry.details && Object.keys(entry.details).length ? JSON.stringify(entry.details) : "";
    return el("tr", { dataset: { seq: String(entry.seq) } },
      el("td", { class: "num" }, String(entry.seq)),
      el("td", {}, when(entry.at)),
      el("td", {}, entry.actor),
      el("td", {}, entry.department || "—"),
      el("td", {}, el("code", {}, entry.action)),
      el("td", {}, entry.target || "—"),
      el("td", {}, el("span", { class: `badge outcome-${entry.outcome}` }, entry.outcome)),
      el("td", {}, details ? el("code", { class: "audit-details", title: details }, details) : "—"));
  }

  const filters = el("form", { class: "row audit-filters", onsubmit: (event) => { event.preventDefault(); load(0); } },
    el("label", {}, t("admin.actor"), actor),
    el("label", {}, t("common.department"), department),
    el("label", {}, t("admin.action"), action),
    el("label", {}, t("admin.since"), since),
    el("label", {}, t("admin.until"), until),
    el("button", { type: "submit", class: "primary" }, t("common.apply")),
    el("datalist", { id: "admin-audit-actions" }, AUDIT_ACTIONS.map((a) => el("option", { value: a }))));
  box.append(filters, status, list, el("div", { class: "row pager" }, prev, pageNote, next));
  await load(0);
}

// -- the page -------------------------------------------------------------------------------------

export async function render(view, { params, session, context }) {
  const tab = TABS.includes(params[0]) ? params[0] : "users";
  const box = el("section", { class: "admin-tab", dataset: { tab } });
  view.append(el("div", { class: "page-admin" },
    el("h1", {}, t("admin.title")),
    el("nav", { class: "tabs" }, TABS.map((name) =>
      el("a", { href: `#/admin/${name}`, class: `button${name === tab ? " active" : ""}` }, t(`admin.tab.${name}`)))),
    box));
  if (tab === "users") await usersTab(box, session);
  else if (tab === "tokens") await tokensTab(box);
  else if (tab === "audit") await auditTab(box);
  else renderFalseAlarms(box, await context.cameras().catch(() => new Map()));
}
