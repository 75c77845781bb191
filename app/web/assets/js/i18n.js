// One string table per language (assets/i18n/<lang>.json); pt-BR is the default. The choice is
// remembered in localStorage. A missing key is reported on the console (the tests fail on it).
export const LANGUAGES = { "pt-BR": "Português (Brasil)", en: "English" };
const STORAGE_KEY = "whago.lang";
let current = "pt-BR";
let table = {};

export function lang() {
  return current;
}

export async function loadLanguage(wanted) {
  const chosen = wanted || localStorage.getItem(STORAGE_KEY) || "pt-BR";
  current = LANGUAGES[chosen] ? chosen : "pt-BR";
  const response = await fetch(`/assets/i18n/${current}.json`);
  table = await response.json();
  localStorage.setItem(STORAGE_KEY, current);
  document.documentElement.lang = current;
}

export function t(key, vars = {}) {
  let text = table[key];
  if (text === undefined) {
    console.error(`missing string "${key}" for ${current}`);
    return key;
  }
  for (const [name, value] of Object.entries(vars)) text = text.replaceAll(`{${name}}`, String(value));
  return text;
}

// Dates in the user's chosen language's conventions, in their own time zone.
export function formatDate(value) {
  if (!value) return "—";
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return new Intl.DateTimeFormat(current, { dateStyle: "short", timeStyle: "medium" }).format(date);
}
