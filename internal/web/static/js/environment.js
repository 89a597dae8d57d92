import { api, act, ask, $, el, formatCost, formatTime, showError, statusBadge, timeAgo, toast, watchEnvironments } from "./api.js";
import { lineChart } from "./charts.js";
import { icon } from "./icons.js";

const id = document.body.dataset.environmentId;
let env;

// The snapshot buttons depend on the status: the list is loaded (again)
// whenever it changes.
let snapshotsFor = "";
function render() {
  if (env.status !== snapshotsFor) {
    snapshotsFor = env.status;
    queueMicrotask(loadSnapshots);
    // The usage's empty state depends on the status too.
    if (usageStarted) queueMicrotask(loadUsage);
  }
  document.title = `${env.name} · Dev8`;
  $("#env-name").textContent = env.name;
  $("#env-status").replaceWith(Object.assign(statusBadge(env.status), { id: "env-status" }));
  showError($("#env-reason"), env.status === "ERROR" && env.status_reason ? env.status_reason : "");
  // VS Code is the way in: the IDE page (/w/{id}/ide/) starts a stopped
  // workspace and opens the IDE once it runs.
  const ideURL = env.vs_code_url || "";
  const vscode = $("#conn-vscode");
  if (ideURL && env.status !== "DELETING") {
    vscode.replaceChildren(el("a", { href: ideURL, target: "_blank", rel: "noopener", text: env.status === "RUNNING" ? "Open VS Code in the browser" : "Start and open VS Code in the browser" }));
    vscode.classList.remove("muted");
  } else {
    vscode.textContent = env.status === "RUNNING" ? "no IDE in this workspace (code-server is not installed where it runs)" : "available once it runs";
    vscode.classList.add("muted");
  }
  // Web servers in the workspace open on origins of their own, by way of
  // /w/{id}/ports/{port}/ (which signs the browser in to that one port).
  $("#conn-ports").replaceChildren(...(env.ports || []).filter((p) => (p.protocol || "tcp").toLowerCase() !== "udp")
    .flatMap((p) => [el("a", { href: portURL(p.port), target: "_blank", rel: "noopener", text: `port ${p.port}` }), " "]));
  $("#conn-cli").textContent = `dev8 ssh ${env.name}`;
  $("#conn-ssh").textContent = `ssh dev8.${env.name}`;
  $("#conn-remote").textContent = `dev8.${env.name}`;
  $("#d-template").textContent = env.template_name || "—";
  $("#d-size").textContent = `${env.cpu_cores} vCPU · ${env.memory_gb} GB memory · ${env.storage_gb} GB disk (${env.instance_type})`;
  $("#d-cost").textContent = `${formatCost(env.total_cost)} so far · ${formatCost(env.estimated_cost_per_hour)} per hour while running`;
  $("#d-autostop").textContent = env.auto_stop_minutes ? `after ${env.auto_stop_minutes} idle minutes` : "never";
  // null: never started (timeAgo says "never").
  $("#d-last").textContent = timeAgo(env.last_accessed_at);
  $("#d-created").textContent = formatTime(env.created_at);
  $("#d-runtime").textContent = env.runtime || "—";

  const actions = [];
  if (env.status === "RUNNING") actions.push(["stop", "Stop"]);
  if (env.status === "STOPPED" || env.status === "ERROR") actions.push(["start", "Start"]);
  if (env.status !== "DELETING") actions.push(["delete", "Delete"]);
  const links = [];
  if (ideURL && env.status !== "DELETING") {
    links.push(el("a", { class: "button primary", href: ideURL, target: "_blank", rel: "noopener", "data-open": "vscode" }, icon("code"), "Open VS Code"));
  }
  if (env.status !== "DELETING") {
    links.push(el("a", { class: !ideURL && env.status === "RUNNING" ? "button primary" : "button", href: `/environments/${env.id}/terminal`, "data-open": "terminal" }, icon("terminal"), "Open terminal"));
  }
  // Without VS Code, Start is what a stopped workspace needs first.
  const kind = { delete: "button danger", start: ideURL ? "button" : "button primary" };
  $("#env-actions").replaceChildren(...links,
    ...actions.map(([action, label]) =>
      el("button", { type: "button", class: kind[action] || "button", "data-action": action, text: label })));
}

function portURL(port) {
  return `/w/${id}/ports/${port}/`;
}

$("#open-port").addEventListener("submit", (e) => {
  e.preventDefault();
  const port = $("#open-port-number").valueAsNumber;
  if (Number.isInteger(port) && port >= 1 && port <= 65535) window.open(portURL(port), "_blank", "noopener");
});

async function load() {
  try {
    env = (await api("GET", `/environments/${id}`)).environment;
    render();
    startUsage();
  } catch (err) {
    showError($("#load-error"), err.text);
  }
}

$("#env-actions").addEventListener("click", async (e) => {
  const button = e.target.closest("button[data-action]");
  if (!button) return;
  const action = button.dataset.action;
  if (action === "delete") {
    $("#confirm-name").textContent = env.name;
    if (!(await ask($("#confirm-delete"), "delete"))) return;
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

// Usage charts: the last 24 hours of the supervisor's samples (every 30 s
// while running), refreshed every 30 s while the page is open.
const DAY = 24 * 60 * 60 * 1000;
function formatMB(mb) {
  return mb >= 1024 ? `${(mb / 1024).toFixed(1)} GB` : `${Math.round(mb)} MB`;
}
async function loadUsage() {
  const note = $("#usage-note");
  const to = Date.now(), from = to - DAY;
  let rows;
  try {
    ({ usage: rows } = await api("GET", `/environments/${id}/usage?since=${encodeURIComponent(new Date(from).toISOString())}&limit=10000`));
  } catch (err) {
    note.textContent = err.status === 503 ? "Usage is not being recorded on this server." : err.text;
    return;
  }
  const pts = (key) => rows.map((r) => [new Date(r.timestamp).getTime(), r[key]]);
  // The x axis spans the samples there are (at most the last 24 hours), so
  // a workspace that started an hour ago does not draw a sliver.
  const start = rows.length ? Math.max(from, new Date(rows[0].timestamp).getTime()) : from;
  const last = rows[rows.length - 1];
  const memMax = (env?.memory_gb || 1) * 1024, diskMax = (env?.storage_gb || 1) * 1024;
  const charts = [
    ["#chart-cpu", "cpu_usage_percent", Math.max(100, ...rows.map((r) => r.cpu_usage_percent)), (v) => `${v.toFixed(1)}%`, "CPU use in percent"],
    ["#chart-memory", "memory_usage_mb", Math.max(memMax, ...rows.map((r) => r.memory_usage_mb)), formatMB, `Memory use of ${formatMB(memMax)}`],
    ["#chart-disk", "disk_usage_mb", Math.max(diskMax, ...rows.map((r) => r.disk_usage_mb)), formatMB, `Disk use of the files in /workspace, of ${formatMB(diskMax)}`],
  ];
  // No samples: say why and what brings them, instead of three empty boxes.
  const empty = $("#usage-empty");
  $("#charts").hidden = !rows.length;
  empty.hidden = rows.length > 0;
  if (!rows.length) {
    empty.textContent = env?.status === "RUNNING"
      ? "No samples yet: a running workspace reports CPU, memory and the disk use of /workspace every 30 seconds; the first arrive within a minute."
      : "No samples in the last 24 hours: the workspace reports CPU, memory and the disk use of /workspace every 30 seconds while it runs. Start it to see them.";
    note.textContent = "";
    return;
  }
  for (const [sel, key, max, fmt, label] of charts) {
    const fig = $(sel);
    fig.querySelector("[data-now]").textContent = last ? fmt(last[key]) : "—";
    lineChart(fig, pts(key), { from: start, to, max, label: last ? `${label}, last 24 hours; now ${fmt(last[key])}` : `${label}: no samples` });
  }
  const since = new Date(start).toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" });
  note.textContent = `${rows.length} samples since ${since} · latest ${timeAgo(last.timestamp)}`;
}
// The charts' scales need the environment's size: they start once it is loaded.
let usageStarted = false;
function startUsage() {
  if (usageStarted) return;
  usageStarted = true;
  loadUsage();
  setInterval(() => { if (!document.hidden) loadUsage(); }, 30000);
}

// Snapshots: take one, follow it, restore one (the API does the work).
const snapList = $("#snapshots");
const snapTake = $("#snapshot-take");
const snapError = $("#snapshots-error");
let snapTimer;
const triggers = { MANUAL: "taken by hand", SCHEDULED: "scheduled", PRE_SHUTDOWN: "before a stop" };
function formatBytes(n) {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(1)} GB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(0)} KB`;
  return `${n} B`;
}
async function loadSnapshots() {
  clearTimeout(snapTimer);
  let list;
  try {
    list = (await api("GET", `/environments/${id}/snapshots`)).snapshots;
    showError(snapError, "");
  } catch (err) {
    showError(snapError, err.text);
    return;
  }
  const busy = list.some((b) => b.status === "PENDING" || b.status === "RUNNING");
  snapTake.disabled = busy || env?.status !== "RUNNING";
  snapList.replaceChildren(...(list.length ? list.map((b) => {
    const when = formatTime(b.created_at);
    const detail = b.status === "COMPLETED"
      ? `${triggers[b.trigger] || b.trigger} · ${b.file_count} files · ${formatBytes(b.size_bytes)} (${formatBytes(b.changed_bytes)} new)`
      : b.status === "FAILED" ? `failed: ${b.error}` : `${b.status.toLowerCase()}…`;
    const li = el("li", { "data-snapshot": b.id, "data-status": b.status },
      el("span", { class: "what" }, el("strong", { text: when }), el("small", { text: detail })));
    if (b.status === "COMPLETED") {
      const fork = new URLSearchParams({ from_snapshot: b.id, from: env?.name || "", template: env?.template_name || "", taken: when });
      li.append(el("span", { class: "row-actions" },
        el("a", { class: "button small", href: `/new?${fork}`, "data-fork": b.id, "aria-label": `New workspace from the snapshot of ${when}`, text: "New workspace from this snapshot" }),
        el("button", { type: "button", class: "button small", text: "Restore", "aria-label": `Restore the snapshot of ${when}`,
          disabled: env?.status !== "RUNNING", onclick: () => restore(b, when) })));
    }
    return li;
  }) : [el("li", { class: "empty-item", text: "No snapshots yet." })]));
  // Nothing to wait on but the record: look again while one is under way.
  if (busy) snapTimer = setTimeout(loadSnapshots, 1000);
}
async function restore(b, when) {
  $("#restore-when").textContent = when;
  if (!(await ask($("#confirm-restore"), "restore"))) return;
  try {
    const res = await api("POST", `/environments/${id}/snapshots/${b.id}/restore`, {});
    toast(res.failures?.length ? `Restored, except ${res.failures.length} file(s): ${res.failures.map((f) => f.path).join(", ")}` : `Restored ${res.files} files`);
  } catch (err) {
    toast(err.text);
  }
}
snapTake.addEventListener("click", async () => {
  snapTake.disabled = true;
  try {
    await api("POST", `/environments/${id}/snapshots`, {});
  } catch (err) {
    toast(err.text);
  }
  loadSnapshots();
});
