// Tiny DOM builder: h("button", {class: "x", onclick: fn}, "text", child, ...). Text is always
// inserted as text (never as HTML), so API data cannot inject markup.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

let uid = 0;
export function nextId(prefix = "f") {
  uid += 1;
  return `${prefix}-${uid}`;
}

// A labelled input: <div class="field"><label for=id>label</label><input id=id ...></div>
export function field(label, attrs = {}, hint = null) {
  const id = attrs.id || nextId();
  const tag = attrs.tag || "input";
  delete attrs.tag;
  const hintId = hint ? `${id}-hint` : null;
  const control = h(tag, { ...attrs, id, "aria-describedby": hintId }, ...(attrs.options || []));
  return h("div", { class: "field" }, h("label", { for: id }, label), control, hint && h("small", { id: hintId, class: "hint" }, hint));
}
