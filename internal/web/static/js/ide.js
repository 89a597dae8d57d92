// The page a browser gets at /w/{id}/ide/ when the IDE cannot be opened
// (web/ide.go renders it first): it follows the environment's status,
// offers Start (and Delete for a failure) through the API, and opens the
// IDE (this same address, which then leads to the IDE's own origin) as
// soon as the workspace runs and code-server answers.
import { api, act, ask, $, showError, statusBadge, toast, watchEnvironments } from "./api.js";

const id = document.body.dataset.environmentId;
const gate = $("#ide-gate");
const startButton = $("#gate-start");
const deleteButton = $("#gate-delete");
const retryButton = $("#gate-retry");
let env = { id, status: gate.dataset.status };
let name = document.title.split(" · ")[0];

// What the page says for each status (the server's first rendering says
// the same: web/ide.go).
function describe(e) {
  const n = e.name || name;
  switch (e.status) {
    case "STOPPED": return { title: `${n} is stopped`, message: "Start it to open VS Code; the files in /workspace are as you left them.", start: true, del: true };
    case "ERROR": return { title: `${n} failed`, message: "Start it again once the cause is fixed, or delete it.", reason: e.status_reason || "No reason was recorded.", start: true, del: true };
    case "CREATING": return { title: `Creating ${n}…`, message: "VS Code opens here as soon as the workspace is ready." };
    case "STARTING": return { title: `Starting ${n}…`, message: "VS Code opens here as soon as the workspace is ready." };
    case "STOPPING": return { title: `${n} is stopping`, message: "Once it has stopped, you can start it again from here." };
    case "DELETING": return { title: `${n} is being deleted`, message: "There is no IDE to open any more." };
    case "RUNNING":
      if (!e.vs_code_url) return { title: `${n} has no VS Code`, message: "code-server is not installed where this workspace runs. The terminal and SSH work.", noIDE: true };
      return { title: "Opening VS Code…", message: "The workspace runs; waiting for its IDE to answer." };
  }
  return { title: `${n} is ${e.status}`, message: "VS Code is available while the workspace runs." };
}

function render(e, reason) {
  const d = describe(e);
  $("#gate-title").textContent = d.title;
  $("#gate-message").textContent = d.message;
  showError($("#gate-reason"), reason ?? d.reason ?? "");
  $("#gate-status").replaceWith(Object.assign(statusBadge(e.status), { id: "gate-status" }));
  gate.dataset.status = e.status;
  startButton.hidden = !d.start;
  startButton.disabled = false;
  deleteButton.hidden = !d.del;
  $("#gate-terminal").hidden = !d.noIDE;
  retryButton.hidden = true;
}

// Where to go once the IDE answers: the address asked for, or the
// environment's own IDE link (which opens /workspace).
const target = () => (location.search || !env.vs_code_url ? location.href : env.vs_code_url);

// openIDE asks the server whether code-server answers (its health check,
// through the tunnel: the IDE itself is on an origin of its own, which this
// page may not call) until it does, then goes there. A failed check waits a
// little longer each time.
let opening = false;
async function openIDE() {
  if (opening) return;
  opening = true;
  retryButton.hidden = true;
  for (let delay = 250, tries = 0; tries < 40; tries++, delay = Math.min(delay * 2, 3000)) {
    if (env.status !== "RUNNING") { opening = false; return; }
    try {
      await api("GET", `/environments/${id}/ide/health`);
      location.replace(target());
      return;
    } catch { /* not yet */ }
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
  opening = false;
  render(env, "VS Code did not answer. Try again, or stop and start the environment.");
  retryButton.hidden = false;
}

function update(e) {
  env = e;
  name = e.name || name;
  if (e.status === "RUNNING" && e.vs_code_url) {
    render(e);
    openIDE();
    return;
  }
  render(e);
}

startButton.addEventListener("click", async () => {
  startButton.disabled = true;
  try {
    const res = await act(env, "start");
    update({ ...env, status: res?.status || "STARTING", status_reason: "" });
  } catch (err) {
    toast(err.text);
    startButton.disabled = false;
  }
});

deleteButton.addEventListener("click", async () => {
  if (!(await ask($("#confirm-delete"), "delete"))) return;
  try {
    await act(env, "delete");
    location.assign("/dashboard");
  } catch (err) {
    toast(err.text);
  }
});

retryButton.addEventListener("click", openIDE);

watchEnvironments({
  onChange: (e) => { if (e.id === id) update(e); },
  onDelete: (deleted) => { if (deleted === id) location.assign("/dashboard"); },
  // The stream may open after a change: ask once it is open.
  onState: async (state) => {
    if (state !== "open") return;
    try {
      update((await api("GET", `/environments/${id}`)).environment);
    } catch (err) {
      showError($("#gate-reason"), err.text);
    }
  },
});
