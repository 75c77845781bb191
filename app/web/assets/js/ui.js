// Pieces shared by the views: status badges (text + symbol, never colour alone), notices,
// the confirmation dialog, page headings.
import { h, clear } from "./dom.js";
import { errorText } from "./api.js";
import { t } from "./i18n.js";

const STATUS_SYMBOL = {
  provisioning: "…",
  starting: "↻",
  waiting_qr: "▦",
  connected: "●",
  disconnected: "○",
  failed: "✕",
  deleting: "⌫",
};

export function statusBadge(status) {
  const known = STATUS_SYMBOL[status] !== undefined;
  return h(
    "span",
    { class: `badge status-${known ? status : "unknown"}`, dataset: { status } },
    h("span", { "aria-hidden": "true" }, STATUS_SYMBOL[status] || "?"),
    " ",
    known ? t(`status.${status}`) : status,
  );
}

const HEALTH_SYMBOL = { ok: "✓", degraded: "!", unknown: "?" };
export function healthBadge(health) {
  const value = HEALTH_SYMBOL[health] ? health : "unknown";
  return h(
    "span",
    { class: `badge health-${value}`, dataset: { health: value } },
    h("span", { "aria-hidden": "true" }, HEALTH_SYMBOL[value]),
    " ",
    t(`health.${value}`),
  );
}

const TICKS = { pending: "◷", sent: "✓", delivered: "✓✓", read: "✓✓", failed: "✕" };
export function ticks(status) {
  return h(
    "span",
    { class: `ticks msg-${status}`, dataset: { status } },
    h("span", { "aria-hidden": "true" }, TICKS[status] || "?"),
    " ",
    TICKS[status] ? t(`message.status.${status}`) : status,
  );
}

// A region that shows one message at a time: role=alert for errors, role=status otherwise.
export function noticeArea() {
  const el = h("div", { class: "notice-area" });
  el.show = (text, kind = "info") => {
    clear(el, h("p", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, text));
  };
  el.error = (error) => el.show(errorText(error), "error");
  el.reset = () => clear(el);
  return el;
}

export function confirmAction(text) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-ok").textContent = t("action.confirm");
  document.getElementById("confirm-cancel").textContent = t("action.cancel");
  dialog.returnValue = "";
  dialog.showModal();
  document.getElementById("confirm-cancel").focus();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

export function heading(text) {
  document.title = `${text} · WHAGO`;
  return h("h1", { tabindex: "-1", id: "page-title" }, text);
}

// Runs an async action with its button disabled, reporting errors in `notice`.
export async function busy(button, notice, action) {
  if (button) button.disabled = true;
  notice?.reset();
  try {
    return await action();
  } catch (error) {
    notice?.error(error);
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

export function unavailable() {
  return h("p", { class: "notice info", role: "status" }, t("error.not_available"));
}
