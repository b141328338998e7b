// The REST API as the dashboard reads it: the session cookie authenticates (sent by the
// browser, never readable here); a write echoes the CSRF cookie in X-Metrana-CSRF.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function cookie(name) {
  const found = document.cookie.split("; ").find((c) => c.startsWith(name + "="));
  return found ? decodeURIComponent(found.slice(name.length + 1)) : "";
}

export async function api(path, { method = "GET", query = {}, body } = {}) {
  const url = new URL("/api/v1" + path, location.origin);
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined || value === null) continue;
    for (const v of Array.isArray(value) ? value : [value]) url.searchParams.append(key, v);
  }
  const headers = { Accept: "application/json" };
  if (method !== "GET") {
    headers["X-Metrana-CSRF"] = cookie("metrana_csrf");
    headers["Content-Type"] = "application/json";
  }
  const answer = await fetch(url, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await answer.json().catch(() => null);
  if (!answer.ok || !json || json.error) {
    const error = (json && json.error) || {};
    throw new ApiError(answer.status, error.code || "error", error.message || answer.statusText);
  }
  return json.data;
}

export async function loginWithKey(apiKey) {
  const answer = await fetch("/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    credentials: "same-origin",
    body: JSON.stringify({ api_key: apiKey }),
  });
  if (!answer.ok) throw new ApiError(answer.status, "unauthorized", "that API key was refused");
}

export async function logout() {
  await fetch("/logout", {
    method: "POST",
    headers: { "X-Metrana-CSRF": cookie("metrana_csrf") },
    credentials: "same-origin",
  });
}

// An experiment's series downsampled for `width` pixels (Metrana's chart extension).
export function chartSeries(experimentId, { width, fromStep, toStep, metrics = [] } = {}) {
  return api(`/experiments/${encodeURIComponent(experimentId)}/charts`, {
    query: { width, from_step: fromStep, to_step: toStep, metric_name: metrics },
  });
}
