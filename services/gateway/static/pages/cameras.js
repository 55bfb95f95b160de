// Cameras (一机一档). "#/cameras": every camera in the caller's scope with its health, on a table and
// a map; ops/admin also get create/edit/delete and the false-alarm ratio per camera and rule.
// "#/cameras/<id>" and "#/cameras/new": the camera's form, each rule's parameters (generated from
// the rule's schema) and the zone editor on the camera's latest frame.

import { api, explain } from "../api.js";
import { clear, el, statusLine } from "../dom.js";
import { addMessages, formatTime, t } from "../i18n.js";
import { renderMap } from "../map.js";

addMessages({
  "zh-CN": {
    "cameras.title": "摄像机", "cameras.new": "新增摄像机", "cameras.filter": "按编号或名称筛选",
    "cameras.id": "编号", "cameras.name": "名称", "cameras.url": "视频流地址", "cameras.sharedWith": "共享给",
    "cameras.sharedHint": "部门编号，逗号分隔；* 表示所有部门", "cameras.scene": "场景", "cameras.grid": "单元网格编码", "cameras.address": "地址", "cameras.place": "位置",
    "cameras.health": "健康状态", "cameras.lastFrame": "最后一帧", "cameras.enabled": "启用", "cameras.yes": "是",
    "cameras.no": "否", "cameras.edit": "编辑", "cameras.view": "查看", "cameras.delete": "删除",
    "cameras.confirmDelete": "确定删除摄像机 {id}？它的未结束事件将被结束。", "cameras.deleted": "已删除 {id}",
    "cameras.none": "没有可见的摄像机", "cameras.timezone": "时区", "cameras.lat": "纬度", "cameras.lon": "经度",
    "cameras.fps": "分析帧率（帧/秒）", "cameras.loop": "文件源循环播放", "cameras.defaultHint": "留空则使用集群默认值",
    "cameras.rules": "分析规则", "cameras.addRule": "添加规则", "cameras.removeRule": "移除规则",
    "cameras.params": "参数", "cameras.paramsJson": "参数（JSON）", "cameras.null": "不启用（null）",
    "cameras.default": "默认：{value}", "cameras.activeHours": "生效时段（摄像机当地时间，留空为全天）",
    "cameras.zones": "区域", "cameras.zoneCount": "{n} 个区域", "cameras.editZones": "在画面上编辑区域",
    "cameras.zoneEditor": "区域编辑", "cameras.zoneRule": "编辑哪条规则的区域",
    "cameras.zoneHelp": "单击添加顶点；拖动顶点移动；双击或点“闭合区域”完成；单击区域边线插入顶点；选中顶点后按 Delete 删除。",
    "cameras.newZone": "新建区域", "cameras.closeZone": "闭合区域", "cameras.deletePoint": "删除顶点",
    "cameras.deleteZone": "删除区域", "cameras.select": "选中", "cameras.points": "{n} 个顶点",
    "cameras.open": "未闭合", "cameras.reloadFrame": "刷新画面", "cameras.noFrame": "暂无画面（摄像机尚未运行）",
    "cameras.noRules": "先添加一条规则，再绘制区域", "cameras.save": "保存摄像机", "cameras.saving": "保存中…",
    "cameras.saved": "已保存（版本 {revision}）", "cameras.created": "已创建 {id}", "cameras.back": "返回列表",
    "cameras.readOnly": "只读：只有本部门的运维人员或管理员可以修改", "cameras.zoneTooSmall": "规则 {rule} 的区域“{zone}”至少需要 3 个顶点",
    "cameras.zoneNameMissing": "规则 {rule} 有未命名的区域", "cameras.zoneNameDup": "规则 {rule} 的区域名称“{zone}”重复",
    "cameras.locationBoth": "纬度和经度需同时填写", "cameras.hoursBoth": "规则 {rule} 的生效时段需同时填写开始和结束",
    "cameras.badParam": "规则 {rule} 的参数 {param}：{why}", "cameras.notNumber": "不是数字",
    "cameras.notInteger": "不是整数", "cameras.badJson": "不是有效的 JSON", "cameras.outOfRange": "超出范围 {range}",
    "cameras.falseAlarms": "误报统计（按摄像机和规则，误报率从高到低）", "cameras.incidents": "事件数",
    "cameras.closed": "已关闭", "cameras.falseCount": "误报", "cameras.falseRatio": "误报率",
    "cameras.statsUnavailable": "误报统计暂不可用：{why}", "cameras.noStats": "所选时间内没有事件",
    "health.online": "在线", "health.offline": "离线", "health.starting": "启动中", "health.stalled": "卡顿",
    "health.stopped": "已停止", "health.unknown": "未知",
    "quality.no_signal": "无信号", "quality.decode_errors": "解码错误", "quality.frozen": "画面冻结",
    "quality.blur": "画面模糊", "quality.dark": "过暗", "quality.overexposed": "过曝", "quality.colour_cast": "偏色",
    "quality.noise": "噪声干扰", "quality.occluded": "镜头遮挡", "quality.scene_change": "场景变化",
    "quality.suspended": "已移位：规则暂停", "quality.paused": "规则暂停",
  },
  en: {
    "cameras.title": "Cameras", "cameras.new": "New camera", "cameras.filter": "Filter by id or name",
    "cameras.id": "Id", "cameras.name": "Name", "cameras.url": "Stream URL", "cameras.sharedWith": "Shared with",
    "cameras.sharedHint": "Department ids, comma-separated; * for every department", "cameras.scene": "Scene", "cameras.grid": "Unit grid code", "cameras.address": "Address",
    "cameras.place": "Place", "cameras.health": "Health", "cameras.lastFrame": "Last frame", "cameras.enabled": "Enabled",
    "cameras.yes": "yes", "cameras.no": "no", "cameras.edit": "Edit", "cameras.view": "View", "cameras.delete": "Delete",
    "cameras.confirmDelete": "Delete camera {id}? Its open incidents end.", "cameras.deleted": "Deleted {id}",
    "cameras.none": "No cameras in your scope", "cameras.timezone": "Time zone", "cameras.lat": "Latitude",
    "cameras.lon": "Longitude", "cameras.fps": "Analysis rate (frames/s)", "cameras.loop": "Loop a file source",
    "cameras.defaultHint": "Empty: the cluster's default", "cameras.rules": "Rules", "cameras.addRule": "Add rule",
    "cameras.removeRule": "Remove rule", "cameras.params": "Parameters", "cameras.paramsJson": "Parameters (JSON)",
    "cameras.null": "off (null)", "cameras.default": "default: {value}",
    "cameras.activeHours": "Active hours (camera's local time; empty: all day)", "cameras.zones": "Zones",
    "cameras.zoneCount": "{n} zones", "cameras.editZones": "Edit zones on the frame", "cameras.zoneEditor": "Zones",
    "cameras.zoneRule": "Zones of rule",
    "cameras.zoneHelp": "Click to add a point; drag a point to move it; double-click or “Close zone” to finish; click a zone's edge to insert a point; Delete removes the selected point.",
    "cameras.newZone": "New zone", "cameras.closeZone": "Close zone", "cameras.deletePoint": "Delete point",
    "cameras.deleteZone": "Delete zone", "cameras.select": "Select", "cameras.points": "{n} points",
    "cameras.open": "open", "cameras.reloadFrame": "Reload frame", "cameras.noFrame": "No frame yet (the camera is not running)",
    "cameras.noRules": "Add a rule first, then draw its zones", "cameras.save": "Save camera", "cameras.saving": "Saving…",
    "cameras.saved": "Saved (revision {revision})", "cameras.created": "Created {id}", "cameras.back": "Back to the list",
    "cameras.readOnly": "Read only: only ops of the owning department or an admin may change it",
    "cameras.zoneTooSmall": "Rule {rule}: zone “{zone}” needs at least 3 points",
    "cameras.zoneNameMissing": "Rule {rule} has a zone without a name", "cameras.zoneNameDup": "Rule {rule}: zone name “{zone}” is used twice",
    "cameras.locationBoth": "Give both latitude and longitude, or neither",
    "cameras.hoursBoth": "Rule {rule}: give both start and end of the active hours",
    "cameras.badParam": "Rule {rule}, parameter {param}: {why}", "cameras.notNumber": "not a number",
    "cameras.notInteger": "not a whole number", "cameras.badJson": "not valid JSON", "cameras.outOfRange": "outside {range}",
    "cameras.falseAlarms": "False alarms per camera and rule (worst first)", "cameras.incidents": "Incidents",
    "cameras.closed": "Closed", "cameras.falseCount": "False alarms", "cameras.falseRatio": "False-alarm ratio",
    "cameras.statsUnavailable": "False-alarm figures unavailable: {why}", "cameras.noStats": "No incidents in that time",
    "health.online": "online", "health.offline": "offline", "health.starting": "starting", "health.stalled": "stalled",
    "health.stopped": "stopped", "health.unknown": "unknown",
    "quality.no_signal": "no signal", "quality.decode_errors": "decode errors", "quality.frozen": "frozen",
    "quality.blur": "blurred", "quality.dark": "too dark", "quality.overexposed": "over-exposed",
    "quality.colour_cast": "colour cast", "quality.noise": "noise", "quality.occluded": "lens covered",
    "quality.scene_change": "scene changed", "quality.suspended": "moved: rules suspended", "quality.paused": "rules paused",
  },
});

const round4 = (v) => Math.round(v * 10000) / 10000;
const clamp01 = (v) => Math.min(1, Math.max(0, v));
const HIT_PX = 10; // how close (screen pixels) a click must be to grab a point or an edge

function manages(session, department) {
  return session.roles.includes("admin") || (session.roles.includes("ops") && session.department === department);
}

function mayCreate(session) {
  return session.roles.includes("admin") || session.roles.includes("ops");
}

/** "CAMERA_STATE_ONLINE" → "online"; no report → "unknown". */
export function healthState(status) {
  const state = String(status || "").replace(/^CAMERA_STATE_/, "").toLowerCase();
  return !state || state === "unspecified" ? "unknown" : state;
}

export function healthBadge(status, reason) {
  const state = healthState(status);
  return el("span", { class: `badge health-${state}`, title: reason || undefined }, t(`health.${state}`));
}

/** Video-quality problems as badges (the rules' hold first: "moved: rules suspended"); none when clean. */
export function qualityBadges(quality) {
  if (!quality) return [];
  const held = quality.rules ? [el("span", { class: "badge quality-held", title: quality.note || undefined },
    t(`quality.${quality.rules}`))] : [];
  const told = quality.rules === "suspended" ? "scene_change" : null;
  return held.concat((quality.problems || []).filter((p) => p !== told).map((p) =>
    el("span", { class: "badge quality", title: p }, t(`quality.${p}`))));
}

function isoOf(input) {
  if (!input.value) return undefined;
  const date = new Date(input.value);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

// -- false alarms (also on the admin page) --------------------------------------------------------

/** The false-alarm ratio per camera and rule from /stats/dispatch, worst first, with a time filter. */
export function renderFalseAlarms(container, cameras = new Map()) {
  const since = el("input", { type: "datetime-local", step: 1 });
  const until = el("input", { type: "datetime-local", step: 1 });
  const body = el("div", {});
  async function load() {
    clear(body).append(el("p", { class: "muted" }, t("common.loading")));
    try {
      const answer = await api("GET", "/stats/dispatch", { query: { since: isoOf(since), until: isoOf(until) } });
      clear(body).append(falseAlarmTable(answer.rows || [], cameras));
    } catch (error) {
      clear(body).append(el("p", { class: "muted" }, t("cameras.statsUnavailable", { why: explain(error) })));
    }
  }
  container.append(el("section", { class: "false-alarms" },
    el("h2", {}, t("cameras.falseAlarms")),
    el("div", { class: "row" },
      el("label", {}, t("common.from"), since), el("label", {}, t("common.to"), until),
      el("button", { type: "button", onclick: load }, t("common.apply"))),
    body));
  load();
}

function falseAlarmTable(rows, cameras) {
  if (!rows.length) return el("p", { class: "muted" }, t("cameras.noStats"));
  const sorted = [...rows].sort((a, b) =>
    (b.false_alarm_ratio || 0) - (a.false_alarm_ratio || 0) || (b.false_alarms || 0) - (a.false_alarms || 0));
  return el("table", { class: "false-alarm-table" },
    el("thead", {}, el("tr", {}, [t("common.camera"), t("common.rule"), t("cameras.incidents"), t("cameras.closed"),
      t("cameras.falseCount"), t("cameras.falseRatio")].map((h) => el("th", {}, h)))),
    el("tbody", {}, sorted.map((row) => {
      const ratio = Number(row.false_alarm_ratio) || 0;
      const name = cameras.get(row.camera_id)?.camera.name;
      return el("tr", {},
        el("td", {}, name ? `${name} (${row.camera_id})` : row.camera_id),
        el("td", {}, row.algorithm),
        el("td", { class: "num" }, String(row.incidents ?? 0)),
        el("td", { class: "num" }, String(row.closed ?? 0)),
        el("td", { class: "num" }, String(row.false_alarms ?? 0)),
        el("td", { class: "num" }, el("span", { class: `ratio ${ratio >= 0.5 ? "bad" : ratio >= 0.2 ? "warn" : ""}` },
          `${(ratio * 100).toFixed(1)}%`)));
    })));
}

// -- the list -------------------------------------------------------------------------------------

async function renderList(root, { session, context }) {
  const cameras = await context.cameras(true);
  const tileUrl = (await context.config().catch(() => ({}))).map_tile_url || null;
  const status = statusLine();
  const filter = el("input", { type: "search", placeholder: t("cameras.filter"), oninput: () => fill() });
  const tbody = el("tbody", {});

  async function remove(id) {
    if (!confirm(t("cameras.confirmDelete", { id }))) return;
    try {
      await api("DELETE", `/cameras/${encodeURIComponent(id)}`);
      await context.cameras(true);
      cameras.delete(id);
      status.show(t("cameras.deleted", { id }), "ok");
      fill();
    } catch (error) {
      status.show(t("common.error", { why: explain(error) }), "error");
    }
  }

  function row({ camera, enabled, health }) {
    const mine = manages(session, camera.department);
    const loc = camera.location;
    return el("tr", { dataset: { cameraId: camera.id } },
      el("td", {}, el("a", { href: `#/cameras/${encodeURIComponent(camera.id)}` }, camera.id)),
      el("td", {}, camera.name || "—"),
      el("td", {}, camera.department),
      el("td", {}, (camera.shared_with || []).join(", ") || "—"),
      el("td", {}, camera.scene_type || "—"),
      el("td", {}, loc && Number.isFinite(loc.lat) ? `${loc.lat.toFixed(5)}, ${loc.lon.toFixed(5)}` : "—"),
      el("td", {}, healthBadge(health?.status, health?.reason), ...qualityBadges(health?.quality),
        health?.reason ? el("div", { class: "muted small" }, health.reason) : null),
      el("td", {}, formatTime(health?.last_frame_at, camera.timezone)),
      el("td", {}, el("span", { class: `badge ${enabled ? "enabled" : "disabled"}` }, enabled ? t("cameras.yes") : t("cameras.no"))),
      el("td", { class: "actions" },
        el("a", { class: "button", href: `#/cameras/${encodeURIComponent(camera.id)}` }, mine ? t("cameras.edit") : t("cameras.view")),
        mine ? el("button", { type: "button", class: "danger", onclick: () => remove(camera.id) }, t("cameras.delete")) : null));
  }

  function fill() {
    const needle = filter.value.trim().toLowerCase();
    const shown = [...cameras.values()].filter(({ camera }) =>
      !needle || camera.id.toLowerCase().includes(needle) || (camera.name || "").toLowerCase().includes(needle));
    clear(tbody).append(...shown.map(row));
    if (!shown.length) tbody.append(el("tr", {}, el("td", { colspan: 10, class: "muted" }, t("cameras.none"))));
  }

  const mapBox = el("div", {});
  root.append(
    el("div", { class: "row" },
      el("h1", { class: "grow" }, t("cameras.title")),
      filter,
      mayCreate(session) ? el("a", { class: "button primary", href: "#/cameras/new" }, t("cameras.new")) : null),
    status,
    mapBox,
    el("div", { class: "table-scroll" }, el("table", { class: "camera-table" },
      el("thead", {}, el("tr", {}, [t("cameras.id"), t("cameras.name"), t("common.department"), t("cameras.sharedWith"),
        t("cameras.scene"), t("cameras.place"), t("cameras.health"), t("cameras.lastFrame"), t("cameras.enabled"), ""]
        .map((h) => el("th", {}, h)))),
      tbody)));
  fill();
  renderMap(mapBox, [...cameras.values()].map(({ camera, health }) => ({
    id: camera.id, label: camera.name || camera.id, lat: camera.location?.lat, lon: camera.location?.lon,
    active: healthState(health?.status) !== "online",
    onclick: (p) => (location.hash = `#/cameras/${encodeURIComponent(p.id)}`),
  })), { tileUrl, height: 300 });
  if (mayCreate(session)) renderFalseAlarms(root, cameras);
}

// -- a rule's parameters, generated from its JSON schema -----------------------------------------

/** The schema node with $ref, a one-item allOf and a nullable anyOf resolved (outer keys win). */
function resolveSchema(root, node) {
  let out = { ...node };
  if (out.$ref) {
    const name = out.$ref.split("/").pop();
    const target = (root.$defs || root.definitions || {})[name] || {};
    const { $ref, ...rest } = out;
    out = { ...resolveSchema(root, target), ...rest };
  }
  if (Array.isArray(out.allOf) && out.allOf.length === 1) {
    const { allOf, ...rest } = out;
    out = { ...resolveSchema(root, allOf[0]), ...rest };
  }
  if (Array.isArray(out.anyOf)) {
    const { anyOf, ...rest } = out;
    const branches = anyOf.map((b) => resolveSchema(root, b));
    const real = branches.filter((b) => b.type !== "null");
    out = { ...(real.length === 1 ? real[0] : { type: "json" }), ...rest, nullable: real.length < branches.length };
  }
  return out;
}

function boundsText(s) {
  const parts = [];
  if (s.exclusiveMinimum !== undefined) parts.push(`> ${s.exclusiveMinimum}`);
  if (s.minimum !== undefined) parts.push(`≥ ${s.minimum}`);
  if (s.exclusiveMaximum !== undefined) parts.push(`< ${s.exclusiveMaximum}`);
  if (s.maximum !== undefined) parts.push(`≤ ${s.maximum}`);
  return parts.join(", ");
}

const show = (value) => (Array.isArray(value) ? value.join(", ") : typeof value === "object" ? JSON.stringify(value) : String(value));

/** One parameter's input; read() → {set: false} | {set: true, value}, or throws a message. */
function paramField(key, spec, current) {
  const hasDefault = "default" in spec;
  const placeholder = hasDefault && spec.default !== null ? show(spec.default) : "";
  let input;
  if (Array.isArray(spec.enum)) {
    input = el("select", {}, el("option", { value: "" }, hasDefault ? t("cameras.default", { value: show(spec.default) }) : "—"),
      spec.enum.map((v, i) => el("option", { value: String(i) }, String(v))));
    const index = spec.enum.findIndex((v) => JSON.stringify(v) === JSON.stringify(current));
    if (index >= 0) input.value = String(index);
  } else if (spec.type === "boolean") {
    input = el("select", {},
      el("option", { value: "" }, hasDefault ? t("cameras.default", { value: String(spec.default) }) : "—"),
      el("option", { value: "true" }, "true"), el("option", { value: "false" }, "false"));
    if (typeof current === "boolean") input.value = String(current);
  } else if (spec.type === "number" || spec.type === "integer") {
    input = el("input", {
      type: "number", step: spec.type === "integer" ? 1 : "any", placeholder,
      min: spec.minimum ?? spec.exclusiveMinimum, max: spec.maximum ?? spec.exclusiveMaximum,
    });
    if (typeof current === "number") input.value = String(current);
  } else {
    input = el("input", { type: "text", placeholder, maxlength: spec.maxLength });
    if (current !== undefined && current !== null) input.value = show(current);
  }
  input.name = `param-${key}`;
  const nullBox = spec.nullable ? el("input", { type: "checkbox", checked: current === null,
    onchange: () => (input.disabled = nullBox.checked) }) : null;
  if (nullBox && current === null) input.disabled = true;

  function parse(raw) {
    if (Array.isArray(spec.enum)) return spec.enum[Number(raw)];
    if (spec.type === "boolean") return raw === "true";
    if (spec.type === "number" || spec.type === "integer") {
      const value = Number(raw);
      if (!Number.isFinite(value)) throw t("cameras.notNumber");
      if (spec.type === "integer" && !Number.isInteger(value)) throw t("cameras.notInteger");
      const outside = (spec.minimum !== undefined && value < spec.minimum) || (spec.maximum !== undefined && value > spec.maximum)
        || (spec.exclusiveMinimum !== undefined && value <= spec.exclusiveMinimum)
        || (spec.exclusiveMaximum !== undefined && value >= spec.exclusiveMaximum);
      if (outside) throw t("cameras.outOfRange", { range: boundsText(spec) });
      return value;
    }
    if (spec.type === "array") {
      const items = raw.split(",").map((s) => s.trim()).filter(Boolean);
      const numeric = ["number", "integer"].includes(spec.items?.type);
      return numeric ? items.map((s) => { const n = Number(s); if (!Number.isFinite(n)) throw t("cameras.notNumber"); return n; }) : items;
    }
    if (spec.type === "string") return raw;
    try { return JSON.parse(raw); } catch (_) { throw t("cameras.badJson"); }
  }

  function read() {
    let value;
    if (nullBox?.checked) value = null;
    else if (input.value.trim() === "") return { set: false };
    else value = parse(input.value.trim());
    // Only changed values are sent: the rule's default needs no entry.
    if (hasDefault && JSON.stringify(value) === JSON.stringify(spec.default)) return { set: false };
    return { set: true, value };
  }

  const hint = [spec.description, boundsText(spec)].filter(Boolean).join(" · ");
  const node = el("label", { class: "param" },
    el("span", {}, spec.title || key, el("code", { class: "muted" }, ` ${key}`)),
    el("span", { class: "row" }, input,
      nullBox ? el("label", { class: "check" }, nullBox, t("cameras.null")) : null),
    hint ? el("small", { class: "muted" }, hint) : null);
  return { node, read };
}

/** The parameter form of one rule: from its schema, or a JSON box when the schema is unknown. */
function paramsForm(schema, values) {
  values = values || {};
  if (!schema || !schema.properties) {
    const box = el("textarea", { rows: 4, class: "json" });
    box.value = JSON.stringify(values, null, 2);
    return {
      node: el("label", {}, t("cameras.paramsJson"), box),
      read() {
        try { return box.value.trim() ? JSON.parse(box.value) : {}; } catch (_) { throw { param: "params", why: t("cameras.badJson") }; }
      },
    };
  }
  const fields = Object.entries(schema.properties).map(([key, node]) =>
    [key, paramField(key, resolveSchema(schema, node), values[key])]);
  const known = new Set(fields.map(([key]) => key));
  return {
    node: el("div", { class: "params" }, fields.map(([, f]) => f.node)),
    read() {
      // Keys the schema does not know are kept, so the server names them rather than losing them.
      const params = Object.fromEntries(Object.entries(values).filter(([key]) => !known.has(key)));
      for (const [key, field] of fields) {
        let answer;
        try { answer = field.read(); } catch (why) { throw { param: key, why: String(why) }; }
        if (answer.set) params[key] = answer.value;
      }
      return params;
    },
  };
}

// -- the zone editor ------------------------------------------------------------------------------

function pointInPolygon(p, points) {
  let inside = false;
  for (let i = 0, j = points.length - 1; i < points.length; j = i++) {
    const a = points[i], b = points[j];
    if ((a.y > p.y) !== (b.y > p.y) && p.x < ((b.x - a.x) * (p.y - a.y)) / (b.y - a.y) + a.x) inside = !inside;
  }
  return inside;
}

/** Distance in screen pixels from p to the segment a-b (all in fractions; w, h: the canvas's CSS size). */
function segmentDistance(p, a, b, w, h) {
  const [px, py, ax, ay, bx, by] = [p.x * w, p.y * h, a.x * w, a.y * h, b.x * w, b.y * h];
  const len = (bx - ax) ** 2 + (by - ay) ** 2;
  const s = len ? Math.max(0, Math.min(1, ((px - ax) * (bx - ax) + (py - ay) * (by - ay)) / len)) : 0;
  return Math.hypot(px - (ax + s * (bx - ax)), py - (ay + s * (by - ay)));
}

const ZONE_COLOURS = ["#ffeb3b", "#4fc3f7", "#81c784", "#ff8a65", "#ba68c8", "#f06292"];

/**
 * The frame on a canvas with the zones of one rule over it. `getZones()` returns that rule's zones
 * ([{name, points: [{x, y}], closed}]), edited in place; `onChange(structural)` is called after each
 * edit (structural: the list of zones or their points changed).
 */
function zoneEditor({ editable, getZones, onChange }) {
  const canvas = el("canvas", { id: "zone-canvas", class: "zone-canvas", width: 960, height: 540, tabindex: 0 });
  const state = { image: null, message: t("cameras.noFrame"), active: -1, point: -1, dragging: false };

  const at = (event) => {
    const rect = canvas.getBoundingClientRect();
    return { x: clamp01((event.clientX - rect.left) / rect.width), y: clamp01((event.clientY - rect.top) / rect.height) };
  };
  const pixels = () => { const r = canvas.getBoundingClientRect(); return [r.width || canvas.width, r.height || canvas.height]; };
  const activeZone = () => getZones()[state.active] || null;

  function draw() {
    const g = canvas.getContext("2d");
    const [W, H] = [canvas.width, canvas.height];
    g.clearRect(0, 0, W, H);
    if (state.image) g.drawImage(state.image, 0, 0, W, H);
    else {
      g.fillStyle = "#37474f";
      g.fillRect(0, 0, W, H);
      g.fillStyle = "#cfd8dc";
      g.font = "18px system-ui, sans-serif";
      g.textAlign = "center";
      g.fillText(state.message, W / 2, H / 2);
      g.textAlign = "start";
    }
    getZones().forEach((zone, zi) => {
      const colour = ZONE_COLOURS[zi % ZONE_COLOURS.length];
      const selected = zi === state.active;
      const pts = zone.points.map((p) => [p.x * W, p.y * H]);
      if (!pts.length) return;
      g.beginPath();
      pts.forEach(([x, y], i) => (i ? g.lineTo(x, y) : g.moveTo(x, y)));
      if (zone.closed) {
        g.closePath();
        g.fillStyle = colour + (selected ? "55" : "33");
        g.fill();
      }
      g.strokeStyle = colour;
      g.lineWidth = selected ? 3 : 2;
      g.setLineDash(zone.closed ? [] : [8, 5]);
      g.stroke();
      g.setLineDash([]);
      pts.forEach(([x, y], pi) => {
        g.beginPath();
        g.arc(x, y, selected && pi === state.point ? 7 : 5, 0, 2 * Math.PI);
        g.fillStyle = selected && pi === state.point ? "#fff" : colour;
        g.fill();
        g.strokeStyle = "#000";
        g.lineWidth = 1;
        g.stroke();
      });
      g.font = "bold 15px system-ui, sans-serif";
      g.lineWidth = 3;
      g.strokeStyle = "rgba(0, 0, 0, .7)";
      g.strokeText(zone.name || "?", pts[0][0] + 8, pts[0][1] - 8);
      g.fillStyle = colour;
      g.fillText(zone.name || "?", pts[0][0] + 8, pts[0][1] - 8);
    });
  }

  /** The point of the rule's zones nearest to p within HIT_PX (the active zone first). */
  function hitPoint(p) {
    const [w, h] = pixels();
    const zones = getZones();
    const order = [state.active, ...zones.keys()].filter((i, k, all) => i >= 0 && all.indexOf(i) === k && zones[i]);
    for (const zi of order) {
      const pi = zones[zi].points.findIndex((q) => Math.hypot((q.x - p.x) * w, (q.y - p.y) * h) <= HIT_PX);
      if (pi >= 0) return { zi, pi };
    }
    return null;
  }

  /** The edge of the active (closed) zone within HIT_PX of p: the index to insert a point at. */
  function hitEdge(p) {
    const zone = activeZone();
    if (!zone || !zone.closed) return -1;
    const [w, h] = pixels();
    const n = zone.points.length;
    for (let i = 0; i < n; i++) {
      if (segmentDistance(p, zone.points[i], zone.points[(i + 1) % n], w, h) <= HIT_PX) return i + 1;
    }
    return -1;
  }

  function uniqueName() {
    const names = new Set(getZones().map((z) => z.name));
    let n = getZones().length + 1;
    while (names.has(`zone-${n}`)) n++;
    return `zone-${n}`;
  }

  function changed(structural) {
    draw();
    onChange(structural);
  }

  canvas.addEventListener("pointerdown", (event) => {
    if (!editable || event.button > 0) return;
    event.preventDefault();
    canvas.focus();
    const p = at(event);
    const zones = getZones();
    const hit = hitPoint(p);
    const edge = hit ? -1 : hitEdge(p);
    const zone = activeZone();
    if (hit) { // grab a point
      Object.assign(state, { active: hit.zi, point: hit.pi, dragging: true });
    } else if (edge >= 0) { // insert a point on the selected zone's edge
      zone.points.splice(edge, 0, p);
      Object.assign(state, { point: edge, dragging: true });
    } else if (zone && !zone.closed) { // continue the zone being drawn
      zone.points.push(p);
      state.point = zone.points.length - 1;
    } else {
      const inside = zones.findLastIndex((z) => z.closed && pointInPolygon(p, z.points));
      if (inside >= 0) Object.assign(state, { active: inside, point: -1 });
      else { // start a new zone
        zones.push({ name: uniqueName(), points: [p], closed: false });
        Object.assign(state, { active: zones.length - 1, point: 0 });
      }
    }
    if (state.dragging) canvas.setPointerCapture(event.pointerId);
    changed(true);
  });
  canvas.addEventListener("pointermove", (event) => {
    const p = at(event);
    if (state.dragging) {
      const zone = activeZone();
      if (zone && zone.points[state.point]) zone.points[state.point] = p;
      draw();
    } else if (editable) {
      canvas.style.cursor = hitPoint(p) ? "move" : hitEdge(p) >= 0 ? "copy" : "crosshair";
    }
  });
  const release = () => {
    if (!state.dragging) return;
    state.dragging = false;
    onChange(false);
  };
  canvas.addEventListener("pointerup", release);
  canvas.addEventListener("pointercancel", release);
  canvas.addEventListener("dblclick", (event) => { event.preventDefault(); self.closeZone(); });
  canvas.addEventListener("keydown", (event) => {
    if (!editable) return;
    if (event.key === "Delete" || event.key === "Backspace") { event.preventDefault(); self.deletePoint(); }
    else if (event.key === "Enter") { event.preventDefault(); self.closeZone(); }
    else if (event.key === "Escape") { state.point = -1; draw(); }
  });

  const self = {
    canvas,
    draw,
    state,
    /** Show a frame (an Image), or the message when there is none. */
    setFrame(image, message) {
      state.image = image;
      if (message) state.message = message;
      if (image) {
        const scale = Math.min(1, 960 / image.naturalWidth);
        canvas.width = Math.max(1, Math.round(image.naturalWidth * scale));
        canvas.height = Math.max(1, Math.round(image.naturalHeight * scale));
      }
      draw();
    },
    select(zi) { Object.assign(state, { active: zi, point: -1 }); changed(true); },
    newZone() {
      const zones = getZones();
      zones.push({ name: uniqueName(), points: [], closed: false });
      Object.assign(state, { active: zones.length - 1, point: -1 });
      changed(true);
    },
    closeZone() {
      const zone = activeZone();
      if (!editable || !zone || zone.closed || zone.points.length < 3) return;
      zone.closed = true;
      state.point = -1;
      changed(true);
    },
    deletePoint() {
      const zone = activeZone();
      if (!editable || !zone || !zone.points[state.point]) return;
      zone.points.splice(state.point, 1);
      state.point = Math.min(state.point, zone.points.length - 1);
      if (zone.points.length < 3) zone.closed = false;
      changed(true);
    },
    deleteZone(zi = state.active) {
      const zones = getZones();
      if (!editable || !zones[zi]) return;
      zones.splice(zi, 1);
      Object.assign(state, { active: -1, point: -1 });
      changed(true);
    },
    reset() { Object.assign(state, { active: -1, point: -1, dragging: false }); draw(); },
  };
  return self;
}

// -- the camera page ------------------------------------------------------------------------------

/** Zones from the API ([{x, y}] or [x, y] points) as the editor keeps them. */
function editableZones(zones) {
  return (zones || []).map((z) => ({
    name: z.name,
    points: (z.polygon || []).map((p) => (Array.isArray(p) ? { x: p[0], y: p[1] } : { x: p.x ?? 0, y: p.y ?? 0 })),
    closed: true,
  }));
}

function textField(label, attrs, hint) {
  const input = el("input", attrs);
  return [input, el("label", {}, label, input, hint ? el("small", { class: "muted" }, hint) : null)];
}

async function renderDetail(root, id, { session, context }) {
  const isNew = id === "new";
  const [record, catalogue] = await Promise.all([
    isNew ? Promise.resolve(null) : api("GET", `/cameras/${encodeURIComponent(id)}`),
    api("GET", "/algorithms").then((a) => a.algorithms || []).catch(() => null), // null: schemas unknown
  ]);
  const camera = record?.camera || { department: session.department, shared_with: [], algorithms: [] };
  const editable = isNew ? mayCreate(session) : manages(session, camera.department);
  const specs = new Map((catalogue || []).map((a) => [a.name, a]));
  const status = statusLine();
  let frameUrl = null;

  // The camera's own fields.
  const [idInput, idField] = textField(t("cameras.id"), { value: camera.id || "", required: true, readonly: !isNew,
    pattern: "[A-Za-z0-9_\\-]{1,64}", maxlength: 64 });
  const [nameInput, nameField] = textField(t("cameras.name"), { value: camera.name || "", maxlength: 256 });
  const [urlInput, urlField] = textField(t("cameras.url"), { value: camera.url || "", required: true, maxlength: 4096,
    placeholder: "rtsp://user:password@10.0.0.5/stream1" });
  const [deptInput, deptField] = textField(t("common.department"), { value: camera.department || "", required: true,
    readonly: !session.roles.includes("admin") });
  const [sharedInput, sharedField] = textField(t("cameras.sharedWith"), { value: (camera.shared_with || []).join(", ") },
    t("cameras.sharedHint"));
  const [sceneInput, sceneField] = textField(t("cameras.scene"), { value: camera.scene_type || "", maxlength: 128,
    placeholder: "road, market, square…" });
  const [gridInput, gridField] = textField(t("cameras.grid"), { value: camera.grid_code || "", maxlength: 32,
    pattern: "[0-9A-Za-z\\-]{1,32}", placeholder: "420102001001" });
  const [addressInput, addressField] = textField(t("cameras.address"), { value: camera.address || "", maxlength: 256 });
  const [tzInput, tzField] = textField(t("cameras.timezone"), { value: camera.timezone || "", placeholder: "Asia/Shanghai" },
    isNew ? t("cameras.defaultHint") : null);
  const [latInput, latField] = textField(t("cameras.lat"), { type: "number", step: "any", min: -90, max: 90,
    value: camera.location?.lat ?? "" });
  const [lonInput, lonField] = textField(t("cameras.lon"), { type: "number", step: "any", min: -180, max: 180,
    value: camera.location?.lon ?? "" });
  const [fpsInput, fpsField] = textField(t("cameras.fps"), { type: "number", step: "any", min: 0.01, max: 30,
    value: camera.analysis_fps || "", placeholder: "2" }, isNew ? t("cameras.defaultHint") : null);
  const enabledBox = el("input", { type: "checkbox", checked: record ? record.enabled : true });
  const loopBox = el("input", { type: "checkbox", checked: Boolean(camera.loop) });

  // Each rule: its name, parameter form, active hours and zones.
  const rules = (camera.algorithms || []).map(ruleState);
  function ruleState(spec) {
    const hours = spec.active_hours && (spec.active_hours.start || spec.active_hours.end) ? spec.active_hours : null;
    return {
      name: spec.name,
      params: paramsForm(specs.get(spec.name)?.params_schema, spec.params),
      start: el("input", { type: "time", value: hours?.start || "" }),
      end: el("input", { type: "time", value: hours?.end || "" }),
      days: hours?.days,
      zones: editableZones(spec.zones),
    };
  }

  let current = rules.length ? 0 : -1; // the rule whose zones the editor shows
  const rulesBox = el("div", { class: "rules" });
  const zoneList = el("div", { class: "zone-list" });
  const ruleSelect = el("select", { onchange: () => { current = Number(ruleSelect.value); editor.reset(); refreshZones(); } });
  const editor = zoneEditor({
    editable,
    getZones: () => rules[current]?.zones || [],
    onChange: (structural) => { if (structural) renderZoneList(); renderRuleSummaries(); },
  });
  const zoneButtons = {
    add: el("button", { type: "button", onclick: () => editor.newZone() }, t("cameras.newZone")),
    close: el("button", { type: "button", onclick: () => editor.closeZone() }, t("cameras.closeZone")),
    point: el("button", { type: "button", onclick: () => editor.deletePoint() }, t("cameras.deletePoint")),
    zone: el("button", { type: "button", class: "danger", onclick: () => editor.deleteZone() }, t("cameras.deleteZone")),
  };

  function renderRules() {
    clear(rulesBox);
    rules.forEach((rule, index) => {
      const info = specs.get(rule.name);
      rulesBox.append(el("fieldset", { class: "card rule", dataset: { rule: rule.name } },
        el("legend", {}, rule.name, info?.version ? el("span", { class: "muted" }, ` ${info.version}`) : null),
        info?.description ? el("p", { class: "muted small" }, info.description) : null,
        el("h3", {}, t("cameras.params")), rule.params.node,
        el("div", { class: "row" }, el("span", { class: "muted small grow" }, t("cameras.activeHours")),
          el("label", {}, t("common.from"), rule.start), el("label", {}, t("common.to"), rule.end)),
        el("div", { class: "row" },
          el("span", { class: "grow zone-summary", dataset: { ruleIndex: String(index) } }),
          el("button", { type: "button", onclick: () => { current = index; editor.reset(); refreshZones();
            editor.canvas.scrollIntoView({ behavior: "smooth", block: "center" }); } }, t("cameras.editZones")),
          editable ? el("button", { type: "button", class: "danger", onclick: () => removeRule(index) }, t("cameras.removeRule")) : null)));
    });
    renderRuleSummaries();
  }

  function renderRuleSummaries() {
    rulesBox.querySelectorAll(".zone-summary").forEach((node) => {
      const zones = rules[Number(node.dataset.ruleIndex)]?.zones || [];
      node.textContent = `${t("cameras.zones")}: ${zones.map((z) => z.name).join(", ") || t("common.none")}`;
    });
  }

  function removeRule(index) {
    rules.splice(index, 1);
    current = rules.length ? Math.min(current, rules.length - 1) : -1;
    renderRules();
    editor.reset();
    refreshZones();
  }

  function addRule(name) {
    if (!name) return;
    rules.push(ruleState({ name, params: {}, zones: [] }));
    current = rules.length - 1;
    renderRules();
    editor.reset();
    refreshZones();
  }

  /** The rule selector, the zone list and the canvas after the rule or its zones changed. */
  function refreshZones() {
    clear(ruleSelect).append(...rules.map((r, i) => el("option", { value: String(i) }, `${i + 1}. ${r.name}`)));
    ruleSelect.value = String(current);
    ruleSelect.disabled = !rules.length;
    renderZoneList();
    editor.draw();
  }

  function renderZoneList() {
    clear(zoneList);
    const zones = rules[current]?.zones;
    const active = editor.state.active;
    const zone = zones?.[active];
    zoneButtons.add.disabled = !editable || !zones;
    zoneButtons.close.disabled = !editable || !zone || zone.closed || zone.points.length < 3;
    zoneButtons.point.disabled = !editable || !zone || editor.state.point < 0;
    zoneButtons.zone.disabled = !editable || !zone;
    if (!zones) {
      zoneList.append(el("p", { class: "muted" }, t("cameras.noRules")));
      return;
    }
    zones.forEach((z, zi) => {
      const name = el("input", { value: z.name, "data-zone-name": "", maxlength: 64, required: true, readonly: !editable,
        oninput: () => { z.name = name.value; editor.draw(); renderRuleSummaries(); } });
      zoneList.append(el("div", { class: `zone-item${zi === active ? " active" : ""}` },
        el("span", { class: "zone-dot", style: { background: ZONE_COLOURS[zi % ZONE_COLOURS.length] } }),
        name,
        el("span", { class: "muted small" }, t("cameras.points", { n: z.points.length }), z.closed ? "" : ` · ${t("cameras.open")}`),
        el("button", { type: "button", onclick: () => editor.select(zi) }, t("cameras.select")),
        editable ? el("button", { type: "button", class: "danger", onclick: () => editor.deleteZone(zi) }, t("cameras.deleteZone")) : null));
    });
  }

  async function loadFrame() {
    if (isNew) { editor.setFrame(null); return; }
    try {
      const response = await api("GET", `/cameras/${encodeURIComponent(id)}/frame`, { raw: true });
      if (frameUrl) URL.revokeObjectURL(frameUrl);
      frameUrl = URL.createObjectURL(await response.blob());
      const image = new Image();
      image.src = frameUrl;
      await image.decode();
      editor.setFrame(image);
    } catch (error) {
      editor.setFrame(null, error.status === 503 ? t("cameras.noFrame") : t("common.error", { why: explain(error) }));
    }
  }

  /** The camera as the API takes it (the YAML shape); throws a readable message for local mistakes. */
  function cameraBody() {
    const body = {
      id: idInput.value.trim(), name: nameInput.value.trim(), url: urlInput.value.trim(),
      department: deptInput.value.trim(), scene_type: sceneInput.value.trim(), loop: loopBox.checked,
      grid_code: gridInput.value.trim(), address: addressInput.value.trim(),
      shared_with: sharedInput.value.split(",").map((s) => s.trim()).filter(Boolean),
    };
    if (tzInput.value.trim()) body.timezone = tzInput.value.trim();
    if (fpsInput.value.trim()) body.analysis_fps = Number(fpsInput.value);
    if (latInput.value.trim() || lonInput.value.trim()) {
      if (!latInput.value.trim() || !lonInput.value.trim()) throw t("cameras.locationBoth");
      body.location = { lat: Number(latInput.value), lon: Number(lonInput.value) };
    }
    body.algorithms = rules.map((rule) => ruleBody(rule));
    if (camera.quality) body.quality = camera.quality; // its video-quality thresholds (YAML/API only) stay
    return body;
  }

  function ruleBody(rule) {
    const names = new Set();
    for (const zone of rule.zones) {
      if (!zone.name.trim()) throw t("cameras.zoneNameMissing", { rule: rule.name });
      if (names.has(zone.name.trim())) throw t("cameras.zoneNameDup", { rule: rule.name, zone: zone.name });
      names.add(zone.name.trim());
      if (zone.points.length < 3) throw t("cameras.zoneTooSmall", { rule: rule.name, zone: zone.name });
    }
    let params;
    try { params = rule.params.read(); } catch (e) { throw t("cameras.badParam", { rule: rule.name, param: e.param, why: e.why }); }
    const out = {
      name: rule.name,
      zones: rule.zones.map((z) => ({ name: z.name.trim(), polygon: z.points.map((p) => [round4(p.x), round4(p.y)]) })),
      params,
    };
    if (rule.start.value || rule.end.value) {
      if (!rule.start.value || !rule.end.value) throw t("cameras.hoursBoth", { rule: rule.name });
      out.active_hours = { start: rule.start.value, end: rule.end.value, ...(rule.days ? { days: rule.days } : {}) };
    }
    return out;
  }

  async function save(event) {
    event.preventDefault();
    let body;
    try {
      body = cameraBody();
    } catch (message) {
      status.show(String(message), "error");
      return;
    }
    status.show(t("cameras.saving"));
    try {
      const query = { enabled: String(enabledBox.checked) };
      const saved = isNew
        ? await api("POST", "/cameras", { body, query })
        : await api("PUT", `/cameras/${encodeURIComponent(id)}`, { body, query });
      await context.cameras(true);
      if (isNew) {
        status.show(t("cameras.created", { id: saved.camera.id }), "ok");
        location.hash = `#/cameras/${encodeURIComponent(saved.camera.id)}`;
      } else status.show(t("cameras.saved", { revision: saved.revision }), "ok");
    } catch (error) {
      status.show(t("common.error", { why: explain(error) }), "error");
    }
  }

  async function remove() {
    if (!confirm(t("cameras.confirmDelete", { id }))) return;
    try {
      await api("DELETE", `/cameras/${encodeURIComponent(id)}`);
      await context.cameras(true);
      location.hash = "#/cameras";
    } catch (error) {
      status.show(t("common.error", { why: explain(error) }), "error");
    }
  }

  const addSelect = catalogue
    ? el("select", {}, el("option", { value: "" }, "—"), catalogue.map((a) => el("option", { value: a.name }, a.name)))
    : el("input", { placeholder: "illegal_parking" });
  const health = record?.health;
  const form = el("form", { class: "camera-form", onsubmit: save },
    el("fieldset", { class: "card", disabled: !editable },
      el("div", { class: "form-grid" }, idField, nameField, urlField, deptField, sharedField, sceneField, gridField, addressField, tzField,
        latField, lonField, fpsField,
        el("label", { class: "check" }, enabledBox, t("cameras.enabled")),
        el("label", { class: "check" }, loopBox, t("cameras.loop")))),
    el("h2", {}, t("cameras.zoneEditor")),
    el("section", { class: "card zone-editor" },
      el("div", { class: "row" },
        el("label", {}, t("cameras.zoneRule"), ruleSelect),
        el("button", { type: "button", onclick: loadFrame, disabled: isNew }, t("cameras.reloadFrame"))),
      el("p", { class: "muted small" }, t("cameras.zoneHelp")),
      editor.canvas,
      editable ? el("div", { class: "row" }, zoneButtons.add, zoneButtons.close, zoneButtons.point, zoneButtons.zone) : null,
      zoneList),
    el("h2", {}, t("cameras.rules")),
    el("fieldset", { class: "rules-box", disabled: !editable },
      rulesBox,
      editable ? el("div", { class: "row" }, addSelect,
        el("button", { type: "button", onclick: () => { addRule(addSelect.value.trim()); addSelect.value = ""; } }, t("cameras.addRule"))) : null),
    editable ? el("div", { class: "row sticky-actions" },
      el("button", { id: "save-camera", type: "submit", class: "primary" }, t("cameras.save")),
      isNew ? null : el("button", { type: "button", class: "danger", onclick: remove }, t("cameras.delete")),
      status) : null);

  root.append(
    el("div", { class: "row" },
      el("h1", { class: "grow" }, isNew ? t("cameras.new") : `${camera.name || camera.id} (${camera.id})`),
      el("a", { class: "button", href: "#/cameras" }, t("cameras.back"))),
    record ? el("p", {}, healthBadge(health?.status, health?.reason), " ", ...qualityBadges(health?.quality), " ",
      el("span", { class: "muted" }, `${t("cameras.lastFrame")}: ${formatTime(health?.last_frame_at, camera.timezone)}`),
      health?.reason ? el("span", { class: "muted" }, ` · ${health.reason}`) : null) : "", // native append: not null
    editable ? "" : el("p", { class: "status" }, t("cameras.readOnly")),
    form);
  if (!editable) root.append(status);
  renderRules();
  refreshZones();
  await loadFrame();
  return () => { if (frameUrl) URL.revokeObjectURL(frameUrl); };
}

// -- the page -------------------------------------------------------------------------------------

export async function render(view, { params, session, context }) {
  const root = el("div", { class: "page-cameras" });
  view.append(root);
  if (params[0]) return renderDetail(root, params[0], { session, context });
  return renderList(root, { session, context });
}
