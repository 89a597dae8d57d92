// Shared by every page: the API client (session cookie + CSRF token, the
// API's error format), small formatting helpers and the header's sign-out.

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error || `Request failed (${status})`);
    this.status = status;
    this.details = body?.details || "";
    this.code = body?.code || "";
  }
  // The message as a person should read it: what went wrong and, when the
  // server says, what to do about it.
  get text() {
    return this.details ? `${this.message}: ${this.details}` : this.message;
  }
}

function cookie(name) {
  for (const part of document.cookie.split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === name) return decodeURIComponent(v.join("="));
  }
  return "";
}

// api calls /api/v1 with the session cookie. A 401 on a signed-in page means
// the session ended: go and sign in again, then come back.
export async function api(method, path, body, { redirectOn401 = true } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET" && method !== "HEAD") {
    // Over HTTPS the server names it __Host-dev8_csrf (no subdomain can set it).
    headers["X-CSRF-Token"] = cookie("__Host-dev8_csrf") || cookie("dev8_csrf");
  }
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp;
  try {
    resp = await fetch("/api/v1" + path, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, { error: "Cannot reach the server", details: "check your connection and try again" });
  }
  const data = resp.status === 204 ? null : await resp.json().catch(() => null);
  if (!resp.ok) {
    if (resp.status === 401 && redirectOn401) {
      location.assign("/signin?next=" + encodeURIComponent(location.pathname + location.search));
    }
    throw new ApiError(resp.status, data);
  }
  return data;
}

export const $ = (sel, root = document) => root.querySelector(sel);

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

export function showError(node, message) {
  node.textContent = message;
  node.hidden = !message;
}

let toastTimer;
export function toast(message) {
  const t = $("#toast");
  if (!t) return;
  t.textContent = message;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (t.hidden = true), 3000);
}

// ask opens a <dialog> whose form (method="dialog") has a button with value
// `yes`, and resolves to whether that button closed it. A close event still
// queued from the dialog's previous opening (the dialog is open again when
// it arrives) is not this one's answer.
export function ask(dialog, yes) {
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    const onClose = () => {
      if (dialog.open) return;
      dialog.removeEventListener("close", onClose);
      resolve(dialog.returnValue === yes);
    };
    dialog.addEventListener("close", onClose);
  });
}

const money = new Intl.NumberFormat(undefined, { style: "currency", currency: "USD", minimumFractionDigits: 2, maximumFractionDigits: 2 });
export const formatCost = (usd) => money.format(usd || 0);

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
export function timeAgo(iso) {
  if (!iso) return "never";
  const seconds = (new Date(iso).getTime() - Date.now()) / 1000;
  const units = [["day", 86400], ["hour", 3600], ["minute", 60]];
  for (const [unit, size] of units) {
    if (Math.abs(seconds) >= size) return relative.format(Math.round(seconds / size), unit);
  }
  return "just now";
}

export const formatTime = (iso) => (iso ? new Date(iso).toLocaleString() : "—");

export function statusBadge(status) {
  return el("span", { class: "status", "data-status": status, text: status.charAt(0) + status.slice(1).toLowerCase() });
}

// A name the API accepts: a DNS label (the same rule the server checks).
export function nameProblem(name) {
  if (!name) return "Name is required.";
  if (name.length > 63) return "At most 63 characters.";
  if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(name)) return "Use lower-case letters, digits and dashes; start and end with a letter or digit.";
  return "";
}

// watchEnvironments follows the live event stream; onChange gets each
// environment as it changes, onDelete the id of each one deleted.
export function watchEnvironments({ onChange, onDelete, onState }) {
  const source = new EventSource("/api/v1/environments/events");
  source.addEventListener("open", () => onState?.("open"));
  source.addEventListener("error", () => onState?.("reconnecting"));
  source.addEventListener("environment", (e) => onChange(JSON.parse(e.data)));
  source.addEventListener("deleted", (e) => onDelete?.(JSON.parse(e.data).id));
  return source;
}

// Actions as the dashboard and the environment page offer them.
export async function act(env, action) {
  if (action === "delete") return api("DELETE", `/environments/${env.id}`);
  return api("POST", `/environments/${env.id}/${action}`);
}

// The header's menu button (narrow screens) shows and hides the navigation.
const menu = $("#menu-toggle");
if (menu) {
  menu.addEventListener("click", () => {
    const open = menu.getAttribute("aria-expanded") !== "true";
    menu.setAttribute("aria-expanded", String(open));
    menu.closest(".topbar").toggleAttribute("data-menu-open", open);
  });
}

const signout = $("#signout");
if (signout) {
  signout.addEventListener("click", async () => {
    try {
      await api("POST", "/auth/logout", undefined, { redirectOn401: false });
    } catch {
      // Signed out already, or the server is gone: the sign-in page either way.
    }
    location.assign("/signin");
  });
}

// pager draws "Previous / 1–50 of 120 / Next" into node; onPage gets the
// new offset.
export function pager(node, { total, limit, offset, onPage, what = "items" }) {
  const last = Math.min(offset + limit, total);
  node.replaceChildren(
    el("button", { type: "button", class: "button small", text: "Previous", disabled: offset === 0, onclick: () => onPage(Math.max(0, offset - limit)) }),
    el("span", { class: "muted", "aria-live": "polite", text: total ? `${offset + 1}–${last} of ${total} ${what}` : `No ${what}` }),
    el("button", { type: "button", class: "button small", text: "Next", disabled: last >= total, onclick: () => onPage(offset + limit) }),
  );
}
