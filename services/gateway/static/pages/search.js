// 以图搜图 (police): a photo with a box dragged around the person or vehicle, an incident's object,
// or an earlier result; filtered by cameras (list or map), time, kind and colour. 车牌检索: a plate or
// a pattern (浙B*), the reader's confusable characters matching too, exact matches first. Each result can
// seed a new search ("more like this") or show where that object was seen, in time order, on the map.

import { api, explain } from "../api.js";
import { clear, el, statusLine } from "../dom.js";
import { addMessages, formatTime, t } from "../i18n.js";
import { renderMap } from "../map.js";

const FAMILIES = ["person", "vehicle", "non_motor"];
const COLOURS = ["black", "white", "grey", "red", "orange", "yellow", "green", "cyan", "blue", "purple", "pink", "brown"];
const SWATCH = {
  black: "#111", white: "#fff", grey: "#9e9e9e", red: "#e53935", orange: "#fb8c00", yellow: "#fdd835",
  green: "#43a047", cyan: "#00acc1", blue: "#1e88e5", purple: "#8e24aa", pink: "#ec407a", brown: "#795548",
};
const MIN_BOX = 0.01; // a drag smaller than 1% of the photo is a click, not a box
const SIGHTINGS_K = 100;

addMessages({
  "zh-CN": {
    "search.title": "以图搜图", "search.byImage": "按图片", "search.byIncident": "按事件编号",
    "search.photo": "照片", "search.boxHint": "在照片上拖动鼠标或手指，框出要找的人或车辆（不框则使用整张照片）。",
    "search.clearBox": "清除框选", "search.noPhoto": "请选择一张照片", "search.incidentId": "事件编号",
    "search.byTrack": "相似目标：{track}", "search.filters": "筛选条件", "search.cameras": "摄像机",
    "search.allCameras": "全选", "search.noCameras": "全不选", "search.camerasHint": "不选即搜索全部可见摄像机；点击地图上的摄像机可选中或取消。",
    "search.start": "开始时间", "search.end": "结束时间", "search.kind": "类别", "search.colour": "颜色",
    "search.k": "结果数量", "search.submit": "搜索", "search.export": "导出（ZIP）", "search.searching": "搜索中…",
    "search.exporting": "正在导出…", "search.exported": "已下载 {file}", "search.results": "搜索结果",
    "search.hits": "{n} 条结果（{embedder}）", "search.noHits": "没有找到相似目标",
    "search.score": "相似度 {score}", "search.more": "找相似", "search.sightings": "行动轨迹",
    "search.sightingsTitle": "目标出现记录（按时间）", "search.sightingsNone": "没有找到其他出现记录",
    "search.close": "关闭", "search.noCrop": "无截图", "search.firstSeen": "首次出现", "search.lastSeen": "最后出现",
    "search.needQuery": "请上传照片或填写事件编号", "search.badTime": "开始时间必须早于结束时间",
    "search.byPlate": "按车牌", "search.plate": "车牌号", "search.plateHint": "* 代表任意多个字符，? 代表一个字符（如 浙B*）；易混字符（0/D/Q、8/B、1/I、5/S、2/Z）也会匹配，完全一致的排在前面。",
    "search.exactOnly": "仅完全一致", "search.needPlate": "请填写车牌号", "search.plateHits": "{n} 条车牌记录",
    "search.plateExact": "完全一致", "search.plateSimilar": "易混字符匹配",
    "family.person": "行人", "family.vehicle": "机动车", "family.non_motor": "非机动车",
    "colour.black": "黑", "colour.white": "白", "colour.grey": "灰", "colour.red": "红", "colour.orange": "橙",
    "colour.yellow": "黄", "colour.green": "绿", "colour.cyan": "青", "colour.blue": "蓝", "colour.purple": "紫",
    "colour.pink": "粉", "colour.brown": "棕",
  },
  en: {
    "search.title": "Search by image", "search.byImage": "By photo", "search.byIncident": "By incident id",
    "search.photo": "Photo", "search.boxHint": "Drag on the photo (mouse or finger) to box the person or vehicle to find (no box: the whole photo).",
    "search.clearBox": "Clear box", "search.noPhoto": "Choose a photo", "search.incidentId": "Incident id",
    "search.byTrack": "Like object {track}", "search.filters": "Filters", "search.cameras": "Cameras",
    "search.allCameras": "All", "search.noCameras": "None", "search.camerasHint": "None ticked: every camera you may search. Click a camera on the map to tick or untick it.",
    "search.start": "From", "search.end": "To", "search.kind": "Kind", "search.colour": "Colour",
    "search.k": "Results", "search.submit": "Search", "search.export": "Export (ZIP)", "search.searching": "Searching…",
    "search.exporting": "Exporting…", "search.exported": "Downloaded {file}", "search.results": "Results",
    "search.hits": "{n} results ({embedder})", "search.noHits": "Nothing alike found",
    "search.score": "score {score}", "search.more": "More like this", "search.sightings": "Sightings",
    "search.sightingsTitle": "Where it was seen (in time order)", "search.sightingsNone": "No other sightings found",
    "search.close": "Close", "search.noCrop": "no crop", "search.firstSeen": "First seen", "search.lastSeen": "Last seen",
    "search.needQuery": "Upload a photo or give an incident id", "search.badTime": "The start must be before the end",
    "search.byPlate": "By plate", "search.plate": "Plate", "search.plateHint": "* stands for any run of characters, ? for one (e.g. 浙B*); confusable characters (0/D/Q, 8/B, 1/I, 5/S, 2/Z) match too, exact matches first.",
    "search.exactOnly": "Exact characters only", "search.needPlate": "Give a plate", "search.plateHits": "{n} plate matches",
    "search.plateExact": "exact", "search.plateSimilar": "confusable characters",
    "family.person": "Person", "family.vehicle": "Vehicle", "family.non_motor": "Non-motor vehicle",
    "colour.black": "black", "colour.white": "white", "colour.grey": "grey", "colour.red": "red",
    "colour.orange": "orange", "colour.yellow": "yellow", "colour.green": "green", "colour.cyan": "cyan",
    "colour.blue": "blue", "colour.purple": "purple", "colour.pink": "pink", "colour.brown": "brown",
  },
});

const clamp01 = (v) => Math.min(1, Math.max(0, v));

/** A datetime-local value (the browser's clock) as ISO 8601, or "" when empty. */
function isoOf(input) {
  if (!input.value) return "";
  const date = new Date(input.value);
  return Number.isNaN(date.getTime()) ? "" : date.toISOString();
}

// -- the query photo with its box ----------------------------------------------------------------

/** A canvas showing the chosen photo; dragging on it draws the box (kept in fractions 0-1). */
function queryCanvas(onChange) {
  const canvas = el("canvas", { id: "query-canvas", class: "query-canvas", width: 640, height: 360, tabindex: 0 });
  const state = { image: null, url: null, box: null, drag: null };

  const at = (event) => {
    const rect = canvas.getBoundingClientRect();
    return { x: clamp01((event.clientX - rect.left) / rect.width), y: clamp01((event.clientY - rect.top) / rect.height) };
  };

  function draw() {
    const g = canvas.getContext("2d");
    g.clearRect(0, 0, canvas.width, canvas.height);
    g.fillStyle = "#e9eef3";
    g.fillRect(0, 0, canvas.width, canvas.height);
    if (!state.image) {
      g.fillStyle = "#6b7280";
      g.font = "16px system-ui, sans-serif";
      g.textAlign = "center";
      g.fillText(t("search.noPhoto"), canvas.width / 2, canvas.height / 2);
      return;
    }
    g.drawImage(state.image, 0, 0, canvas.width, canvas.height);
    const box = state.drag ? normalise(state.drag.from, state.drag.to) : state.box;
    if (!box) return;
    const [x1, y1, x2, y2] = [box.x1 * canvas.width, box.y1 * canvas.height, box.x2 * canvas.width, box.y2 * canvas.height];
    g.fillStyle = "rgba(0, 0, 0, .45)"; // dim what lies outside the box
    g.fillRect(0, 0, canvas.width, y1);
    g.fillRect(0, y2, canvas.width, canvas.height - y2);
    g.fillRect(0, y1, x1, y2 - y1);
    g.fillRect(x2, y1, canvas.width - x2, y2 - y1);
    g.strokeStyle = "#ffeb3b";
    g.lineWidth = 2;
    g.strokeRect(x1, y1, x2 - x1, y2 - y1);
  }

  function normalise(a, b) {
    return { x1: Math.min(a.x, b.x), y1: Math.min(a.y, b.y), x2: Math.max(a.x, b.x), y2: Math.max(a.y, b.y) };
  }

  canvas.addEventListener("pointerdown", (event) => {
    if (!state.image || event.button > 0) return;
    canvas.setPointerCapture(event.pointerId);
    state.drag = { from: at(event), to: at(event) };
    event.preventDefault();
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!state.drag) return;
    state.drag.to = at(event);
    draw();
  });
  const finish = (event) => {
    if (!state.drag) return;
    state.drag.to = at(event);
    const box = normalise(state.drag.from, state.drag.to);
    state.drag = null;
    if (box.x2 - box.x1 >= MIN_BOX && box.y2 - box.y1 >= MIN_BOX) state.box = box;
    draw();
    onChange();
  };
  canvas.addEventListener("pointerup", finish);
  canvas.addEventListener("pointercancel", () => { state.drag = null; draw(); });

  return {
    canvas,
    /** Show a newly chosen file (the box is cleared). */
    async load(file) {
      if (state.url) URL.revokeObjectURL(state.url);
      state.url = null;
      state.image = null;
      state.box = null;
      if (file) {
        state.url = URL.createObjectURL(file);
        const image = new Image();
        image.src = state.url;
        await image.decode();
        // Large photos are drawn at most 960 px wide, small crops at least 480 px: room to drag a box.
        const scale = Math.min(960 / image.naturalWidth, Math.max(1, 480 / image.naturalWidth));
        canvas.width = Math.max(1, Math.round(image.naturalWidth * scale));
        canvas.height = Math.max(1, Math.round(image.naturalHeight * scale));
        state.image = image;
      }
      draw();
      onChange();
    },
    clearBox() { state.box = null; draw(); onChange(); },
    /** The box as the API takes it ("x1,y1,x2,y2", 4 decimals), or "" for the whole photo. */
    region() {
      const b = state.box;
      return b ? [b.x1, b.y1, b.x2, b.y2].map((v) => v.toFixed(4)).join(",") : "";
    },
    hasBox: () => Boolean(state.box),
    dispose() { if (state.url) URL.revokeObjectURL(state.url); },
    draw,
  };
}

// -- filters --------------------------------------------------------------------------------------

/** Checkboxes named `name`, one per value, with labels from `label(value)`. */
function checkboxes(name, values, label, decorate = () => null) {
  return el("div", { class: "checks" }, values.map((value) =>
    el("label", { class: "check" },
      el("input", { type: "checkbox", name, value }),
      decorate(value),
      label(value))));
}

function ticked(container, name) {
  return [...container.querySelectorAll(`input[name="${name}"]:checked`)].map((box) => box.value);
}

/** The camera list and map; both show and change one selection. */
function cameraPicker(cameras, tileUrl) {
  const selected = new Set();
  const list = el("div", { class: "checks camera-checks" });
  const mapBox = el("div", { class: "search-map" });

  function toggle(id, on = !selected.has(id)) {
    if (on) selected.add(id); else selected.delete(id);
    sync();
  }
  function sync() {
    list.querySelectorAll("input").forEach((box) => (box.checked = selected.has(box.value)));
    clear(mapBox);
    renderMap(mapBox, [...cameras.values()].map(({ camera }) => ({
      id: camera.id, label: camera.name || camera.id, lat: camera.location?.lat, lon: camera.location?.lon,
      active: selected.has(camera.id), onclick: (p) => toggle(p.id),
    })), { tileUrl, height: 260 });
  }
  for (const { camera } of cameras.values()) {
    list.append(el("label", { class: "check" },
      el("input", { type: "checkbox", value: camera.id, onchange: (e) => toggle(camera.id, e.target.checked) }),
      camera.name ? `${camera.name} (${camera.id})` : camera.id));
  }
  const all = (on) => { for (const id of cameras.keys()) if (on) selected.add(id); else selected.delete(id); sync(); };
  const node = el("fieldset", { class: "search-cameras" },
    el("legend", {}, t("search.cameras")),
    el("div", { class: "row" },
      el("button", { type: "button", onclick: () => all(true) }, t("search.allCameras")),
      el("button", { type: "button", onclick: () => all(false) }, t("search.noCameras"))),
    el("p", { class: "muted small" }, t("search.camerasHint")),
    list, mapBox);
  return { node, sync, ids: () => [...selected] };
}

// -- results --------------------------------------------------------------------------------------

function cameraLabel(cameras, id) {
  const record = cameras.get(id);
  return record && record.camera.name ? record.camera.name : id;
}

function tzOf(cameras, id) {
  return cameras.get(id)?.camera.timezone;
}

function describe(match) {
  const parts = [];
  if (match.family) parts.push(t(`family.${match.family}`));
  if (match.class_name) parts.push(match.class_name);
  if (match.colours?.length) parts.push(match.colours.map((c) => t(`colour.${c}`)).join("/"));
  return parts.join(" · ");
}

function cropImage(match) {
  return match.crop_url
    ? el("img", { class: "crop", src: match.crop_url, alt: match.track_id, loading: "lazy" })
    : el("div", { class: "crop crop-missing muted" }, t("search.noCrop"));
}

function resultCard(match, cameras, { onMore, onSightings }) {
  const headline = match.plate
    ? `${match.plate} · ${t(match.exact ? "search.plateExact" : "search.plateSimilar")}`
    : t("search.score", { score: Number(match.score).toFixed(3) });
  return el("article", { class: "card result", dataset: { trackId: match.track_id } },
    cropImage(match),
    el("div", { class: "result-meta" },
      el("strong", { class: match.plate ? "plate" : "" }, headline),
      el("div", {}, cameraLabel(cameras, match.camera_id)),
      el("div", { class: "muted" }, formatTime(match.crop_seen_at || match.first_seen, tzOf(cameras, match.camera_id))),
      el("div", { class: "muted small" }, describe(match))),
    el("div", { class: "row" },
      el("button", { type: "button", onclick: () => onMore(match) }, t("search.more")),
      el("button", { type: "button", onclick: () => onSightings(match) }, t("search.sightings"))));
}

/** The object's sightings in time order: a list and its path across the cameras on the map. */
function renderSightings(panel, seed, matches, cameras, tileUrl, onClose) {
  const byTrack = new Map(matches.map((m) => [m.track_id, m]));
  if (!byTrack.has(seed.track_id)) byTrack.set(seed.track_id, seed);
  const ordered = [...byTrack.values()].sort((a, b) => new Date(a.first_seen) - new Date(b.first_seen));
  // The trajectory: camera ids in time order, a camera repeated only when the object came back.
  const trajectory = ordered.map((m) => m.camera_id).filter((id, i, all) => i === 0 || all[i - 1] !== id);
  clear(panel).hidden = false;
  panel.append(
    el("div", { class: "row" },
      el("h2", { class: "grow" }, t("search.sightingsTitle")),
      el("button", { type: "button", onclick: onClose }, t("search.close"))),
    ordered.length < 2 ? el("p", { class: "muted" }, t("search.sightingsNone")) : "", // native append: not null
  );
  const mapBox = el("div", {});
  panel.append(mapBox);
  const used = new Set(trajectory);
  renderMap(mapBox, [...cameras.values()].filter(({ camera }) => used.has(camera.id)).map(({ camera }) => ({
    id: camera.id, label: camera.name || camera.id, lat: camera.location?.lat, lon: camera.location?.lon, active: true,
  })), { tileUrl, trajectory, height: 300 });
  panel.append(el("ol", { class: "sightings" }, ordered.map((m) => {
    const tz = tzOf(cameras, m.camera_id);
    return el("li", { class: m.track_id === seed.track_id ? "seed" : "", dataset: { trackId: m.track_id } },
      cropImage(m),
      el("div", {},
        el("strong", {}, cameraLabel(cameras, m.camera_id)),
        el("div", {}, `${formatTime(m.first_seen, tz)} – ${formatTime(m.last_seen, tz)}`),
        el("div", { class: "muted small" }, `${t("search.score", { score: Number(m.score).toFixed(3) })} · ${describe(m)}`)));
  })));
  panel.scrollIntoView({ behavior: "smooth", block: "start" });
}

// -- the page -------------------------------------------------------------------------------------

export async function render(view, { context }) {
  const cameras = await context.cameras();
  const tileUrl = (await context.config().catch(() => ({}))).map_tile_url || null;
  const status = statusLine();
  const resultsStatus = statusLine();
  const results = el("div", { id: "search-results", class: "grid results" });
  const sightings = el("section", { class: "card sightings-panel", hidden: true });

  let mode = "image"; // "image" | "incident" | "plate" | "track"
  let seedTrack = null; // the result a "more like this" search started from

  const photo = queryCanvas(() => (clearBox.disabled = !photo.hasBox()));
  const fileInput = el("input", { type: "file", accept: "image/jpeg,image/png,image/*", name: "image",
    onchange: () => photo.load(fileInput.files[0]).catch((error) => status.show(explain(error), "error")) });
  const clearBox = el("button", { type: "button", disabled: true, onclick: () => photo.clearBox() }, t("search.clearBox"));
  const incidentInput = el("input", { name: "incident_id", pattern: "[A-Za-z0-9_\\-]{1,64}", maxlength: 64 });
  const plateInput = el("input", { name: "plate", maxlength: 64, autocomplete: "off" });
  const exactOnly = el("input", { type: "checkbox", name: "exact_only" });
  const start = el("input", { type: "datetime-local", name: "start", step: 1 });
  const end = el("input", { type: "datetime-local", name: "end", step: 1 });
  const k = el("input", { type: "number", name: "k", min: 1, max: 100, value: 20 });
  const families = checkboxes("families", FAMILIES, (f) => t(`family.${f}`));
  const colours = checkboxes("colours", COLOURS, (c) => t(`colour.${c}`),
    (c) => el("span", { class: "swatch", style: { background: SWATCH[c] } }));
  const picker = cameraPicker(cameras, tileUrl);
  const trackNote = el("p", { class: "badge track-note", hidden: true });
  const exportButton = el("button", { type: "button", onclick: () => exportZip() }, t("search.export"));

  const imagePane = el("div", { class: "query-pane" },
    el("label", {}, t("search.photo"), fileInput), photo.canvas,
    el("div", { class: "row" }, el("p", { class: "muted small grow" }, t("search.boxHint")), clearBox));
  const incidentPane = el("div", { class: "query-pane", hidden: true },
    el("label", {}, t("search.incidentId"), incidentInput));
  const platePane = el("div", { class: "query-pane", hidden: true },
    el("label", {}, t("search.plate"), plateInput),
    el("label", { class: "check" }, exactOnly, t("search.exactOnly")),
    el("p", { class: "muted small" }, t("search.plateHint")));
  const tabs = el("div", { class: "tabs", role: "tablist" });
  const setMode = (next) => {
    mode = next;
    imagePane.hidden = next !== "image";
    incidentPane.hidden = next !== "incident";
    platePane.hidden = next !== "plate";
    exportButton.hidden = next === "plate"; // the ZIP export is of image searches
    trackNote.hidden = next !== "track";
    tabs.querySelectorAll("button").forEach((b) => b.classList.toggle("active", b.dataset.mode === next));
  };
  tabs.append(
    el("button", { type: "button", dataset: { mode: "image" }, onclick: () => setMode("image") }, t("search.byImage")),
    el("button", { type: "button", dataset: { mode: "incident" }, onclick: () => setMode("incident") }, t("search.byIncident")),
    el("button", { type: "button", dataset: { mode: "plate" }, onclick: () => setMode("plate") }, t("search.byPlate")));

  /** The query of a plate search (GET /search/plates): the plate and the camera and time filters. */
  function plateQuery() {
    if (!plateInput.value.trim()) throw new Error(t("search.needPlate"));
    const from = isoOf(start), to = isoOf(end);
    if (from && to && from >= to) throw new Error(t("search.badTime"));
    return { q: plateInput.value.trim(), exact_only: exactOnly.checked ? "true" : "", k: k.value || "20",
      start: from, end: to, camera_ids: picker.ids() };
  }

  /** The form the API takes for the current query and filters (search and export alike). */
  function queryForm({ trackId = null, filters = true, count = k.value || "20" } = {}) {
    const form = new FormData();
    if (trackId) form.append("track_id", trackId);
    else if (mode === "image") {
      if (!fileInput.files[0]) throw new Error(t("search.needQuery"));
      form.append("image", fileInput.files[0]);
      if (photo.region()) form.append("region", photo.region());
    } else if (mode === "incident") {
      if (!incidentInput.value.trim()) throw new Error(t("search.needQuery"));
      form.append("incident_id", incidentInput.value.trim());
    } else form.append("track_id", seedTrack.track_id);
    form.append("k", String(count));
    const from = isoOf(start), to = isoOf(end);
    if (from && to && from >= to) throw new Error(t("search.badTime"));
    if (from) form.append("start", from);
    if (to) form.append("end", to);
    if (!filters) return form;
    picker.ids().forEach((id) => form.append("camera_ids", id));
    ticked(families, "families").forEach((f) => form.append("families", f));
    ticked(colours, "colours").forEach((c) => form.append("colours", c));
    return form;
  }

  async function runSearch() {
    let form;
    try {
      form = mode === "plate" ? plateQuery() : queryForm();
    } catch (error) {
      status.show(error.message, "error");
      return;
    }
    status.show(t("search.searching"));
    sightings.hidden = true;
    try {
      const answer = mode === "plate"
        ? await api("GET", "/search/plates", { query: form })
        : await api("POST", "/search", { body: form });
      status.show("");
      showResults(answer);
    } catch (error) {
      status.show(t("common.error", { why: explain(error) }), "error");
    }
  }

  function showResults(answer) {
    clear(results);
    const matches = answer.matches || [];
    const found = answer.embedder ? t("search.hits", { n: matches.length, embedder: answer.embedder }) : t("search.plateHits", { n: matches.length });
    resultsStatus.show(matches.length ? found : t("search.noHits"));
    results.append(...matches.map((m) => resultCard(m, cameras, { onMore: moreLikeThis, onSightings: showSightings })));
  }

  function moreLikeThis(match) {
    seedTrack = match;
    trackNote.textContent = t("search.byTrack", { track: match.track_id });
    setMode("track");
    runSearch();
  }

  async function showSightings(match) {
    status.show(t("search.searching"));
    try {
      // Sightings: only the time range narrows them, so the whole path across cameras shows.
      const answer = await api("POST", "/search", { body: queryForm({ trackId: match.track_id, filters: false, count: SIGHTINGS_K }) });
      status.show("");
      renderSightings(sightings, match, answer.matches || [], cameras, tileUrl, () => (sightings.hidden = true));
    } catch (error) {
      status.show(t("common.error", { why: explain(error) }), "error");
    }
  }

  async function exportZip() {
    let form;
    try {
      form = queryForm();
    } catch (error) {
      status.show(error.message, "error");
      return;
    }
    status.show(t("search.exporting"));
    try {
      const response = await api("POST", "/search/export", { body: form, raw: true });
      const disposition = response.headers.get("Content-Disposition") || "";
      const named = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(disposition);
      const file = named ? decodeURIComponent(named[1]) : `retina-search-${new Date().toISOString().replace(/[:.]/g, "-")}.zip`;
      download(await response.blob(), file);
      status.show(t("search.exported", { file }), "ok");
    } catch (error) {
      status.show(t("common.error", { why: explain(error) }), "error");
    }
  }

  const form = el("form", { id: "search-form", class: "card search-form", onsubmit: (e) => { e.preventDefault(); runSearch(); } },
    tabs, imagePane, incidentPane, platePane, trackNote,
    el("h2", {}, t("search.filters")),
    el("div", { class: "row" },
      el("label", {}, t("search.start"), start),
      el("label", {}, t("search.end"), end),
      el("label", {}, t("search.k"), k)),
    el("fieldset", {}, el("legend", {}, t("search.kind")), families),
    el("fieldset", {}, el("legend", {}, t("search.colour")), colours),
    picker.node,
    el("div", { class: "row" },
      el("button", { type: "submit", class: "primary" }, t("search.submit")),
      exportButton),
    status);

  view.append(el("div", { class: "page-search" },
    el("h1", {}, t("search.title")),
    el("div", { class: "split" },
      form,
      el("section", {}, el("h2", {}, t("search.results")), resultsStatus, sightings, results))));
  setMode("image");
  picker.sync();
  photo.draw();
  return () => photo.dispose();
}

/** Save a blob under `name` through a temporary link. */
function download(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = el("a", { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
