// The terminal page: mounts the bundled terminal (frontend/terminal.js) and
// tells it when the environment can be connected to. A stopped or failed
// workspace says so and offers Start, then connects once it runs, instead
// of retrying a connection that cannot succeed.
import { api, act, $, showError, toast, watchEnvironments } from "./api.js";
import { mountTerminal } from "../dist/terminal.js";

const id = document.body.dataset.environmentId;
const banner = $("#terminal-state");
const gate = $("#terminal-gate");
const startButton = $("#terminal-start");
let env = { id };
let waiting = [];

const messages = {
  STOPPED: (n) => `${n} is stopped. Start it to get a shell; the files in /workspace are as you left them.`,
  ERROR: (n) => `${n} failed. Start it again once the cause is fixed.`,
  CREATING: (n) => `${n} is being created; the terminal connects when it runs.`,
  STARTING: (n) => `${n} is starting; the terminal connects when it runs.`,
  STOPPING: (n) => `${n} is stopping. Once it has stopped, you can start it again here.`,
  DELETING: (n) => `${n} is being deleted.`,
};

function showStatus(e) {
  env = e;
  document.title = `${e.name} · Terminal · Dev8`;
  if (e.status === "RUNNING") {
    gate.hidden = true;
    const resolve = waiting;
    waiting = [];
    for (const r of resolve) r(true);
    return;
  }
  gate.hidden = false;
  $("#terminal-gate-message").textContent = (messages[e.status] || ((n) => `${n} is ${e.status}.`))(e.name);
  showError($("#terminal-gate-reason"), e.status === "ERROR" ? e.status_reason || "No reason was recorded." : "");
  startButton.hidden = !(e.status === "STOPPED" || e.status === "ERROR");
  startButton.disabled = false;
  banner.dataset.state = "closed";
  banner.textContent = e.status === "STOPPED" ? "Stopped" : e.status.charAt(0) + e.status.slice(1).toLowerCase();
}

// ready resolves true once the environment runs (at once if it does).
async function ready() {
  try {
    showStatus((await api("GET", `/environments/${id}`)).environment);
  } catch (err) {
    // The server is unreachable: let the terminal retry as for any blip.
    if (err.status === 0) return true;
    showError($("#terminal-gate-reason"), err.text);
    gate.hidden = false;
    return false;
  }
  if (env.status === "RUNNING") return true;
  return new Promise((resolve) => waiting.push(resolve));
}

startButton.addEventListener("click", async () => {
  startButton.disabled = true;
  try {
    const res = await act(env, "start");
    showStatus({ ...env, status: res?.status || "STARTING" });
  } catch (err) {
    toast(err.text);
    startButton.disabled = false;
  }
});

watchEnvironments({
  onChange: (e) => { if (e.id === id) showStatus(e); },
  onDelete: (deleted) => { if (deleted === id) location.assign("/dashboard"); },
});

mountTerminal({ id, screen: $("#terminal"), banner, ready });
