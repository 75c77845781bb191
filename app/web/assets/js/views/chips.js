import { h, field, clear } from "../dom.js";
import { api } from "../api.js";
import { t, formatDate } from "../i18n.js";
import { live } from "../events.js";
import { session, navigate, refreshUser } from "../state.js";
import { heading, noticeArea, busy, statusBadge, healthBadge } from "../ui.js";

export function chipsView(main, { onLeave }) {
  const notice = noticeArea();
  const list = h("ul", { class: "chips", "aria-live": "polite", id: "chip-list" });
  const planLine = h("p", { class: "plan", id: "plan-line" });
  let chips = [];

  const row = (chip) =>
    h(
      "li",
      { class: "chip-row card", dataset: { chipId: chip.id } },
      h("a", { href: `/chips/${chip.id}`, "data-link": true, class: "alias" }, chip.alias),
      statusBadge(chip.status),
      chip.status === "connected" && healthBadge(chip.health),
      h("span", { class: "phone" }, chip.phone_number || ""),
      h("small", { class: "muted" }, t("chips.changed", { when: formatDate(chip.status_changed_at) })),
    );

  const draw = () => {
    clear(list, chips.length ? chips.map(row) : h("li", { class: "empty" }, t("chips.empty")));
    const max = session.user.max_chips;
    planLine.textContent = t("chips.plan", { plan: session.user.plan, used: chips.length, max });
  };

  const load = async () => {
    try {
      const page = await api("GET", "/chips?limit=100");
      chips = page.items;
      draw();
    } catch (error) {
      notice.error(error);
    }
  };

  const alias = field(t("chips.alias"), { name: "alias", required: true, maxlength: 64, autocomplete: "off" }, t("chips.alias_hint"));
  const submit = h("button", { type: "submit" }, t("chips.add"));
  const form = h(
    "form",
    {
      class: "card",
      id: "add-chip",
      onsubmit: (event) => {
        event.preventDefault();
        const value = new FormData(form).get("alias").trim();
        busy(submit, notice, async () => {
          const chip = await api("POST", "/chips", { alias: value });
          navigate(`/chips/${chip.id}`);
        });
      },
    },
    h("h2", {}, t("chips.add_title")),
    planLine,
    alias,
    notice,
    h("div", { class: "row" }, submit),
  );

  main.append(heading(t("chips.title")), form, h("h2", {}, t("chips.list")), list);

  onLeave(
    live.on("chip.status", (event) => {
      const chip = chips.find((c) => c.id === event.chip_id);
      if (!chip) return load();
      chip.status = event.status;
      chip.status_changed_at = event.at;
      if (event.status !== "connected") chip.phone_number = null;
      if (event.status === "connected") load();
      else draw();
    }),
  );
  onLeave(
    live.on("chip.health", (event) => {
      const chip = chips.find((c) => c.id === event.chip_id);
      if (chip) {
        chip.health = event.health;
        draw();
      }
    }),
  );
  onLeave(
    live.on("chip.deleted", (event) => {
      chips = chips.filter((c) => c.id !== event.chip_id);
      draw();
    }),
  );
  onLeave(live.on("resync", load));
  refreshUser().then(draw, () => {});
  load();
}
