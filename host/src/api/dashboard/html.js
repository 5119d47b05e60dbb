// Building the page safely: elements from data (text is always text, never markup), and the
// formats every view shares.

/** `el("td", {class: "num"}, "42")`: an element with attributes (on* as listeners) and children. */
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value === true) node.setAttribute(name, "");
    else node.setAttribute(name, String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces `node`'s children. */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

/** A table: `columns` are `[heading, row => cell, sortKey?]`; clicking a sortable heading sorts. */
export function table(columns, rows, options) {
  const opts = options || {};
  let sortBy = opts.sortBy === undefined ? -1 : opts.sortBy;
  let descending = !!opts.descending;
  const body = el("tbody");
  const draw = () => {
    let sorted = rows.slice();
    if (sortBy >= 0 && columns[sortBy][2]) {
      const key = columns[sortBy][2];
      sorted.sort((a, b) => {
        const x = key(a);
        const y = key(b);
        return (x < y ? -1 : x > y ? 1 : 0) * (descending ? -1 : 1);
      });
    }
    fill(body, sorted.map((row) => el("tr", {}, columns.map(([, cell]) => el("td", {}, cell(row))))));
  };
  const head = el("tr", {}, columns.map(([heading, , key], index) =>
    el("th", {
      class: key ? "sortable" : null,
      onclick: key ? () => {
        descending = sortBy === index ? !descending : false;
        sortBy = index;
        draw();
      } : null,
    }, heading)));
  draw();
  if (!rows.length) fill(body, el("tr", {}, el("td", { colspan: columns.length, class: "muted" }, opts.empty || "nothing yet")));
  return el("table", { class: opts.class || null }, el("thead", {}, head), body);
}

/** A peer id or hash, shortened, whole in its tooltip. */
export function short(id) {
  if (!id) return "—";
  const text = String(id);
  return el("span", { class: "id", title: text }, text.length > 16 ? text.slice(0, 8) + "…" + text.slice(-6) : text);
}

/** A time in ms since the epoch, as local time. */
export function time(ms) {
  return ms ? new Date(ms).toLocaleString() : "—";
}

/** A number with thousands separators. */
export function num(n) {
  return n === null || n === undefined ? "—" : Number(n).toLocaleString("en-US");
}

/** Bytes in KiB/MiB/GiB. */
export function bytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = Number(n);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return (unit ? value.toFixed(1) : String(value)) + " " + units[unit];
}

/** A card: a titled section. */
export function card(title, ...children) {
  return el("section", { class: "card" }, el("h2", {}, title), ...children);
}

/** A definition list from `[label, value]` pairs. */
export function facts(pairs) {
  return el("dl", { class: "facts" }, pairs.map(([label, value]) => [el("dt", {}, label), el("dd", {}, value)]));
}

/** An error shown in place (never an alert). */
export function problem(error) {
  const kind = error && error.kind ? error.kind + ": " : "";
  return el("p", { class: "error", role: "alert" }, kind + (error && error.message ? error.message : String(error)));
}

/** A small line chart of `values` (SVG, no library). */
export function sparkline(samples, label) {
  // One sample is drawn as a flat line across.
  const values = samples.length === 1 ? [samples[0], samples[0]] : samples;
  const width = 300;
  const height = 60;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("class", "chart");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  const max = Math.max(1, ...values);
  const step = values.length > 1 ? width / (values.length - 1) : width;
  const points = values.map((v, i) => `${(i * step).toFixed(1)},${(height - 4 - (v / max) * (height - 8)).toFixed(1)}`);
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", points.length ? points.join(" ") : `0,${height - 4} ${width},${height - 4}`);
  svg.append(line);
  return el("figure", {}, svg, el("figcaption", {}, `${label} (max ${num(max)})`));
}
