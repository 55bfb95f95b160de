// The cluster (ops, admin): workers and their devices with load, which camera runs where and how it
// is doing, and the cameras the scheduler could not place. Refreshed every 5 s while the page is open.

import { api, explain } from "../api.js";
import { clear, el, statusLine } from "../dom.js";
import { addMessages, formatTime, t } from "../i18n.js";
import { healthBadge } from "./cameras.js";

const REFRESH_MS = 5000;

addMessages({
  "zh-CN": {
    "cluster.title": "集群状态", "cluster.workers": "工作节点", "cluster.worker": "节点", "cluster.address": "地址",
    "cluster.alive": "在线", "cluster.dead": "失联", "cluster.heartbeat": "最后心跳", "cluster.devices": "设备",
    "cluster.device": "设备", "cluster.load": "负载", "cluster.fps": "已分析 {analysed} / 容量 {capacity} 帧/秒",
    "cluster.cameras": "摄像机", "cluster.assignments": "摄像机分配", "cluster.since": "分配时间",
    "cluster.lastFrame": "最后一帧", "cluster.reason": "原因", "cluster.unplaced": "未能分配的摄像机",
    "cluster.noWorkers": "没有工作节点", "cluster.noAssignments": "没有已分配的摄像机", "cluster.allPlaced": "所有启用的摄像机都已分配",
    "cluster.summary": "{alive}/{total} 个节点在线 · 最高负载 {max} · 平均负载 {mean}", "cluster.updated": "更新于 {time}，每 5 秒刷新",
    "cluster.noDevices": "无设备",
  },
  en: {
    "cluster.title": "Cluster", "cluster.workers": "Workers", "cluster.worker": "Worker", "cluster.address": "Address",
    "cluster.alive": "alive", "cluster.dead": "lost", "cluster.heartbeat": "Last heartbeat", "cluster.devices": "Devices",
    "cluster.device": "Device", "cluster.load": "Load", "cluster.fps": "analysed {analysed} / capacity {capacity} frames/s",
    "cluster.cameras": "Cameras", "cluster.assignments": "Camera placement", "cluster.since": "Since",
    "cluster.lastFrame": "Last frame", "cluster.reason": "Reason", "cluster.unplaced": "Cameras not placed",
    "cluster.noWorkers": "No workers", "cluster.noAssignments": "No cameras placed", "cluster.allPlaced": "Every enabled camera is placed",
    "cluster.summary": "{alive}/{total} workers alive · highest load {max} · mean load {mean}",
    "cluster.updated": "Updated {time}; refreshes every 5 s", "cluster.noDevices": "no devices",
  },
});

const percent = (load) => `${Math.round((Number(load) || 0) * 100)}%`;
const fps = (value) => (Number(value) || 0).toFixed(1);

function cameraName(cameras, id) {
  const camera = cameras.get(id)?.camera;
  return camera?.name ? `${camera.name} (${id})` : id;
}

function cameraLink(cameras, id) {
  return el("a", { href: `#/cameras/${encodeURIComponent(id)}` }, cameraName(cameras, id));
}

/** A horizontal bar for a load (1.0 = the device's measured capacity; over 1 shows as overloaded). */
function loadBar(load) {
  const value = Number(load) || 0;
  const level = value > 1 ? "over" : value > 0.8 ? "high" : "";
  return el("div", { class: `load-bar ${level}`, role: "meter", "aria-valuenow": value.toFixed(2), title: percent(value) },
    el("div", { class: "load-fill", style: { width: `${Math.min(100, value * 100)}%` } }));
}

function deviceRow(device, cameras) {
  return el("tr", {},
    el("td", {}, device.device_id),
    el("td", { class: "load-cell" }, loadBar(device.load), el("span", { class: "small" }, percent(device.load))),
    el("td", { class: "small" }, t("cluster.fps", { analysed: fps(device.analysed_fps), capacity: fps(device.capacity_fps) })),
    el("td", {}, (device.camera_ids || []).length
      ? el("div", { class: "camera-chips" }, device.camera_ids.map((id) => el("span", { class: "chip" }, cameraLink(cameras, id))))
      : el("span", { class: "muted" }, "—")));
}

function workerCard(worker, cameras) {
  const devices = worker.devices || [];
  return el("article", { class: `card worker ${worker.alive ? "" : "dead"}`, dataset: { workerId: worker.worker_id } },
    el("div", { class: "row" },
      el("h3", { class: "grow" }, worker.worker_id),
      el("span", { class: `badge ${worker.alive ? "alive" : "lost"}` }, worker.alive ? t("cluster.alive") : t("cluster.dead"))),
    el("p", { class: "muted small" }, `${t("cluster.address")}: ${worker.address || "—"} · ${t("cluster.heartbeat")}: ${formatTime(worker.last_heartbeat)}`),
    devices.length
      ? el("table", { class: "devices" },
        el("thead", {}, el("tr", {}, [t("cluster.device"), t("cluster.load"), "", t("cluster.cameras")].map((h) => el("th", {}, h)))),
        el("tbody", {}, devices.map((d) => deviceRow(d, cameras))))
      : el("p", { class: "muted" }, t("cluster.noDevices")));
}

function assignmentTable(assignments, cameras) {
  if (!assignments.length) return el("p", { class: "muted" }, t("cluster.noAssignments"));
  const sorted = [...assignments].sort((a, b) => a.camera_id.localeCompare(b.camera_id));
  return el("table", { class: "assignments" },
    el("thead", {}, el("tr", {}, [t("common.camera"), t("cluster.worker"), t("cluster.device"), t("cluster.since"),
      t("common.state"), t("cluster.lastFrame")].map((h) => el("th", {}, h)))),
    el("tbody", {}, sorted.map((a) => {
      const tz = cameras.get(a.camera_id)?.camera.timezone;
      return el("tr", { dataset: { cameraId: a.camera_id } },
        el("td", {}, cameraLink(cameras, a.camera_id)),
        el("td", {}, a.worker_id),
        el("td", {}, a.device_id || "—"),
        el("td", {}, formatTime(a.since, tz)),
        el("td", {}, healthBadge(a.health?.state, a.health?.reason),
          a.health?.reason ? el("div", { class: "muted small" }, a.health.reason) : null),
        el("td", {}, formatTime(a.health?.last_frame_at, tz)));
    })));
}

function unplacedTable(unplaced, cameras) {
  const entries = Object.entries(unplaced || {});
  if (!entries.length) return el("p", { class: "muted" }, t("cluster.allPlaced"));
  return el("table", { class: "unplaced" },
    el("thead", {}, el("tr", {}, el("th", {}, t("common.camera")), el("th", {}, t("cluster.reason")))),
    el("tbody", {}, entries.map(([id, reason]) =>
      el("tr", { dataset: { cameraId: id } }, el("td", {}, cameraLink(cameras, id)), el("td", {}, reason)))));
}

function renderStatus(body, data, cameras) {
  const workers = data.workers || [];
  clear(body).append(
    el("p", { class: "cluster-summary" }, t("cluster.summary", {
      alive: workers.filter((w) => w.alive).length, total: workers.length,
      max: percent(data.max_load), mean: percent(data.mean_load),
    })),
    el("h2", {}, t("cluster.workers")),
    workers.length ? el("div", { class: "workers" }, workers.map((w) => workerCard(w, cameras)))
      : el("p", { class: "muted" }, t("cluster.noWorkers")),
    el("h2", {}, t("cluster.unplaced")),
    unplacedTable(data.unplaced, cameras),
    el("h2", {}, t("cluster.assignments")),
    assignmentTable(data.assignments || [], cameras));
}

export async function render(view, { context }) {
  const cameras = await context.cameras().catch(() => new Map());
  const status = statusLine();
  const body = el("div", {}, el("p", { class: "muted" }, t("common.loading")));
  let timer = null;
  let stopped = false;
  let busy = false;

  // One request at a time: the next is scheduled when this one has finished.
  async function refresh() {
    if (busy || stopped) return;
    busy = true;
    clearTimeout(timer);
    try {
      const data = await api("GET", "/cluster");
      if (stopped) return;
      renderStatus(body, data, cameras);
      status.show(t("cluster.updated", { time: formatTime(new Date().toISOString()) }));
    } catch (error) {
      if (stopped) return;
      status.show(t("common.error", { why: explain(error) }), "error"); // the last good state stays shown
    } finally {
      busy = false;
    }
    if (!body.isConnected) stopped = true; // the page was left before its cleanup was registered
    if (!stopped) timer = setTimeout(refresh, REFRESH_MS);
  }

  view.append(el("div", { class: "page-cluster" },
    el("div", { class: "row" },
      el("h1", { class: "grow" }, t("cluster.title")),
      el("button", { type: "button", onclick: refresh }, t("common.refresh"))),
    status, body));
  refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
