// Fetch wrapper for /api/v1: bearer token, JSON in and out, and every error as an ApiError built
// from the contract's body {status_code, detail, code}.
import { t } from "./i18n.js";

const TOKEN_KEY = "whago.token";

export function token() {
  return localStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) localStorage.setItem(TOKEN_KEY, value);
  else localStorage.removeItem(TOKEN_KEY);
}

export class ApiError extends Error {
  constructor(status, code, detail, retryAfter = null) {
    super(detail || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
    this.detail = detail;
    this.retryAfter = retryAfter;
  }

  // A route this server does not have (yet): 404 not_found on a known object, or 405.
  get missingRoute() {
    return this.status === 404 || this.status === 405;
  }
}

let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

export async function api(method, path, body = undefined, headers = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers } };
  if (token()) init.headers.Authorization = `Bearer ${token()}`;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(`/api/v1${path}`, init);
  } catch {
    throw new ApiError(0, "network_error", null);
  }
  if (response.status === 204) return null;
  let data = null;
  const text = await response.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const retry = response.headers.get("Retry-After");
    const error = new ApiError(response.status, data?.code || null, data?.detail || null, retry ? Number(retry) : null);
    if (response.status === 401 && token() && !path.startsWith("/auth/login")) onUnauthorized(error);
    throw error;
  }
  return data;
}

// The sentence shown to a person for an error: the API's own detail, plus what to do about it.
export function errorText(error) {
  if (!(error instanceof ApiError)) return t("error.unexpected");
  if (error.status === 0) return t("error.network");
  if (error.status === 429) {
    const seconds = error.retryAfter ?? 60;
    return `${error.detail || t("error.rate_limited")} ${t("error.retry_in", { seconds })}`;
  }
  if (error.status === 503) return `${t("error.busy")} ${error.detail || ""}`.trim();
  if (error.status === 405) return t("error.not_available");
  return error.detail || t("error.http", { status: error.status });
}
