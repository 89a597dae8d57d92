import { api, $, ask, el, formatTime, pager, showError, toast } from "./api.js";

const limit = 50;
let offset = 0;

const who = (inv) => inv.email || "anyone with the link";

function row(inv) {
  return el("tr", { "data-id": inv.id, "data-who": who(inv) },
    el("td", {}, inv.email ? el("strong", { text: inv.email }) : el("span", { class: "muted", text: "Anyone with the link" })),
    el("td", { text: inv.role === "admin" ? "Admin" : "Member" }),
    el("td", { text: formatTime(inv.created_at) }),
    el("td", { text: formatTime(inv.expires_at) }),
    el("td", { class: "actions-cell" },
      el("button", { type: "button", class: "button small danger", "data-action": "revoke", text: "Revoke", "aria-label": `Revoke the invite for ${who(inv)}` })),
  );
}

async function load() {
  try {
    const res = await api("GET", `/invites?limit=${limit}&offset=${offset}`);
    $("#invite-rows").replaceChildren(...(res.invites.length ? res.invites.map(row)
      : [el("tr", {}, el("td", { colspan: "5", class: "muted", text: "No pending invites." }))]));
    pager($("#invites-pager"), { total: res.total, limit, offset, what: "invites", onPage: (o) => { offset = o; load(); } });
    showError($("#invites-error"), "");
  } catch (err) {
    showError($("#invites-error"), err.text);
  }
}

$("#invite-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const form = e.target;
  const data = new FormData(form);
  showError($("#invite-error"), "");
  const days = Number(data.get("expires_in_days"));
  if (!Number.isInteger(days) || days < 1 || days > 90) {
    showError($("#invite-error"), "Expires in: a whole number of days from 1 to 90.");
    return;
  }
  const body = { role: data.get("role"), expires_in_days: days };
  const email = String(data.get("email")).trim();
  if (email) body.email = email;
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const res = await api("POST", "/invites", body);
    $("#invite-link").textContent = res.url;
    $("#invite-for").textContent = `For ${who(res.invite)}, as ${res.invite.role === "admin" ? "an admin" : "a member"}, until ${formatTime(res.invite.expires_at)}.`;
    $("#invite-reveal").hidden = false;
    form.reset();
    await load();
  } catch (err) {
    showError($("#invite-error"), err.text);
  } finally {
    button.disabled = false;
  }
});

$("#invite-copy").addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText($("#invite-link").textContent);
    toast("Copied");
  } catch {
    toast("Copy failed: select the link and copy it");
  }
});

$("#invite-rows").addEventListener("click", async (e) => {
  const button = e.target.closest("button[data-action=revoke]");
  if (!button) return;
  const { id, who: name } = button.closest("tr").dataset;
  $("#revoke-who").textContent = name;
  if (!(await ask($("#confirm-revoke"), "revoke"))) return;
  button.disabled = true;
  try {
    await api("DELETE", `/invites/${id}`);
    toast("Invite revoked");
  } catch (err) {
    toast(err.text);
  }
  await load();
});

load();
