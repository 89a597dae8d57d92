import { api, $, el, formatCost, pager, showError, toast } from "./api.js";

const limit = 50;
let offset = 0;
let filter = new URLSearchParams();
const me = document.querySelector(".topbar .me")?.title || "";

function overrides(q) {
  const parts = [];
  if (q.max_environments !== null) parts.push(`${q.max_environments || "∞"} envs`);
  if (q.max_running_environments !== null) parts.push(`${q.max_running_environments || "∞"} running`);
  if (q.monthly_budget_usd !== null) parts.push(q.monthly_budget_usd ? `${formatCost(q.monthly_budget_usd)}/month` : "no budget");
  return parts.join(" · ") || "defaults";
}

function row(u) {
  const label = u.name ? `${u.name} (${u.email})` : u.email;
  return el("tr", { "data-id": u.id, "data-email": u.email },
    el("td", {}, el("span", { class: "what" }, el("strong", { text: u.email }), el("small", { class: "muted", text: u.name || "" }))),
    el("td", { text: u.role === "admin" ? "Admin" : "Member" }),
    el("td", {}, el("span", { class: "status", "data-status": u.suspended ? "ERROR" : "RUNNING", text: u.suspended ? "Suspended" : "Active" })),
    el("td", { text: overrides(u.quota_overrides) }),
    el("td", { text: new Date(u.created_at).toLocaleDateString() }),
    el("td", { class: "actions-cell" },
      el("button", { type: "button", class: "button small", "data-action": u.role === "admin" ? "demote" : "promote",
        text: u.role === "admin" ? "Demote" : "Make admin", "aria-label": `${u.role === "admin" ? "Demote" : "Make admin"}: ${label}` }),
      el("button", { type: "button", class: u.suspended ? "button small" : "button small danger", "data-action": u.suspended ? "unsuspend" : "suspend",
        text: u.suspended ? "Unsuspend" : "Suspend", "aria-label": `${u.suspended ? "Unsuspend" : "Suspend"} ${label}` }),
      el("button", { type: "button", class: "button small", "data-action": "quota", text: "Quota", "aria-label": `Quota for ${label}` }),
    ),
  );
}

async function load() {
  const q = new URLSearchParams(filter);
  q.set("limit", limit);
  q.set("offset", offset);
  try {
    const res = await api("GET", `/users?${q}`);
    $("#user-rows").replaceChildren(...(res.users.length ? res.users.map(row) : [el("tr", {}, el("td", { colspan: "6", class: "muted", text: "No users match." }))]));
    pager($("#users-pager"), { total: res.total, limit, offset, what: "users", onPage: (o) => { offset = o; load(); } });
    showError($("#users-error"), "");
  } catch (err) {
    showError($("#users-error"), err.text);
  }
}

$("#user-filter").addEventListener("submit", (e) => {
  e.preventDefault();
  filter = new URLSearchParams();
  for (const [k, v] of new FormData(e.target)) if (String(v).trim()) filter.set(k, String(v).trim());
  offset = 0;
  load();
});

async function patch(id, body, done) {
  try {
    await api("PATCH", `/users/${id}`, body);
    toast(done);
  } catch (err) {
    toast(err.text);
  }
  await load();
}

// Quota dialog.
const dialog = $("#quota-dialog");
let editing = null;
function setNum(input, hint, override, inForce, unit) {
  input.value = override === null ? "" : String(override);
  hint.textContent = `In force now: ${inForce ? inForce + unit : "unlimited"}${override === null ? " (server default)" : ""}`;
}
async function openQuota(id, email) {
  showError($("#quota-error"), "");
  const { user, quota } = await api("GET", `/users/${id}`);
  editing = id;
  $("#quota-who").textContent = email;
  $("#quota-use").textContent = `Using ${quota.environments} environments, ${quota.running_environments} running, ${formatCost(quota.month_cost_usd)} this month.`;
  setNum($("#quota-envs"), $("#quota-envs-default"), user.quota_overrides.max_environments, quota.max_environments, "");
  setNum($("#quota-running"), $("#quota-running-default"), user.quota_overrides.max_running_environments, quota.max_running_environments, "");
  setNum($("#quota-budget"), $("#quota-budget-default"), user.quota_overrides.monthly_budget_usd, quota.monthly_budget_usd ? formatCost(quota.monthly_budget_usd) : 0, "");
  dialog.showModal();
  $("#quota-envs").focus();
}
$("#quota-cancel").addEventListener("click", () => dialog.close());
$("#quota-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const num = (input, integer) => {
    const v = input.value.trim();
    if (v === "") return null;
    const n = Number(v);
    if (!Number.isFinite(n) || n < Number(input.min) || n > Number(input.max) || (integer && !Number.isInteger(n))) {
      throw new Error(`${input.labels[0].textContent}: a ${integer ? "whole " : ""}number from ${input.min} to ${input.max}, or empty for the default.`);
    }
    return n;
  };
  let quota;
  try {
    quota = { max_environments: num($("#quota-envs"), true), max_running_environments: num($("#quota-running"), true), monthly_budget_usd: num($("#quota-budget"), false) };
  } catch (err) {
    showError($("#quota-error"), err.message);
    return;
  }
  $("#quota-save").disabled = true;
  try {
    await api("PATCH", `/users/${editing}`, { quota });
    dialog.close();
    toast("Quota saved");
    await load();
  } catch (err) {
    showError($("#quota-error"), err.text);
  } finally {
    $("#quota-save").disabled = false;
  }
});

$("#user-rows").addEventListener("click", async (e) => {
  const button = e.target.closest("button[data-action]");
  if (!button) return;
  const tr = button.closest("tr");
  const { id, email } = tr.dataset;
  button.disabled = true;
  switch (button.dataset.action) {
    case "promote": await patch(id, { role: "admin" }, `${email} is an admin`); break;
    case "demote":
      if (email === me && !confirm("Demote yourself? You will lose access to the admin pages.")) { button.disabled = false; return; }
      await patch(id, { role: "member" }, `${email} is a member`);
      if (email === me) location.assign("/dashboard");
      break;
    case "suspend": await patch(id, { suspended: true }, `${email} is suspended`); break;
    case "unsuspend": await patch(id, { suspended: false }, `${email} is active again`); break;
    case "quota":
      try { await openQuota(id, email); } catch (err) { toast(err.text || String(err)); }
      button.disabled = false;
      break;
  }
});

load();
