import { api, act, ask, $, el, formatCost, showError, statusBadge, timeAgo, toast, watchEnvironments } from "./api.js";

const rows = new Map(); // id → environment
const tbody = $("#env-rows");
const loadError = $("#load-error");

// What a person can do in each status; the server refuses the rest anyway.
function actionsFor(env) {
  const out = [];
  if (env.status === "RUNNING") {
    if (env.vs_code_url) out.push(el("a", { class: "button small primary", href: env.vs_code_url, target: "_blank", rel: "noopener", text: "VS Code", "aria-label": `Open ${env.name} in VS Code` }));
    out.push(el("a", { class: "button small", href: `/environments/${env.id}/terminal`, text: "Terminal", "aria-label": `Open a terminal in ${env.name}` }));
    out.push(el("button", { type: "button", class: "button small", "data-action": "stop", text: "Stop", "aria-label": `Stop ${env.name}` }));
  }
  if (env.status === "STOPPED" || env.status === "ERROR") {
    out.push(el("button", { type: "button", class: "button small", "data-action": "start", text: "Start", "aria-label": `Start ${env.name}` }));
  }
  if (env.status !== "DELETING") {
    out.push(el("button", { type: "button", class: "button small danger", "data-action": "delete", text: "Delete", "aria-label": `Delete ${env.name}` }));
  }
  return out;
}

function row(env) {
  const tr = el("tr", { "data-id": env.id, "data-status": env.status },
    el("td", {}, el("a", { class: "env-link", href: `/environments/${env.id}`, text: env.name })),
    el("td", { text: env.template_name || "—" }),
    el("td", { text: `${env.cpu_cores} vCPU · ${env.memory_gb} GB` }),
    el("td", {}, statusBadge(env.status)),
    el("td", { text: timeAgo(env.last_accessed_at), title: new Date(env.last_accessed_at).toLocaleString() }),
    el("td", { class: "num", text: formatCost(env.total_cost) }),
    el("td", { class: "actions-cell" }, ...actionsFor(env)),
  );
  return tr;
}

// render updates the table in place: a row is rebuilt only when its
// environment changed, so a click on a row nobody changed is never lost to
// a redraw.
const drawn = new Map(); // id → [json, tr]
function render() {
  const envs = [...rows.values()].sort((a, b) => b.created_at.localeCompare(a.created_at));
  const wanted = envs.map((env) => {
    const json = JSON.stringify(env);
    const have = drawn.get(env.id);
    if (have && have[0] === json) return have[1];
    const tr = row(env);
    drawn.set(env.id, [json, tr]);
    return tr;
  });
  for (const id of drawn.keys()) if (!rows.has(id)) drawn.delete(id);
  // Move or insert only what is out of place.
  wanted.forEach((tr, i) => {
    if (tbody.children[i] !== tr) tbody.insertBefore(tr, tbody.children[i] || null);
  });
  while (tbody.children.length > wanted.length) tbody.lastElementChild.remove();
  $("#empty").hidden = envs.length > 0;
  $("#table-wrap").hidden = envs.length === 0;
}

let loads = 0;
async function load() {
  const mine = ++loads;
  try {
    // The API pages by 100; a person with more sees them all.
    const all = [];
    for (let offset = 0; ; offset += 100) {
      const data = await api("GET", `/environments?limit=100&offset=${offset}`);
      all.push(...data.environments);
      if (data.environments.length < 100 || all.length >= data.total) break;
    }
    if (mine !== loads) return; // a newer load is under way: it wins
    rows.clear();
    for (const env of all) rows.set(env.id, env);
    showError(loadError, "");
    render();
    // For the browser test's first-paint figure: when the list was first drawn.
    if (!performance.getEntriesByName("dev8:list-rendered").length) performance.mark("dev8:list-rendered");
  } catch (err) {
    showError(loadError, err.text);
  }
}

function confirmDelete(env) {
  $("#confirm-name").textContent = env.name;
  return ask($("#confirm-delete"), "delete");
}

tbody.addEventListener("click", async (e) => {
  const button = e.target.closest("button[data-action]");
  if (!button) return;
  const env = rows.get(button.closest("tr").dataset.id);
  const action = button.dataset.action;
  if (action === "delete" && !(await confirmDelete(env))) return;
  button.disabled = true;
  try {
    const res = await act(env, action);
    // The live stream brings the new status; this just makes it instant.
    if (res?.status) rows.set(env.id, { ...env, status: res.status });
    render();
  } catch (err) {
    toast(err.text);
    button.disabled = false;
  }
});

const live = $("#live");
// The list is fetched at once, not after the event stream opens: the first
// paint of a long list should not wait for a second round trip.
load();
watchEnvironments({
  onChange: (env) => { rows.set(env.id, env); render(); },
  onDelete: (id) => { rows.delete(id); render(); },
  onState: (state) => {
    live.dataset.state = state;
    live.textContent = state === "open" ? "Live" : "Reconnecting…";
    // After a reconnect, changes while away are picked up by reloading.
    if (state === "open") load();
  },
});
