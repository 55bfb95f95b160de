// A small map with no outside assets: cameras (and a trajectory) drawn by their coordinates on an
// SVG, over the city's own tile server when one is configured (map_tile_url, {z}/{x}/{y} tiles in
// Web Mercator). Without tiles it still shows where cameras are relative to each other.

import { el } from "./dom.js";
import { addMessages, t } from "./i18n.js";

addMessages({
  "zh-CN": { "map.no_location": "未设置摄像机坐标（在摄像机配置中填写纬度、经度）" },
  en: { "map.no_location": "No camera coordinates set (give latitude and longitude in the camera's configuration)" },
});

const SVG = "http://www.w3.org/2000/svg";
const TILE = 256;

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Web Mercator: longitude/latitude → world pixels at zoom z. */
function project(lon, lat, z) {
  const scale = TILE * 2 ** z;
  const sin = Math.sin((Math.max(-85, Math.min(85, lat)) * Math.PI) / 180);
  return [((lon + 180) / 360) * scale, (0.5 - Math.log((1 + sin) / (1 - sin)) / (4 * Math.PI)) * scale];
}

/**
 * Draw `points` ([{id, label, lat, lon, active, onclick}]) into `container`; with `trajectory`
 * (the ids in time order) a numbered line joins them. Returns the map element.
 */
export function renderMap(container, points, { tileUrl = null, trajectory = [], height = 320 } = {}) {
  const box = el("div", { class: "map", style: { height: `${height}px` } });
  container.append(box);
  const placed = points.filter((p) => Number.isFinite(p.lat) && Number.isFinite(p.lon));
  const width = box.clientWidth || 600;
  if (!placed.length) {
    box.classList.add("empty");
    box.append(el("p", { class: "muted map-empty" }, t("map.no_location")));
    return box;
  }
  // The largest zoom (at most 18) that fits every point with a margin.
  let zoom = 18;
  for (; zoom > 1; zoom--) {
    const xy = placed.map((p) => project(p.lon, p.lat, zoom));
    const xs = xy.map((v) => v[0]), ys = xy.map((v) => v[1]);
    if (Math.max(...xs) - Math.min(...xs) < width * 0.8 && Math.max(...ys) - Math.min(...ys) < height * 0.8) break;
  }
  const xy = placed.map((p) => project(p.lon, p.lat, zoom));
  const cx = (Math.min(...xy.map((v) => v[0])) + Math.max(...xy.map((v) => v[0]))) / 2;
  const cy = (Math.min(...xy.map((v) => v[1])) + Math.max(...xy.map((v) => v[1]))) / 2;
  const left = cx - width / 2, top = cy - height / 2;
  if (tileUrl) {
    const n = 2 ** zoom;
    for (let tx = Math.floor(left / TILE); tx <= Math.floor((left + width) / TILE); tx++) {
      for (let ty = Math.floor(top / TILE); ty <= Math.floor((top + height) / TILE); ty++) {
        if (ty < 0 || ty >= n) continue;
        const src = tileUrl.replace("{z}", zoom).replace("{x}", ((tx % n) + n) % n).replace("{y}", ty);
        box.append(el("img", {
          class: "tile", src, alt: "", style: { left: `${tx * TILE - left}px`, top: `${ty * TILE - top}px` },
        }));
      }
    }
  }
  const layer = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img" });
  const at = new Map(placed.map((p, i) => [p.id, [xy[i][0] - left, xy[i][1] - top]]));
  const path = trajectory.map((id) => at.get(id)).filter(Boolean);
  if (path.length > 1) {
    layer.append(svg("polyline", {
      points: path.map(([x, y]) => `${x},${y}`).join(" "), fill: "none", stroke: "#c62828",
      "stroke-width": 3, "stroke-dasharray": "6 4",
    }));
    path.forEach(([x, y], i) => layer.append(svg("text", { x: x + 9, y: y - 9, class: "step", fill: "#c62828" }, String(i + 1))));
  }
  placed.forEach((p) => {
    const [x, y] = at.get(p.id);
    const mark = svg("g", { class: "camera", tabindex: 0, "data-camera": p.id });
    mark.append(
      svg("circle", { cx: x, cy: y, r: p.active ? 8 : 6, fill: p.active ? "#c62828" : "#0b5cad", stroke: "#fff", "stroke-width": 2 }),
      svg("text", { x: x + 10, y: y + 4, "font-size": 12, fill: "#1f2933" }, p.label || p.id),
      svg("title", {}, p.label || p.id),
    );
    if (p.onclick) mark.addEventListener("click", () => p.onclick(p));
    layer.append(mark);
  });
  box.append(layer);
  return box;
}
