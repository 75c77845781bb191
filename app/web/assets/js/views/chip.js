import { h, field, clear } from "../dom.js";
import { api, ApiError } from "../api.js";
import { t, formatDate } from "../i18n.js";
import { live } from "../events.js";
import { navigate } from "../state.js";
import { heading, noticeArea, busy, statusBadge, healthBadge, ticks, confirmAction } from "../ui.js";

// chip statuses with a localized "no QR code now" reason (i18n keys chip.qr.none.<status>)
const QR_REASONS = ["provisioning", "starting", "waiting_qr", "connected", "disconnected", "failed", "deleting"];

// Whether this server has the development scan route: it only takes POST, so a GET answers 405
// where it exists and 404 where it does not (production, or a server without it).
const devScan = new Map();
async function hasDevScan(chipId) {
  if (!devScan.has(chipId)) {
    try {
      await api("GET", `/dev/chips/${chipId}/scan`);
      devScan.set(chipId, true);
    } catch (error) {
      devScan.set(chipId, error instanceof ApiError && error.status === 405);
    }
  }
  return devScan.get(chipId);
}

export function chipView(main, { params: [chipId], onLeave }) {
  let chip = null;
  let messages = [];
  let nextBefore = null;
  let logAvailable = true;
  const title = heading(t("chip.title"));
  const notice = noticeArea();
  const summary = h("div", { class: "card summary", id: "chip-summary" });
  const passkey = h("div", { id: "passkey" });
  const qrSection = h("section", { class: "card", id: "qr-section", "aria-labelledby": "qr-title", hidden: true });
  const logList = h("ul", { class: "log", id: "message-log", "aria-live": "polite" });
  const logMore = h("div", {});
  const historyList = h("ol", { class: "history", id: "history" });

  // ---- summary and actions
  const drawSummary = () => {
    title.textContent = chip.alias;
    document.title = `${chip.alias} · WHAGO`;
    clear(
      summary,
      h(
        "dl",
        { class: "facts" },
        h("dt", {}, t("chip.status")),
        h("dd", { id: "chip-status" }, statusBadge(chip.status)),
        h("dt", {}, t("chip.health")),
        h("dd", { id: "chip-health" }, healthBadge(chip.health), chip.health_checked_at ? h("small", { class: "muted" }, ` ${formatDate(chip.health_checked_at)}`) : null),
        h("dt", {}, t("chip.phone")),
        h("dd", { id: "chip-phone" }, chip.phone_number || "—"),
        h("dt", {}, t("chip.proxy")),
        h("dd", {}, chip.proxy ? (chip.proxy.country || "").toUpperCase() || t("chip.proxy_any") : "—"),
        h("dt", {}, t("chip.changed")),
        h("dd", {}, formatDate(chip.status_changed_at)),
        chip.error && h("dt", {}, t("chip.error")),
        chip.error && h("dd", { class: "error-text" }, chip.error),
      ),
    );
    qrSection.hidden = chip.status !== "waiting_qr";
    if (chip.status === "waiting_qr") loadQr();
  };

  const loadChip = async () => {
    try {
      chip = await api("GET", `/chips/${chipId}`);
      drawSummary();
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        clear(main, heading(t("chip.not_found")), h("p", {}, h("a", { href: "/chips", "data-link": true }, t("chip.back"))));
        return false;
      }
      notice.error(error);
    }
    return true;
  };

  // ---- QR, pairing code, simulated scan
  const qrImage = h("img", { id: "qr-image", alt: t("chip.qr.alt"), width: 264, height: 264, hidden: true });
  const qrMessage = h("p", { id: "qr-message", role: "status" });
  const qrNotice = noticeArea();
  let qrLoading = false;
  const loadQr = async () => {
    if (qrLoading) return;
    qrLoading = true;
    try {
      const qr = await api("GET", `/chips/${chipId}/qr`);
      qrImage.hidden = !qr.qr_code;
      if (qr.qr_code) qrImage.src = qr.qr_code;
      // with a code, the instructions above say it all; without one, say why in the user's language
      const parts = [qr.qr_code ? "" : QR_REASONS.includes(qr.status) ? t(`chip.qr.none.${qr.status}`) : qr.message];
      if (typeof qr.attempts_left === "number") parts.push(t("chip.qr.attempts", { count: qr.attempts_left }));
      qrMessage.textContent = parts.filter(Boolean).join(" ");
    } catch (error) {
      qrNotice.error(error);
    } finally {
      qrLoading = false;
    }
  };
  const pairingResult = h("p", { id: "pairing-code", class: "code", "aria-live": "polite" });
  const pairingSubmit = h("button", { type: "submit", class: "secondary" }, t("chip.pairing.submit"));
  const pairingForm = h(
    "form",
    {
      onsubmit: (event) => {
        event.preventDefault();
        const phone = new FormData(pairingForm).get("phone_number").trim();
        busy(pairingSubmit, qrNotice, async () => {
          const answer = await api("POST", `/chips/${chipId}/pairing-code`, { phone_number: phone });
          pairingResult.textContent = t("chip.pairing.code", { code: answer.code });
        });
      },
    },
    h("h3", {}, t("chip.pairing.title")),
    field(t("chip.pairing.phone"), { name: "phone_number", inputmode: "numeric", autocomplete: "tel", required: true, pattern: "\\+?[0-9]{8,15}" }, t("chip.pairing.hint")),
    h("div", { class: "row" }, pairingSubmit),
    pairingResult,
  );
  const scanButton = h(
    "button",
    {
      type: "button",
      id: "simulate-scan",
      class: "secondary",
      hidden: true,
      onclick: () =>
        busy(scanButton, qrNotice, async () => {
          try {
            await api("POST", `/dev/chips/${chipId}/scan`, {});
            qrNotice.show(t("chip.qr.scanned"), "success");
          } catch (error) {
            if (error instanceof ApiError && error.status === 404) scanButton.hidden = true;
            throw error;
          }
        }),
    },
    t("chip.qr.simulate"),
  );
  append(qrSection, [
    h("h2", { id: "qr-title" }, t("chip.qr.title")),
    h("p", {}, t("chip.qr.instructions")),
    qrImage,
    qrMessage,
    h("div", { class: "row" }, scanButton),
    qrNotice,
    pairingForm,
  ]);
  hasDevScan(chipId).then((yes) => {
    scanButton.hidden = !yes;
  });

  // ---- actions: rename, restart, logout, delete
  const actionNotice = noticeArea();
  const renameSubmit = h("button", { type: "submit", class: "secondary" }, t("chip.rename.submit"));
  const renameForm = h(
    "form",
    {
      class: "inline",
      onsubmit: (event) => {
        event.preventDefault();
        const alias = new FormData(renameForm).get("alias").trim();
        busy(renameSubmit, actionNotice, async () => {
          chip = await api("PATCH", `/chips/${chipId}`, { alias });
          drawSummary();
          actionNotice.show(t("chip.rename.done"), "success");
        });
      },
    },
    field(t("chip.rename.label"), { name: "alias", required: true, maxlength: 64, autocomplete: "off" }),
    renameSubmit,
  );
  const action = (id, label, path, confirmText, after, cls = "secondary") => {
    const button = h(
      "button",
      {
        type: "button",
        id,
        class: cls,
        onclick: async () => {
          if (confirmText && !(await confirmAction(confirmText))) return;
          await busy(button, actionNotice, async () => {
            const answer = await api(path[0], path[1]);
            after(answer);
          });
        },
      },
      label,
    );
    return button;
  };
  const actions = h(
    "section",
    { class: "card", "aria-labelledby": "actions-title" },
    h("h2", { id: "actions-title" }, t("chip.actions")),
    h(
      "div",
      { class: "row wrap" },
      action("restart-chip", t("chip.restart"), ["POST", `/chips/${chipId}/restart`], null, (answer) => {
        chip = answer;
        drawSummary();
        actionNotice.show(t("chip.restart.done"), "success");
      }),
      action("logout-chip", t("chip.logout"), ["POST", `/chips/${chipId}/logout`], t("chip.logout.confirm"), (answer) => {
        chip = answer;
        drawSummary();
        actionNotice.show(t("chip.logout.done"), "success");
      }),
      action("delete-chip", t("chip.delete"), ["DELETE", `/chips/${chipId}`], t("chip.delete.confirm"), () => {
        navigate("/chips");
      }, "danger"),
    ),
    renameForm,
    actionNotice,
  );

  // ---- send a test message
  const sendNotice = noticeArea();
  const sendSubmit = h("button", { type: "submit" }, t("chip.send.submit"));
  const kindText = h("input", { type: "radio", name: "kind", value: "text", id: "kind-text", checked: true });
  const kindImage = h("input", { type: "radio", name: "kind", value: "image", id: "kind-image" });
  const textField = field(t("chip.send.text"), { tag: "textarea", name: "text", rows: 2, maxlength: 4096 });
  const urlField = field(t("chip.send.image_url"), { type: "url", name: "url", placeholder: "https://…" });
  const captionField = field(t("chip.send.caption"), { name: "caption" });
  const showKind = () => {
    const image = kindImage.checked;
    urlField.hidden = !image;
    captionField.hidden = !image;
    textField.hidden = image;
  };
  kindText.addEventListener("change", showKind);
  kindImage.addEventListener("change", showKind);
  const sendForm = h(
    "form",
    {
      id: "send-form",
      onsubmit: (event) => {
        event.preventDefault();
        const data = new FormData(sendForm);
        const body = { to: data.get("to").trim() };
        if (kindImage.checked) {
          body.image = { url: data.get("url").trim() };
          if (data.get("caption")) body.caption = data.get("caption");
        } else {
          body.text = data.get("text");
        }
        busy(sendSubmit, sendNotice, async () => {
          // one key per submission: a retried request never sends twice
          const message = await api("POST", `/chips/${chipId}/messages`, body, { "Idempotency-Key": crypto.randomUUID() });
          upsertMessage({ ...body, kind: kindImage.checked ? "image" : "text", media: body.image || null, ...message });
          sendNotice.show(t("chip.send.done"), "success");
        });
      },
    },
    field(t("chip.send.to"), { name: "to", required: true, inputmode: "tel", autocomplete: "off" }, t("chip.send.to_hint")),
    h(
      "fieldset",
      { class: "kinds" },
      h("legend", {}, t("chip.send.kind")),
      h("span", {}, kindText, h("label", { for: "kind-text" }, t("chip.send.kind_text"))),
      h("span", {}, kindImage, h("label", { for: "kind-image" }, t("chip.send.kind_image"))),
    ),
    textField,
    urlField,
    captionField,
    sendNotice,
    h("div", { class: "row" }, sendSubmit),
  );
  showKind();

  // ---- the message log (live ticks from message.status)
  const drawLog = () => {
    clear(
      logList,
      messages.length
        ? messages.map((m) =>
            h(
              "li",
              { dataset: { messageId: m.id } },
              h("span", { class: "to" }, m.to),
              h("span", { class: "body" }, m.kind === "image" || m.kind === "file" ? `🖼 ${m.media?.url || ""} ${m.caption || m.text || ""}` : m.text || ""),
              ticks(m.status),
              h("small", { class: "muted" }, formatDate(m.created_at)),
              m.error && h("small", { class: "error-text" }, m.error),
            ),
          )
        : h("li", { class: "empty" }, t("chip.log.empty")),
    );
    clear(
      logMore,
      !logAvailable && h("p", { class: "notice info", role: "status" }, t("chip.log.unavailable")),
      nextBefore && h("button", { type: "button", class: "secondary", onclick: () => loadLog(true) }, t("chip.log.older")),
    );
  };
  const upsertMessage = (message) => {
    const existing = messages.find((m) => m.id === message.id);
    if (existing) Object.assign(existing, message);
    else messages.unshift(message);
    drawLog();
  };
  const loadLog = async (older = false) => {
    try {
      const query = older && nextBefore ? `&before=${encodeURIComponent(nextBefore)}` : "";
      const page = await api("GET", `/chips/${chipId}/messages?limit=20${query}`);
      messages = older ? [...messages, ...page.items] : page.items;
      nextBefore = page.next_before;
      logAvailable = true;
    } catch (error) {
      if (error instanceof ApiError && error.missingRoute) logAvailable = false;
      else sendNotice.error(error);
    }
    drawLog();
  };

  // ---- status history (and the passkey hint it may carry)
  const loadHistory = async () => {
    try {
      const page = await api("GET", `/chips/${chipId}/events?limit=30`);
      clear(
        historyList,
        page.items.map((e) =>
          h(
            "li",
            {},
            h("time", { datetime: e.at }, formatDate(e.at)),
            " ",
            e.from_status ? [statusBadge(e.from_status), " → "] : null,
            statusBadge(e.to_status),
            " ",
            h("small", { class: "muted" }, t("chip.history.source", { source: e.source })),
            e.detail && h("small", { class: "detail" }, ` ${e.detail}`),
          ),
        ),
      );
      const recent = page.items.slice(0, 3);
      const wantsPasskey =
        chip?.status !== "connected" && recent.some((e) => /PASSKEY/i.test(`${e.to_status} ${e.detail || ""}`));
      clear(passkey, wantsPasskey && h("p", { class: "notice warning", role: "alert" }, t("chip.passkey")));
    } catch (error) {
      notice.error(error);
    }
  };

  main.append(
    h("p", {}, h("a", { href: "/chips", "data-link": true }, `← ${t("chip.back")}`)),
    title,
    notice,
    summary,
    passkey,
    qrSection,
    actions,
    h("section", { class: "card", "aria-labelledby": "send-title" }, h("h2", { id: "send-title" }, t("chip.send.title")), sendForm),
    h("section", { class: "card", "aria-labelledby": "log-title" }, h("h2", { id: "log-title" }, t("chip.log.title")), logList, logMore),
    h("section", { class: "card", "aria-labelledby": "history-title" }, h("h2", { id: "history-title" }, t("chip.history.title")), historyList),
  );

  const mine = (event) => event.chip_id === chipId;
  onLeave(
    live.on("chip.status", (event) => {
      if (!mine(event) || !chip) return;
      chip.status = event.status;
      chip.status_changed_at = event.at;
      drawSummary();
      loadChip();
      loadHistory();
    }),
  );
  onLeave(live.on("chip.qr", (event) => mine(event) && loadQr()));
  onLeave(
    live.on("chip.health", (event) => {
      if (!mine(event) || !chip) return;
      chip.health = event.health;
      chip.health_checked_at = event.at;
      drawSummary();
    }),
  );
  onLeave(
    live.on("message.status", (event) => {
      if (!mine(event)) return;
      const message = messages.find((m) => m.id === event.message_id);
      if (message) upsertMessage({ id: event.message_id, status: event.status, updated_at: event.at });
      else loadLog();
    }),
  );
  onLeave(live.on("chip.deleted", (event) => mine(event) && navigate("/chips")));
  onLeave(
    live.on("resync", async () => {
      if (await loadChip()) {
        loadHistory();
        loadLog();
      }
    }),
  );

  loadChip().then((found) => {
    if (!found) return;
    renameForm.querySelector("input").value = chip.alias;
    loadHistory();
    loadLog();
  });
}

function append(el, children) {
  for (const child of children) el.append(child);
}
