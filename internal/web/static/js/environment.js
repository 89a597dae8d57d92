import { api, act, $, el, formatCost, formatTime, showError, statusBadge, timeAgo, toast, watchEnvironments } from "./api.js";

const id = document.body.dataset.environmentId;
let env;

function render() {
  document.title = `${env.name} · Dev8`;
  $("#env-name").textContent = env.name;
  $("#env-status").replaceWith(Object.assign(statusBadge(env.status), { id: "env-status" }));
  showError($("#env-reason"), env.status === "ERROR" && env.status_reason ? env.status_reason : "");
  const vscode = $("#conn-vscode");
  if (env.status === "RUNNING" && env.vs_code_url) {
    vscode.replaceChildren(el("a", { href: env.vs_code_url, target: "_blank", rel: "noopener", text: "Open VS Code in the browser" }));
    vscode.classList.remove("muted");
  } else {
    vscode.textContent = env.vs_code_url ? "available while running" : "no IDE in this workspace";
    vscode.classList.add("muted");
  }
  $("#conn-ssh").textContent = env.ssh_connection_string || `dev8 ssh ${env.name}`;
  $("#conn-cli").textContent = `dev8 ssh ${env.name}`;
  $("#d-template").textContent = env.template_name || "—";
  $("#d-size").textContent = `${env.cpu_cores} vCPU · ${env.memory_gb} GB memory · ${env.storage_gb} GB disk (${env.instance_type})`;
  $("#d-cost").textContent = `${formatCost(env.total_cost)} so far · ${formatCost(env.estimated_cost_per_hour)} per hour while running`;
  $("#d-autostop").textContent = env.auto_stop_minutes ? `after ${env.auto_stop_minutes} idle minutes` : "never";
  $("#d-last").textContent = timeAgo(env.last_accessed_at);
  $("#d-created").textContent = formatTime(env.created_at);
  $("#d-runtime").textContent = env.runtime || "—";

  const actions = [];
  if (env.status === "RUNNING") actions.push(["stop", "Stop"]);
  if (env.status === "STOPPED" || env.status === "ERROR") actions.push(["start", "Start"]);
  if (env.status !== "DELETING") actions.push(["delete", "Delete"]);
  $("#env-actions").replaceChildren(
    ...(env.status === "RUNNING" ? [el("a", { class: "button primary", href: `/environments/${env.id}/terminal`, text: "Open terminal" })] : []),
    ...actions.map(([action, label]) =>
      el("button", { type: "button", class: action === "delete" ? "button danger" : "button", "data-action": action, text: label })));
}

async function load() {
  try {
    env = (await api("GET", `/environments/${id}`)).environment;
    render();
  } catch (err) {
    showError($("#load-error"), err.text);
  }
}

$("#env-actions").addEventListener("click", async (e) => {
  const button = e.target.closest("button[data-action]");
  if (!button) return;
  const action = button.dataset.action;
  if (action === "delete") {
    const dialog = $("#confirm-delete");
    $("#confirm-name").textContent = env.name;
    dialog.returnValue = "";
    dialog.showModal();
    const ok = await new Promise((resolve) => dialog.addEventListener("close", () => resolve(dialog.returnValue === "delete"), { once: true }));
    if (!ok) return;
  }
  button.disabled = true;
  try {
    const res = await act(env, action);
    if (res?.status) { env = { ...env, status: res.status }; render(); }
  } catch (err) {
    toast(err.text);
    button.disabled = false;
  }
});

document.addEventListener("click", async (e) => {
  const button = e.target.closest("button.copy");
  if (!button) return;
  const text = $("#" + button.dataset.copy).textContent;
  try {
    await navigator.clipboard.writeText(text);
    toast("Copied");
  } catch {
    toast("Copy failed: select the text and copy it");
  }
});

watchEnvironments({
  onChange: (e) => { if (e.id === id) { env = e; render(); } },
  onDelete: (deleted) => { if (deleted === id) location.assign("/dashboard"); },
  onState: (state) => { if (state === "open") load(); },
});
