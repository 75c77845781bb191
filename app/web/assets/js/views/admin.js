// Operator views (admins only; the API refuses others anyway).
import { h, field, clear } from "../dom.js";
import { api, ApiError } from "../api.js";
import { t, formatDate } from "../i18n.js";
import { session } from "../state.js";
import { heading, noticeArea, busy, statusBadge, confirmAction, unavailable } from "../ui.js";

export const ADMIN_SECTIONS = ["tenants", "instances", "proxies", "chips", "audit"];

function table(label, headers, rows) {
  // a focusable, labelled scroll region: wide tables scroll sideways on a phone
  return h(
    "div",
    { class: "table-wrap", tabindex: "0", role: "region", "aria-label": label },
    h(
      "table",
      {},
      h("thead", {}, h("tr", {}, headers.map((text) => h("th", { scope: "col" }, text)))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: headers.length }, t("admin.empty")))),
    ),
  );
}

function yesNo(value) {
  return value ? t("admin.yes") : t("admin.no");
}

const VIEWS = {
  tenants(main, notice) {
    let users = [];
    const search = field(t("admin.tenants.search"), { type: "search", name: "q", autocomplete: "off", id: "tenant-search" });
    const body = h("div", {});
    const input = search.querySelector("input");
    const planOptions = (current) =>
      session.plans.map((p) => h("option", { value: p.name, selected: p.name === current }, `${p.name} (${p.max_chips})`));
    const draw = () => {
      const q = input.value.trim().toLowerCase();
      const shown = users.filter((u) => !q || u.email.toLowerCase().includes(q) || (u.name || "").toLowerCase().includes(q));
      clear(
        body,
        table(
          t("admin.tenants.title"),
          [t("auth.email"), t("auth.name"), t("admin.tenants.chips"), t("admin.tenants.plan"), t("admin.tenants.state"), t("admin.actions")],
          shown.map((u) => {
            const selectId = `plan-${u.id}`;
            const select = h("select", { id: selectId }, planOptions(u.plan));
            const save = h(
              "button",
              {
                type: "button",
                class: "secondary",
                onclick: () =>
                  busy(save, notice, async () => {
                    await api("PATCH", `/admin/users/${u.id}`, { plan: select.value });
                    notice.show(t("admin.tenants.plan_saved", { email: u.email, plan: select.value }), "success");
                    await load();
                  }),
              },
              t("admin.tenants.save_plan"),
            );
            const disabled = Boolean(u.disabled);
            const toggle = h(
              "button",
              {
                type: "button",
                class: disabled ? "secondary" : "danger",
                onclick: async () => {
                  if (!disabled && !(await confirmAction(t("admin.tenants.disable_confirm", { email: u.email })))) return;
                  busy(toggle, notice, async () => {
                    await api("PATCH", `/admin/users/${u.id}`, { disabled: !disabled });
                    notice.show(t(disabled ? "admin.tenants.enabled" : "admin.tenants.disabled", { email: u.email }), "success");
                    await load();
                  });
                },
              },
              disabled ? t("admin.tenants.enable") : t("admin.tenants.disable"),
            );
            return h(
              "tr",
              { dataset: { userId: u.id, email: u.email } },
              h("td", {}, u.email, u.is_admin ? h("small", { class: "muted" }, ` (${t("account.admin")})`) : null),
              h("td", {}, u.name || ""),
              h("td", {}, `${u.chips ?? "?"} / ${u.max_chips ?? "?"}`),
              h("td", {}, h("label", { for: selectId, class: "sr-only" }, t("admin.tenants.plan_for", { email: u.email })), select, " ", save),
              h("td", {}, disabled ? t("admin.tenants.is_disabled") : t("admin.tenants.is_active")),
              h("td", {}, toggle),
            );
          }),
        ),
      );
    };
    const load = async () => {
      try {
        const page = await api("GET", "/admin/users?limit=200");
        users = page.items ?? page;
        draw();
      } catch (error) {
        notice.error(error);
      }
    };
    input.addEventListener("input", draw);

    // create a user (works with sign-up closed)
    const createNotice = noticeArea();
    const createSubmit = h("button", { type: "submit" }, t("admin.tenants.create"));
    const createForm = h(
      "form",
      {
        class: "card",
        onsubmit: (event) => {
          event.preventDefault();
          const data = new FormData(createForm);
          const bodyIn = { email: data.get("email"), password: data.get("password"), plan: data.get("plan") };
          if (data.get("name")) bodyIn.name = data.get("name");
          busy(createSubmit, createNotice, async () => {
            try {
              await api("POST", "/admin/users", bodyIn);
            } catch (error) {
              if (error instanceof ApiError && error.missingRoute) {
                createNotice.show(t("error.not_available"), "info");
                return;
              }
              throw error;
            }
            createForm.reset();
            createNotice.show(t("admin.tenants.created"), "success");
            await load();
          });
        },
      },
      h("h2", {}, t("admin.tenants.create_title")),
      field(t("auth.email"), { type: "email", name: "email", required: true, autocomplete: "off" }),
      field(t("auth.name"), { name: "name", autocomplete: "off" }),
      field(t("auth.password"), { type: "password", name: "password", required: true, minlength: 8, autocomplete: "new-password" }),
      field(t("admin.tenants.plan"), { tag: "select", name: "plan", options: planOptions("free") }),
      createNotice,
      h("div", { class: "row" }, createSubmit),
    );
    main.append(h("div", { class: "card" }, search), body, createForm);
    return load;
  },

  instances(main, notice) {
    const body = h("div", {});
    const load = async () => {
      try {
        const rows = await api("GET", "/admin/instances");
        const items = rows.items ?? rows;
        clear(
          body,
          table(
            t("admin.instances.title"),
            [t("admin.instances.tenant"), t("admin.instances.status"), t("admin.instances.sessions"), t("admin.instances.last_seen"), t("admin.actions")],
            items.map((i) => {
              const restart = h(
                "button",
                {
                  type: "button",
                  class: "secondary",
                  onclick: () =>
                    busy(restart, notice, async () => {
                      await api("POST", `/admin/instances/${i.user_id}/restart`);
                      notice.show(t("admin.instances.restarted"), "success");
                      await load();
                    }),
                },
                t("admin.instances.restart"),
              );
              const remove = h(
                "button",
                {
                  type: "button",
                  class: "danger",
                  onclick: async () => {
                    if (!(await confirmAction(t("admin.instances.remove_confirm", { job: i.job_id })))) return;
                    busy(remove, notice, async () => {
                      await api("DELETE", `/admin/instances/${i.user_id}`);
                      notice.show(t("admin.instances.removed"), "success");
                      await load();
                    });
                  },
                },
                t("admin.instances.remove"),
              );
              return h(
                "tr",
                { dataset: { userId: i.user_id } },
                h("td", {}, h("code", {}, i.job_id), h("br"), h("small", { class: "muted" }, i.user_id)),
                h("td", {}, i.status),
                h("td", {}, String(i.sessions ?? "")),
                h("td", {}, formatDate(i.last_seen_at)),
                h(
                  "td",
                  { class: "row wrap" },
                  restart,
                  remove,
                  i.nomad_ui_url && h("a", { href: i.nomad_ui_url, target: "_blank", rel: "noopener noreferrer" }, t("admin.instances.nomad")),
                ),
              );
            }),
          ),
        );
      } catch (error) {
        notice.error(error);
      }
    };
    main.append(body);
    return load;
  },

  proxies(main, notice) {
    const body = h("div", {});
    const formNotice = noticeArea();
    let editing = null;
    const submit = h("button", { type: "submit" }, t("admin.proxies.add"));
    const cancel = h("button", { type: "button", class: "secondary", hidden: true, onclick: () => edit(null) }, t("action.cancel"));
    const formTitle = h("h2", { id: "proxy-form-title" }, t("admin.proxies.add_title"));
    const form = h(
      "form",
      {
        class: "card",
        id: "proxy-form",
        "aria-labelledby": "proxy-form-title",
        onsubmit: (event) => {
          event.preventDefault();
          const data = new FormData(form);
          const proxy = {
            scheme: data.get("scheme"),
            host: data.get("host").trim(),
            port: Number(data.get("port")),
            username: data.get("username").trim() || null,
            country: data.get("country").trim().toLowerCase() || null,
            max_chips: Number(data.get("max_chips") || 10),
          };
          // write-only: an empty field keeps the stored password (or sets none on a new proxy)
          if (data.get("password")) proxy.password = data.get("password");
          else if (data.get("clear_password")) proxy.password = null;
          busy(submit, formNotice, async () => {
            if (editing) await api("PATCH", `/admin/proxies/${editing.id}`, proxy);
            else await api("POST", "/admin/proxies", proxy);
            formNotice.show(t(editing ? "admin.proxies.saved" : "admin.proxies.added"), "success");
            edit(null);
            await load();
          });
        },
      },
      formTitle,
      field(t("admin.proxies.scheme"), { tag: "select", name: "scheme", options: [h("option", { value: "http" }, "http"), h("option", { value: "socks5" }, "socks5")] }),
      field(t("admin.proxies.host"), { name: "host", required: true, autocomplete: "off" }),
      field(t("admin.proxies.port"), { name: "port", type: "number", min: 1, max: 65535, required: true }),
      field(t("admin.proxies.username"), { name: "username", autocomplete: "off" }),
      field(t("admin.proxies.password"), { name: "password", type: "password", autocomplete: "new-password" }, t("admin.proxies.password_hint")),
      h("div", { class: "field check" }, h("input", { type: "checkbox", name: "clear_password", id: "clear-password" }), h("label", { for: "clear-password" }, t("admin.proxies.clear_password"))),
      field(t("admin.proxies.country"), { name: "country", maxlength: 2, autocomplete: "off" }, t("admin.proxies.country_hint")),
      field(t("admin.proxies.max_chips"), { name: "max_chips", type: "number", min: 0, max: 10000, value: 10 }),
      formNotice,
      h("div", { class: "row" }, submit, cancel),
    );
    const edit = (proxy) => {
      editing = proxy;
      form.reset();
      formTitle.textContent = proxy ? t("admin.proxies.edit_title", { host: proxy.host }) : t("admin.proxies.add_title");
      submit.textContent = proxy ? t("admin.proxies.save") : t("admin.proxies.add");
      cancel.hidden = !proxy;
      if (proxy) {
        for (const name of ["scheme", "host", "port", "username", "country", "max_chips"]) form.elements[name].value = proxy[name] ?? "";
        form.elements.host.focus();
      }
    };
    const load = async () => {
      try {
        const rows = await api("GET", "/admin/proxies");
        const items = rows.items ?? rows;
        clear(
          body,
          table(
            t("admin.proxies.title"),
            [t("admin.proxies.address"), t("admin.proxies.country"), t("admin.proxies.chips"), t("admin.proxies.health"), t("admin.proxies.password"), t("admin.actions")],
            items.map((p) => {
              const remove = h(
                "button",
                {
                  type: "button",
                  class: "danger",
                  onclick: async () => {
                    if (!(await confirmAction(t("admin.proxies.remove_confirm", { host: p.host })))) return;
                    busy(remove, notice, async () => {
                      await api("DELETE", `/admin/proxies/${p.id}`);
                      notice.show(t("admin.proxies.removed"), "success");
                      await load();
                    });
                  },
                },
                t("admin.proxies.remove"),
              );
              return h(
                "tr",
                { dataset: { proxyId: p.id } },
                h("td", {}, `${p.scheme}://${p.username ? `${p.username}@` : ""}${p.host}:${p.port}`),
                h("td", {}, (p.country || "—").toUpperCase()),
                h("td", {}, `${p.chips} / ${p.max_chips}`),
                h("td", {}, p.healthy ? `✓ ${t("admin.proxies.healthy")}` : `✕ ${t("admin.proxies.unhealthy")}`, p.last_error && h("br"), p.last_error && h("small", { class: "muted" }, p.last_error)),
                h("td", {}, p.has_password ? t("admin.proxies.password_set") : t("admin.proxies.password_none")),
                h("td", { class: "row wrap" }, h("button", { type: "button", class: "secondary", onclick: () => edit(p) }, t("admin.proxies.edit")), remove),
              );
            }),
          ),
        );
      } catch (error) {
        notice.error(error);
      }
    };
    main.append(body, form);
    return load;
  },

  chips(main, notice) {
    const body = h("div", {});
    const statusSelect = field(t("admin.chips.status"), {
      tag: "select",
      name: "status",
      options: [h("option", { value: "" }, t("admin.chips.any")), ...["provisioning", "starting", "waiting_qr", "connected", "disconnected", "failed", "deleting"].map((s) => h("option", { value: s }, t(`status.${s}`)))],
    });
    const userField = field(t("admin.chips.user_id"), { name: "user_id", autocomplete: "off" });
    const filter = h(
      "form",
      { class: "card row wrap", onsubmit: (event) => (event.preventDefault(), load()) },
      statusSelect,
      userField,
      h("button", { type: "submit", class: "secondary" }, t("admin.filter")),
    );
    const load = async () => {
      const params = new URLSearchParams({ limit: "200" });
      const status = statusSelect.querySelector("select").value;
      const userId = userField.querySelector("input").value.trim();
      if (status) params.set("status", status);
      if (userId) params.set("user_id", userId);
      try {
        const page = await api("GET", `/admin/chips?${params}`);
        const items = page.items ?? page;
        clear(
          body,
          table(
            t("admin.chips.title"),
            [t("chips.alias"), t("chip.status"), t("chip.phone"), t("admin.chips.owner"), t("chip.changed")],
            items.map((c) =>
              h(
                "tr",
                { dataset: { chipId: c.id } },
                h("td", {}, c.alias),
                h("td", {}, statusBadge(c.status), c.error && h("small", { class: "error-text" }, ` ${c.error}`)),
                h("td", {}, c.phone_number || "—"),
                h("td", {}, h("small", {}, c.user_id)),
                h("td", {}, formatDate(c.status_changed_at)),
              ),
            ),
          ),
        );
      } catch (error) {
        notice.error(error);
      }
    };
    main.append(filter, body);
    return load;
  },

  audit(main, notice) {
    const body = h("div", {});
    let items = [];
    let nextBefore = null;
    const actionField = field(t("admin.audit.action"), { name: "action", autocomplete: "off" });
    const actorField = field(t("admin.audit.actor_id"), { name: "actor_id", autocomplete: "off" });
    const targetField = field(t("admin.audit.target_id"), { name: "target_id", autocomplete: "off" });
    const filter = h(
      "form",
      { class: "card row wrap", onsubmit: (event) => (event.preventDefault(), load()) },
      actionField,
      actorField,
      targetField,
      h("button", { type: "submit", class: "secondary" }, t("admin.filter")),
    );
    const describe = (value) => (value && Object.keys(value).length ? JSON.stringify(value) : "");
    const draw = () => {
      clear(
        body,
        table(
          t("admin.audit.title"),
          [t("admin.audit.at"), t("admin.audit.actor"), t("admin.audit.action"), t("admin.audit.target"), t("admin.audit.change")],
          items.map((e) =>
            h(
              "tr",
              {},
              h("td", {}, formatDate(e.at)),
              h("td", {}, e.actor_email || e.actor_id || "—"),
              h("td", {}, h("code", {}, e.action)),
              h("td", {}, `${e.target_type || ""} ${e.target_id || ""}`),
              h("td", {}, h("small", {}, [describe(e.before), describe(e.after)].filter(Boolean).join(" → "))),
            ),
          ),
        ),
        nextBefore && h("button", { type: "button", class: "secondary", onclick: () => load(true) }, t("chip.log.older")),
      );
    };
    const load = async (older = false) => {
      const params = new URLSearchParams({ limit: "50" });
      for (const [name, el] of [["action", actionField], ["actor_id", actorField], ["target_id", targetField]]) {
        const value = el.querySelector("input").value.trim();
        if (value) params.set(name, value);
      }
      if (older && nextBefore) params.set("before", nextBefore);
      try {
        const page = await api("GET", `/admin/audit?${params}`);
        items = older ? [...items, ...page.items] : page.items;
        nextBefore = page.next_before;
        draw();
      } catch (error) {
        if (error instanceof ApiError && error.missingRoute) clear(body, unavailable());
        else notice.error(error);
      }
    };
    main.append(filter, body);
    return load;
  },
};

export function adminView(main, { params: [section] }) {
  if (!VIEWS[section]) {
    main.append(heading(t("notfound.title")));
    return;
  }
  const notice = noticeArea();
  main.append(heading(t(`admin.${section}.title`)), notice);
  const load = VIEWS[section](main, notice);
  load();
}
