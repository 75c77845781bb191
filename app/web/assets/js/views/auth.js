import { h, field } from "../dom.js";
import { api } from "../api.js";
import { t } from "../i18n.js";
import { signIn } from "../state.js";
import { heading, noticeArea, busy } from "../ui.js";

function authForm(main, { title, submitText, path, withName, other }) {
  const notice = noticeArea();
  const email = field(t("auth.email"), { type: "email", name: "email", autocomplete: "email", required: true });
  const password = field(
    t("auth.password"),
    { type: "password", name: "password", autocomplete: withName ? "new-password" : "current-password", required: true, minlength: withName ? 8 : null },
    withName ? t("auth.password_hint") : null,
  );
  const name = withName ? field(t("auth.name"), { type: "text", name: "name", autocomplete: "name" }) : null;
  const submit = h("button", { type: "submit" }, submitText);
  const form = h(
    "form",
    {
      class: "card narrow",
      onsubmit: (event) => {
        event.preventDefault();
        const data = new FormData(form);
        const body = { email: data.get("email"), password: data.get("password") };
        if (withName && data.get("name")) body.name = data.get("name");
        busy(submit, notice, async () => signIn(await api("POST", path, body)));
      },
    },
    name,
    email,
    password,
    notice,
    h("div", { class: "row" }, submit),
    h("p", {}, other),
  );
  main.append(heading(title), form);
}

export function loginView(main) {
  authForm(main, {
    title: t("auth.login.title"),
    submitText: t("auth.login.submit"),
    path: "/auth/login",
    withName: false,
    other: [t("auth.login.no_account"), " ", h("a", { href: "/register", "data-link": true }, t("auth.register.link"))],
  });
}

export function registerView(main) {
  authForm(main, {
    title: t("auth.register.title"),
    submitText: t("auth.register.submit"),
    path: "/auth/register",
    withName: true,
    other: [t("auth.register.have_account"), " ", h("a", { href: "/login", "data-link": true }, t("auth.login.link"))],
  });
}
