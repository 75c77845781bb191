// The console's shell: session, router (history API; deep links served by WHAGO), header and nav.
import { h, clear } from "./dom.js";
import { api, token, setUnauthorizedHandler } from "./api.js";
import { session, navigate, signOut, endSession, setRenderer } from "./state.js";
import { LANGUAGES, lang, loadLanguage, t } from "./i18n.js";
import { live } from "./events.js";
import { loginView, registerView } from "./views/auth.js";
import { chipsView } from "./views/chips.js";
import { chipView } from "./views/chip.js";
import { accountView } from "./views/account.js";
import { adminView, ADMIN_SECTIONS } from "./views/admin.js";

let cleanup = [];

const ROUTES = [
  [/^\/login$/, loginView, { public: true }],
  [/^\/register$/, registerView, { public: true }],
  [/^\/chips$/, chipsView, {}],
  [/^\/chips\/([0-9a-fA-F-]{36})$/, chipView, {}],
  [/^\/account$/, accountView, {}],
  [/^\/admin\/([a-z]+)$/, adminView, { admin: true }],
];

async function loadSession() {
  try {
    session.plans = await api("GET", "/plans");
  } catch {
    session.plans = [];
  }
  if (!token()) return;
  try {
    session.user = await api("GET", "/auth/me");
    live.start();
  } catch {
    session.user = null;
  }
}

function liveIndicator() {
  const el = h("span", { class: "live", role: "status", "aria-live": "polite" });
  const show = (state) => {
    el.dataset.state = state;
    clear(el, h("span", { "aria-hidden": "true" }, state === "live" ? "●" : "◌"), " ", t(`live.${state}`));
  };
  show(live.state);
  cleanup.push(live.on("state", show));
  return el;
}

function languageSwitch() {
  const id = "lang-select";
  const select = h(
    "select",
    {
      id,
      onchange: async (event) => {
        await loadLanguage(event.target.value);
        render();
        document.getElementById(id)?.focus();
      },
    },
    Object.entries(LANGUAGES).map(([code, name]) => h("option", { value: code, selected: code === lang() }, name)),
  );
  return h("div", { class: "lang" }, h("label", { for: id }, t("nav.language")), select);
}

function header(path) {
  const user = session.user;
  const link = (href, text) =>
    h("a", { href, "data-link": true, "aria-current": path === href || path.startsWith(`${href}/`) ? "page" : null }, text);
  const nav = user
    ? h(
        "nav",
        { "aria-label": t("nav.main") },
        h("ul", {}, h("li", {}, link("/chips", t("nav.chips"))), h("li", {}, link("/account", t("nav.account")))),
        user.is_admin &&
          h(
            "ul",
            { class: "operator", "aria-label": t("nav.operator") },
            ADMIN_SECTIONS.map((name) => h("li", {}, link(`/admin/${name}`, t(`admin.${name}.title`)))),
          ),
      )
    : null;
  return h(
    "header",
    { class: "top" },
    h("a", { class: "skip", href: "#main" }, t("nav.skip")),
    h(
      "div",
      { class: "bar" },
      h("a", { class: "brand", href: user ? "/chips" : "/login", "data-link": true }, "WHAGO"),
      user && liveIndicator(),
      languageSwitch(),
      user && h("span", { class: "who" }, user.email),
      user && h("button", { type: "button", class: "secondary", id: "logout", onclick: signOut }, t("nav.logout")),
    ),
    nav,
  );
}

export function render() {
  for (const undo of cleanup) undo();
  cleanup = [];
  const path = location.pathname.replace(/\/+$/, "") || "/";
  const root = document.getElementById("app");
  const main = h("main", { id: "main", tabindex: "-1" });
  if (path === "/") {
    history.replaceState(null, "", session.user ? "/chips" : "/login");
    return render();
  }
  const match = ROUTES.map(([re, view, opts]) => [path.match(re), view, opts]).find(([m]) => m);
  if (!match) {
    clear(root, header(path), main);
    main.append(h("h1", { tabindex: "-1" }, t("notfound.title")), h("p", {}, h("a", { href: "/", "data-link": true }, t("notfound.home"))));
    document.title = `${t("notfound.title")} · WHAGO`;
    return;
  }
  const [m, view, opts] = match;
  if (!opts.public && !session.user) {
    history.replaceState(null, "", "/login");
    return render();
  }
  if (opts.public && session.user) {
    history.replaceState(null, "", "/chips");
    return render();
  }
  clear(root, header(path), main);
  if (opts.admin && !session.user.is_admin) {
    main.append(h("h1", { tabindex: "-1" }, t("admin.forbidden")));
    document.title = `${t("admin.forbidden")} · WHAGO`;
    return;
  }
  const onLeave = (fn) => cleanup.push(fn);
  view(main, { params: m.slice(1), onLeave });
  const title = main.querySelector("h1");
  if (title && document.activeElement?.id !== "lang-select") title.focus({ preventScroll: true });
}

document.addEventListener("click", (event) => {
  const a = event.target.closest("a[data-link]");
  if (!a || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
  event.preventDefault();
  navigate(a.getAttribute("href"));
});
window.addEventListener("popstate", render);
setUnauthorizedHandler(() => endSession());
setRenderer(render);

await loadLanguage();
await loadSession();
render();
