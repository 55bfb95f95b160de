// Small DOM helpers. Text always goes in as text nodes (never innerHTML), so nothing a camera name,
// a note or a search result holds can run as script.

/**
 * el("div", {class: "x", onclick: fn, style: {left: "3px"}}, "text", child, ...)
 * `style` must be an object: it is set through the CSSOM, which the Content-Security-Policy allows
 * (a style="..." attribute would be blocked).
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "style") Object.assign(node.style, value);
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function clear(node) {
  while (node.firstChild) node.firstChild.remove();
  return node;
}

/** A message line that replaces itself: show(text, "error"|"ok"|""). */
export function statusLine() {
  const node = el("p", { class: "status", role: "status" });
  node.show = (text, kind = "") => {
    node.textContent = text || "";
    node.className = "status " + kind;
  };
  return node;
}
