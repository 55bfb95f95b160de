// The console: a single page on the gateway's REST API and live events, no build step.
// Routes are "#/<page>/<param>"; each page is a module in pages/ exporting
//   render(view, {params, session, context}) → optional cleanup function
// and is offered only to the roles listed in ROUTES (the server checks them again on every call).

import { api, explain, setUnauthenticatedHandler } from "./api.js";
import { clear, el, statusLine } from "./dom.js";
import { LANGUAGES, currentLanguage, setLanguage, t } from "./i18n.js";

const ROUTES = {
  queue: { module: "./pages/queue.js", roles: ["dispatcher"], nav: "nav.queue" },
  incidents: { module: "./pages/incident.js", roles: ["dispatcher"] },
  cases: { module: "./pages/cases.js", roles: ["dispatcher", "supervisor"], nav: "nav.cases" },
  assessment: { module: "./pages/assessment.js", roles: ["supervisor", "admin"], nav: "nav.assessment" },
  search: { module: "./pages/search.js", roles: ["police"], nav: "nav.search" },
  cameras: { module: "./pages/cameras.js", roles: ["ops", "admin", "dispatcher", "police"], nav: "nav.cameras" },
  cluster: { module: "./pages/cluster.js", roles: ["ops", "admin"], nav: "nav.cluster" },
  admin: { module: "./pages/admin.js", roles: ["admin"], nav: "nav.admin" },
};
const HOME_BY_ROLE = [
  ["dispatcher", "queue"], ["supervisor", "cases"], ["police", "search"], ["ops", "cameras"], ["admin", "admin"],
];

let session = null; // {name, department, roles, via}
let cleanup = null;

/** What every page shares: the caller, and the cameras in their scope (fetched once, on demand). */
const context = {
  _cameras: null,
  async cameras(reload = false) {
    if (!this._cameras || reload) {
      const answer = await api("GET", "/cameras");
      this._cameras = new Map(answer.cameras.map((record) => [record.camera.id, record]));
    }
    return this._cameras;
  },
  async timeZone(cameraId) {
    const record = (await this.cameras()).get(cameraId);
    return record ? record.camera.timezone : undefined;
  },
  _config: null,
  async config() {
    if (!this._config) this._config = await api("GET", "/console/config");
    return this._config;
  },
};

function allowed(route) {
  return session && route.roles.some((role) => session.roles.includes(role));
}

function home() {
  const found = HOME_BY_ROLE.find(([role]) => session.roles.includes(role));
  return found ? `#/${found[1]}` : "#/cameras";
}

function renderShell() {
  const nav = clear(document.getElementById("nav"));
  const me = clear(document.getElementById("me"));
  document.querySelectorAll("[data-i18n]").forEach((node) => (node.textContent = t(node.dataset.i18n)));
  const language = el(
    "select",
    { "aria-label": "language", onchange: (event) => { setLanguage(event.target.value); route(); } },
    Object.entries(LANGUAGES).map(([code, name]) =>
      el("option", { value: code, selected: code === currentLanguage() }, name)),
  );
  me.append(language);
  if (!session) return;
  for (const [name, spec] of Object.entries(ROUTES)) {
    if (spec.nav && allowed(spec)) nav.append(el("a", { href: `#/${name}`, "data-route": name }, t(spec.nav)));
  }
  me.append(
    el("span", { class: "who" }, `${session.name} · ${session.department}`),
    el("button", { class: "link", onclick: logout }, t("nav.logout")),
  );
}

async function logout() {
  try {
    await api("POST", "/auth/logout");
  } finally {
    session = null;
    context._cameras = null;
    location.hash = "#/login";
  }
}

function renderLogin(view) {
  const status = statusLine();
  const name = el("input", { name: "name", autocomplete: "username", required: true });
  const password = el("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
  const form = el(
    "form",
    { class: "card login", onsubmit: async (event) => {
      event.preventDefault();
      try {
        await api("POST", "/auth/login", { body: { name: name.value, password: password.value } });
        session = await api("GET", "/auth/me");
        location.hash = home();
      } catch (error) {
        status.show(t("login.failed", { why: explain(error) }), "error");
      }
    } },
    el("h1", {}, t("login.title")),
    el("label", {}, t("login.name"), name),
    el("label", {}, t("login.password"), password),
    el("button", { type: "submit", class: "primary" }, t("login.submit")),
    status,
  );
  view.append(form);
  if (document.body.dataset.sso === "true") {
    form.append(el("a", { class: "button", href: "/api/v1/auth/oidc/login" }, t("login.sso")));
  }
  name.focus();
}

let navigation = 0; // bumped on every route(); a page still loading from an older one gives up

async function route() {
  const current = ++navigation;
  const stale = () => current !== navigation;
  if (cleanup) {
    try { cleanup(); } catch (_) { /* a page's cleanup must not stop navigation */ }
    cleanup = null;
  }
  const view = clear(document.getElementById("view"));
  const [, page = "", ...params] = location.hash.replace(/^#/, "").split("/");
  if (!session && page !== "login") {
    try {
      session = await api("GET", "/auth/me");
    } catch (_) {
      if (!stale()) location.hash = "#/login";
      return;
    }
    if (stale()) return;
  }
  renderShell();
  if (page === "login") {
    renderLogin(view);
    return;
  }
  const spec = ROUTES[page];
  if (!spec || !allowed(spec)) {
    location.hash = home();
    return;
  }
  document.querySelectorAll("#nav a").forEach((a) => a.classList.toggle("active", a.dataset.route === page));
  // A page renders into its own container: if the user moves on while it loads, it is dropped
  // (never drawn over the next page) and its cleanup runs at once.
  const container = el("div", { class: "page", "data-page": page });
  view.append(container);
  let pageCleanup = null;
  try {
    const module = await import(spec.module);
    if (stale()) return;
    pageCleanup = (await module.render(container, { params: params.map(decodeURIComponent), session, context })) || null;
  } catch (error) {
    if (!stale()) container.append(el("p", { class: "status error" }, t("common.error", { why: explain(error) })));
  }
  if (stale()) {
    container.remove();
    if (pageCleanup) {
      try { pageCleanup(); } catch (_) { /* nothing more to do for a page nobody sees */ }
    }
    return;
  }
  cleanup = pageCleanup;
}

setUnauthenticatedHandler(() => {
  session = null;
  if (!location.hash.startsWith("#/login")) location.hash = "#/login";
});
window.addEventListener("hashchange", route);
route();
