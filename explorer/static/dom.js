// Building the page. Every value shown (addresses, references, reasons,
// names) is added as a text node or an attribute value, never parsed as
// HTML, so text from the chain cannot become markup or script.

// h creates element tag with attributes attrs (a class, an href, …) and
// children: elements, or anything else shown as text (null and undefined
// are skipped).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

// link is an in-app link to path (parts are URI-encoded).
export function link(text, ...parts) {
  const href = "/explorer/" + parts.map((p) => encodeURIComponent(String(p))).join("/");
  return h("a", { href, "data-nav": "1" }, text);
}

export function short(hex, n = 10) {
  const s = String(hex || "");
  return s.length > 2 * n + 2 ? s.slice(0, n + 2) + "…" + s.slice(-n + 2) : s;
}

export const txLink = (hash, text) => h("span", { class: "mono nowrap" }, link(text || short(hash, 6), "tx", hash));
export const blockLink = (n) => link("#" + n, "block", n);
export const addrLink = (a, text) => (a ? h("span", { class: text ? "mono nowrap" : "mono" }, link(text || a, "address", a)) : h("span", { class: "muted" }, "—"));
export const assetLink = (sym) => link(sym, "asset", sym);

// num reads a JSON-RPC quantity (hex) as a BigInt.
export const big = (q) => (q === null || q === undefined ? 0n : BigInt(q));
export const num = (q) => Number(big(q));

// units renders base units (a hex quantity or BigInt) of an asset with
// decimals as the exact decimal amount, with at least minor fractional
// digits and more only where they are not zero ("12.50"), as the node's
// txdecode.FormatUnits does.
export function units(v, decimals, minor = 0) {
  let x = typeof v === "bigint" ? v : big(v);
  const neg = x < 0n;
  if (neg) x = -x;
  let s = x.toString();
  const d = Number(decimals);
  if (d === 0) return (neg ? "-" : "") + s;
  if (s.length <= d) s = "0".repeat(d - s.length + 1) + s;
  const whole = s.slice(0, s.length - d);
  let frac = s.slice(s.length - d);
  const keep = frac.replace(/0+$/, "").length;
  frac = frac.slice(0, Math.max(keep, Math.min(Number(minor), d)));
  return (neg ? "-" : "") + whole + (frac ? "." + frac : "");
}

// assetAmount shows base units v of asset a (from tally_assets).
export const assetAmount = (v, a) => h("span", { class: "amount" }, a ? `${units(v, a.decimals, a.minorUnits)} ${a.symbol}` : String(big(v)));

// amount shows a schema Amount {asset, decimals, value, units, text}.
export const amount = (a) => (a ? h("span", { class: "amount" }, a.text) : h("span", { class: "muted" }, "—"));

// reference shows a schema Reference {hex, text}: the text when printable,
// else the hex.
export function reference(r) {
  if (!r) return h("span", { class: "muted" }, "—");
  if (r.text !== null && r.text !== undefined) return h("span", { class: "ref", title: r.hex }, r.text);
  return h("span", { class: "ref mono" }, r.hex);
}

export function time(ms) {
  if (!ms) return "";
  const d = new Date(Number(ms));
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

// status shows a receipt status (null: pending).
export function status(s) {
  if (s === null || s === undefined) return h("span", { class: "badge" }, "pending");
  return num(s) === 1 ? h("span", { class: "ok" }, "success") : h("span", { class: "bad" }, "failed");
}

// kv is a two-column table of [label, value] rows (a null row, or a row
// whose value is null, is left out).
export function kv(rows) {
  return h("table", { class: "kv" }, rows.filter((r) => r && r[1] !== null && r[1] !== undefined)
    .map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, v))));
}

// table is a table with a header row and rows of cells.
export function table(head, rows, empty) {
  if (rows.length === 0) return h("p", { class: "muted" }, empty || "None.");
  return h("table", {}, h("thead", {}, h("tr", {}, head.map((x) => h("th", {}, x)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, c))))));
}

export const card = (...children) => h("div", { class: "card" }, ...children);
