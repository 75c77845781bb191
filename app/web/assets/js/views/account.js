import { h, field } from "../dom.js";
import { api, ApiError, setToken } from "../api.js";
import { t } from "../i18n.js";
import { session } from "../state.js";
import { heading, noticeArea, busy } from "../ui.js";

export function accountView(main) {
  const user = session.user;
  const notice = noticeArea();
  const plan = session.plans.find((p) => p.name === user.plan);
  const submit = h("button", { type: "submit" }, t("account.password.submit"));
  const form = h(
    "form",
    {
      class: "card narrow",
      onsubmit: (event) => {
        event.preventDefault();
        const data = new FormData(form);
        busy(submit, notice, async () => {
          let answer;
          try {
            answer = await api("POST", "/auth/password", {
              current_password: data.get("current_password"),
              new_password: data.get("new_password"),
            });
          } catch (error) {
            // a server without the route yet: say so instead of a bare "Not found"
            if (error instanceof ApiError && error.missingRoute) return notice.show(t("error.not_available"), "info");
            throw error;
          }
          // every earlier token stopped working: continue with the new one
          setToken(answer.access_token);
          form.reset();
          notice.show(t("account.password.done"), "success");
        });
      },
    },
    h("h2", {}, t("account.password.title")),
    field(t("account.password.current"), { type: "password", name: "current_password", autocomplete: "current-password", required: true }),
    field(t("account.password.new"), { type: "password", name: "new_password", autocomplete: "new-password", required: true, minlength: 8 }, t("auth.password_hint")),
    notice,
    h("div", { class: "row" }, submit),
  );
  main.append(
    heading(t("account.title")),
    h(
      "dl",
      { class: "card narrow facts" },
      h("dt", {}, t("auth.email")),
      h("dd", {}, user.email),
      h("dt", {}, t("account.plan")),
      h("dd", {}, t("account.plan_value", { plan: user.plan, max: user.max_chips ?? plan?.max_chips ?? "?" })),
      h("dt", {}, t("account.role")),
      h("dd", {}, user.is_admin ? t("account.admin") : t("account.tenant")),
    ),
    form,
  );
}
