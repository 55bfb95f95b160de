// Chinese (zh-CN, the default) and English. Each page module adds its own messages with
// addMessages(); t(key, {name: value}) fills {name} placeholders. The choice is kept per browser.

const messages = { "zh-CN": {}, en: {} };
export const LANGUAGES = { "zh-CN": "中文", en: "English" };
let language = localStorage.getItem("retina.language") || "zh-CN";

export function addMessages(table) {
  for (const [lang, entries] of Object.entries(table)) Object.assign(messages[lang], entries);
}

export function currentLanguage() {
  return language;
}

export function setLanguage(lang) {
  language = LANGUAGES[lang] ? lang : "zh-CN";
  localStorage.setItem("retina.language", language);
  document.documentElement.lang = language;
}

/** The message `key` in the current language (English, then the key itself, when missing). */
export function t(key, vars = {}) {
  const text = messages[language][key] ?? messages.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? String(vars[name]) : `{${name}}`));
}

/** A time as the camera's clock shows it (its IANA time zone; the browser's when unknown). */
export function formatTime(value, timeZone) {
  if (!value) return "—";
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return "—";
  const options = {
    year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
  };
  try {
    return new Intl.DateTimeFormat(language, { ...options, timeZone: timeZone || undefined }).format(date);
  } catch (_) { // an unknown zone name
    return new Intl.DateTimeFormat(language, options).format(date);
  }
}

export function formatSeconds(seconds) {
  const s = Math.max(0, Math.round(Number(seconds) || 0));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return h ? `${h}h ${m}m` : m ? `${m}m ${r}s` : `${r}s`;
}

addMessages({
  "zh-CN": {
    "brand.subtitle": "数字视网膜",
    "nav.queue": "事件队列", "nav.cases": "案卷", "nav.assessment": "综合评价", "nav.search": "以图搜图", "nav.cameras": "摄像机", "nav.cluster": "集群",
    "nav.admin": "管理", "nav.logout": "退出",
    "login.title": "登录", "login.name": "用户名", "login.password": "密码", "login.submit": "登录",
    "login.sso": "使用统一身份认证登录", "login.failed": "登录失败：{why}",
    "common.save": "保存", "common.cancel": "取消", "common.loading": "加载中…", "common.none": "无",
    "common.error": "出错了：{why}", "common.camera": "摄像机", "common.rule": "规则", "common.zone": "区域",
    "common.state": "状态", "common.time": "时间", "common.from": "从", "common.to": "到", "common.all": "全部",
    "common.apply": "应用", "common.department": "部门", "common.refresh": "刷新",
  },
  en: {
    "brand.subtitle": "digital retina",
    "nav.queue": "Incidents", "nav.cases": "Cases", "nav.assessment": "Assessment", "nav.search": "Search by image", "nav.cameras": "Cameras", "nav.cluster": "Cluster",
    "nav.admin": "Admin", "nav.logout": "Log out",
    "login.title": "Log in", "login.name": "User name", "login.password": "Password", "login.submit": "Log in",
    "login.sso": "Log in with single sign-on", "login.failed": "Login failed: {why}",
    "common.save": "Save", "common.cancel": "Cancel", "common.loading": "Loading…", "common.none": "none",
    "common.error": "Something went wrong: {why}", "common.camera": "Camera", "common.rule": "Rule",
    "common.zone": "Zone", "common.state": "State", "common.time": "Time", "common.from": "From",
    "common.to": "To", "common.all": "All", "common.apply": "Apply", "common.department": "Department",
    "common.refresh": "Refresh",
  },
});
setLanguage(language);
