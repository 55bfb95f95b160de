// The gateway's REST API as the console calls it: same origin, session cookie, CSRF header.

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : JSON.stringify(detail));
    this.status = status;
    this.detail = detail;
  }
}

function cookie(name) {
  const found = document.cookie.split("; ").find((part) => part.startsWith(name + "="));
  return found ? decodeURIComponent(found.slice(name.length + 1)) : "";
}

let onUnauthenticated = () => {};

/** Called when the session has ended (401): the app shows the login page. */
export function setUnauthenticatedHandler(handler) {
  onUnauthenticated = handler;
}

/**
 * Call the API. `body` may be a plain object (sent as JSON) or FormData (multipart).
 * Resolves to the parsed JSON (or the Response for `raw`), rejects with ApiError.
 */
export async function api(method, path, { body, query, raw = false } = {}) {
  const url = new URL("/api/v1" + path, location.origin);
  for (const [key, value] of Object.entries(query || {})) {
    if (value === undefined || value === null || value === "") continue;
    for (const item of Array.isArray(value) ? value : [value]) url.searchParams.append(key, item);
  }
  const headers = {};
  if (method !== "GET") headers["X-CSRF-Token"] = cookie("retina_csrf");
  let payload;
  if (body instanceof FormData) payload = body;
  else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const response = await fetch(url, { method, headers, body: payload, credentials: "same-origin" });
  if (response.status === 401 && !path.startsWith("/auth/login")) onUnauthenticated();
  if (!response.ok) {
    let detail = response.statusText;
    try {
      detail = (await response.json()).detail;
    } catch (_) { /* not JSON */ }
    throw new ApiError(response.status, detail);
  }
  if (raw) return response;
  return response.status === 204 ? null : response.json();
}

/** A readable line for an API error (a 422's field list becomes "field: problem; ..."). */
export function explain(error) {
  if (!(error instanceof ApiError)) return String(error);
  if (Array.isArray(error.detail)) {
    return error.detail.map((item) => `${(item.loc || []).slice(1).join(".")}: ${item.msg}`).join("; ");
  }
  return error.message;
}
