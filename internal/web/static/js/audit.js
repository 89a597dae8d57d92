import { api, $, el, formatTime, pager, showError } from "./api.js";

const limit = 50;
let offset = 0;
let filter = new URLSearchParams();

function detailText(d) {
  if (!d) return "";
  return Object.entries(d).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(" · ");
}

function row(e) {
  return el("tr", { "data-action": e.action },
    el("td", {}, el("time", { datetime: e.created_at, text: formatTime(e.created_at) })),
    el("td", {}, e.actor_user_id && emails.has(e.actor_user_id)
      ? el("span", { title: e.actor_user_id, text: emails.get(e.actor_user_id) })
      : el("code", { text: e.actor_user_id || e.actor_kind })),
    el("td", { text: e.action }),
    el("td", {}, e.object_id
      ? el("span", {}, `${e.object_type} `, e.object_type === "user" && emails.has(e.object_id)
        ? el("span", { title: e.object_id, text: emails.get(e.object_id) })
        : el("code", { text: e.object_id }))
      : el("span", { text: e.object_type || "—" })),
    el("td", {}, el("span", { class: "status", "data-status": e.success ? "RUNNING" : "ERROR", text: e.success ? "Success" : "Failed" })),
    el("td", { class: "detail", text: detailText(e.detail) + (e.ip ? ` · from ${e.ip}` : "") }),
  );
}

// Actors are user ids: the page shows the emails of the first 100 users
// (ids of others stay ids).
const emails = new Map();
async function loadEmails() {
  try {
    const { users } = await api("GET", "/users?limit=100");
    for (const u of users) emails.set(u.id, u.email);
  } catch {
    // The ids alone still say who.
  }
}

async function load() {
  const q = new URLSearchParams(filter);
  q.set("limit", limit);
  q.set("offset", offset);
  try {
    const res = await api("GET", `/audit?${q}`);
    $("#audit-rows").replaceChildren(...(res.events.length ? res.events.map(row) : [el("tr", {}, el("td", { colspan: "6", class: "muted", text: "No events match." }))]));
    pager($("#audit-pager"), { total: res.total, limit, offset, what: "events", onPage: (o) => { offset = o; load(); } });
    showError($("#audit-error"), "");
  } catch (err) {
    showError($("#audit-error"), err.text);
  }
}

$("#audit-filter").addEventListener("submit", (e) => {
  e.preventDefault();
  filter = new URLSearchParams();
  for (const [k, v] of new FormData(e.target)) {
    const value = String(v).trim();
    if (!value) continue;
    // datetime-local is the browser's local time: the API takes RFC 3339.
    filter.set(k, k === "since" || k === "until" ? new Date(value).toISOString() : value);
  }
  offset = 0;
  load();
});

loadEmails().then(load);
