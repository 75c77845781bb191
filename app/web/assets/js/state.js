// Session state and navigation, shared by the shell (main.js) and the views.
import { api, setToken } from "./api.js";
import { live } from "./events.js";

export const session = { user: null, plans: [] };
let renderHook = () => {};

export function setRenderer(fn) {
  renderHook = fn;
}

export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  renderHook();
}

export function signIn(answer) {
  setToken(answer.access_token);
  session.user = answer.user;
  live.stop();
  live.start();
  navigate("/chips");
}

export function endSession() {
  setToken(null);
  session.user = null;
  live.stop();
  navigate("/login", { replace: true });
}

export async function signOut() {
  try {
    await api("POST", "/auth/logout");
  } catch {
    // a server without the route, or an already revoked token: the local session ends anyway
  }
  endSession();
}

export async function refreshUser() {
  session.user = await api("GET", "/auth/me");
  return session.user;
}
