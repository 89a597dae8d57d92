import { api, $, el, formatCost, nameProblem, showError, watchEnvironments } from "./api.js";
import { icon } from "./icons.js";

const form = $("#create-form");
const nameInput = $("#env-name");
const nameError = $("#name-error");
const autoStop = $("#auto-stop");
const autoStopError = $("#auto-stop-error");
const formError = $("#form-error");
let template = "";
let instanceType = "";
// Each template says where it can run now (GET /templates: runtime, state,
// runtimes); "" in the select lets the server choose.
let templatesByName = {};
const runtimeSelect = $("#runtime");
const runtimeHint = $("#runtime-hint");
const runtimeLabels = { local: "this machine (local processes)", docker: "Docker (a container per workspace)" };

function runtimeLabel(name) {
  return runtimeLabels[name] || name;
}

// whereItRuns is a template card's line about where it would run.
function whereItRuns(tp) {
  const chosen = tp.runtimes?.find((r) => r.runtime === tp.runtime);
  if (tp.state === "unavailable" && chosen?.admin_only) return `Only admins may use ${runtimeLabel(tp.runtime)}: ${tp.state_reason}`;
  if (tp.state === "unavailable") return `Not available yet: ${tp.state_reason || "no runtime can run it"}`;
  const on = tp.runtimes?.find((r) => r.runtime === tp.runtime);
  if (on?.host_tools) return "Runs on this machine, with its installed tools";
  if (tp.state === "preparing") return `Preparing on ${tp.runtime}: ${tp.state_reason}`;
  return `Runs on ${runtimeLabel(tp.runtime)}`;
}

// showRuntimes fills the runtime select for the chosen template: automatic
// (the server's choice) first, then each runtime, unavailable ones disabled
// with their reason.
function showRuntimes() {
  const tp = templatesByName[template];
  if (!tp) return;
  const keep = runtimeSelect.value;
  const options = [el("option", { value: "", text: `Automatic: ${runtimeLabel(tp.runtime)}` })];
  for (const r of tp.runtimes || []) {
    const opt = el("option", { value: r.runtime, text: runtimeLabel(r.runtime) + (r.admin_only ? " (admins only)" : r.state === "unavailable" ? " (not available yet)" : "") });
    if (r.state === "unavailable") opt.disabled = true;
    options.push(opt);
  }
  runtimeSelect.replaceChildren(...options);
  const still = (tp.runtimes || []).find((r) => r.runtime === keep && r.state !== "unavailable");
  runtimeSelect.value = still ? keep : "";
  runtimeSelect.closest(".field").hidden = (tp.runtimes || []).length < 2;
  showRuntimeHint();
}

function showRuntimeHint() {
  const tp = templatesByName[template];
  if (!tp) return;
  const chosen = runtimeSelect.value || tp.runtime;
  const r = (tp.runtimes || []).find((x) => x.runtime === chosen);
  const notes = [];
  if (r?.host_tools) notes.push("Workspaces here are processes of the server's machine: the template's image is not used, and its tools are whatever that machine has installed.");
  for (const x of tp.runtimes || []) {
    if (x.state === "unavailable" && x.reason) notes.push(`${runtimeLabel(x.runtime)}: ${x.reason}`);
  }
  runtimeHint.textContent = notes.join(" ");
}
runtimeSelect.addEventListener("change", showRuntimeHint);

// A radio group of cards; arrow keys move between them as in any radio group.
function radioCards(container, items, selected, onSelect) {
  const buttons = items.map((item) =>
    el("button", { type: "button", role: "radio", class: "choice", "aria-checked": String(item.value === selected), tabindex: item.value === selected ? "0" : "-1", "data-value": item.value }, ...item.body),
  );
  const choose = (button) => {
    for (const b of buttons) {
      b.setAttribute("aria-checked", String(b === button));
      b.tabIndex = b === button ? 0 : -1;
    }
    onSelect(button.dataset.value);
  };
  container.replaceChildren(...buttons);
  container.addEventListener("click", (e) => {
    const b = e.target.closest(".choice");
    if (b) choose(b);
  });
  container.addEventListener("keydown", (e) => {
    const i = buttons.indexOf(document.activeElement);
    if (i < 0) return;
    const step = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 }[e.key];
    if (!step) return;
    e.preventDefault();
    const next = buttons[(i + step + buttons.length) % buttons.length];
    next.focus();
    choose(next);
  });
}

async function loadChoices() {
  try {
    const [t, it] = await Promise.all([api("GET", "/templates"), api("GET", "/instance-types")]);
    const templates = [...t.templates].sort((a, b) => Number(b.is_popular) - Number(a.is_popular) || a.display_name.localeCompare(b.display_name));
    // A fork starts on its source's template.
    template = (templates.find((tp) => tp.name === fork.template) || templates[0])?.name || "";
    radioCards($("#templates"), templates.map((tp) => ({
      value: tp.name,
      body: [
        el("span", { class: "title" }, icon(tp.icon), tp.display_name || tp.name),
        el("span", { class: "meta", text: tp.description }),
        el("span", { class: "tags" }, ...(tp.tags || []).map((tag) => el("span", { class: "tag", text: tag }))),
        el("span", { class: tp.state === "unavailable" ? "meta runs unavailable" : "meta runs", text: whereItRuns(tp) }),
      ],
    })), template, (v) => { template = v; showRuntimes(); });
    templatesByName = Object.fromEntries(templates.map((tp) => [tp.name, tp]));
    showRuntimes();
    const types = [...it.instance_types].sort((a, b) => a.estimated_cost_per_hour - b.estimated_cost_per_hour);
    instanceType = (types.find((x) => x.name === "balanced") || types[0])?.name || "";
    radioCards($("#instance-types"), types.map((x) => ({
      value: x.name,
      body: [
        el("span", { class: "title", text: x.display_name || x.name }),
        el("span", { class: "meta", text: `${x.cpu_cores} vCPU · ${x.memory_gb} GB memory · ${x.storage_gb} GB disk` }),
        el("span", { class: "meta", text: `${formatCost(x.estimated_cost_per_hour)} per hour` }),
        ...placementLine(x),
      ],
    })), instanceType, (v) => (instanceType = v));
  } catch (err) {
    showError(formError, err.text);
  }
}

// placementLine shows what an instance type places its workspaces on
// (GPUs and node labels: only the kubernetes runtime can), or nothing.
function placementLine(x) {
  const pairs = (m) => Object.keys(m || {}).sort().map((k) => `${k}=${m[k]}`).join(", ");
  const parts = [];
  if (pairs(x.resources)) parts.push(pairs(x.resources));
  if (pairs(x.node_selector)) parts.push(`nodes ${pairs(x.node_selector)}`);
  return parts.length ? [el("span", { class: "tags" }, el("span", { class: "tag", text: parts.join(" · ") }))] : [];
}

function validateName() {
  const problem = nameProblem(nameInput.value.trim());
  showError(nameError, nameInput.value === "" && !form.dataset.submitted ? "" : problem);
  nameInput.setAttribute("aria-invalid", String(Boolean(problem) && (nameInput.value !== "" || Boolean(form.dataset.submitted))));
  return !problem;
}

function validateAutoStop() {
  const v = Number(autoStop.value);
  const problem = autoStop.value === "" || (Number.isInteger(v) && v >= 0 && v <= 10080) ? "" : "A whole number of minutes from 0 to 10080 (a week), or empty for the default.";
  showError(autoStopError, problem);
  autoStop.setAttribute("aria-invalid", String(Boolean(problem)));
  return !problem;
}

nameInput.addEventListener("input", validateName);
autoStop.addEventListener("input", validateAutoStop);

let varCount = 0;
$("#add-var").addEventListener("click", () => {
  const n = ++varCount;
  const row = el("div", { class: "var-row" },
    el("label", { class: "sr-only", for: `var-key-${n}`, text: `Variable ${n} name` }),
    el("input", { id: `var-key-${n}`, type: "text", placeholder: "NAME", class: "var-key", spellcheck: "false", autocomplete: "off" }),
    el("label", { class: "sr-only", for: `var-value-${n}`, text: `Variable ${n} value` }),
    el("input", { id: `var-value-${n}`, type: "text", placeholder: "value", class: "var-value", autocomplete: "off" }),
    el("button", { type: "button", class: "button small", text: "Remove", "aria-label": `Remove variable ${n}`, onclick: () => row.remove() }),
  );
  $("#env-vars").append(row);
  row.querySelector(".var-key").focus();
});

function envVars() {
  const out = {};
  for (const row of document.querySelectorAll(".var-row")) {
    const k = row.querySelector(".var-key").value.trim();
    if (k) out[k] = row.querySelector(".var-value").value;
  }
  return out;
}

// follow shows the new environment's progress: the steps as its status
// moves, then the environment page once it runs, or the reason and what to
// do when it failed.
let followed, events, poll;
function follow(env) {
  form.hidden = true;
  $("#progress").hidden = false;
  followed = env;
  $("#progress-open").href = `/environments/${env.id}`;
  const order = ["CREATING", "STARTING", "RUNNING"];
  const show = (e) => {
    followed = e;
    const at = order.indexOf(e.status);
    for (const li of document.querySelectorAll("#steps li")) {
      const i = order.indexOf(li.dataset.step);
      li.dataset.state = e.status === "RUNNING" || i < at ? "done" : i === at ? "active" : e.status === "ERROR" && i === 0 ? "failed" : "";
    }
    const failed = e.status === "ERROR";
    $("#progress").dataset.outcome = failed ? "failed" : e.status === "RUNNING" ? "ready" : "working";
    const title = $("#progress-title");
    if (e.status === "RUNNING") {
      title.textContent = `${e.name} is ready`;
      $("#progress-message").textContent = "Opening the environment…";
      location.assign(`/environments/${e.id}`);
    } else if (failed) {
      title.textContent = `${e.name} could not be created`;
      $("#progress-message").textContent = "What to do: fix what the reason above names, then start it again; or delete it and create it anew (with another template or size, for example). The server's log has the details.";
    } else {
      title.replaceChildren("Creating ", el("span", { id: "progress-name", text: e.name }), "…");
    }
    showError($("#progress-error"), failed ? e.status_reason || "The server recorded no reason: see its log." : "");
    $("#progress-retry").hidden = !failed;
    $("#progress-retry").disabled = false;
    $("#progress-delete").hidden = !failed;
  };
  show(env);
  // The stream carries every change, but one missed (a reconnect, a proxy
  // that buffers) must not leave the view at "Creating" for ever: while the
  // outcome is pending, ask now and then as well.
  clearInterval(poll);
  poll = setInterval(async () => {
    if (followed?.id !== env.id) {
      clearInterval(poll);
      return;
    }
    if (followed.status !== "CREATING" && followed.status !== "STARTING") return;
    try { show((await api("GET", `/environments/${env.id}`)).environment); } catch { /* the next try, or the stream */ }
  }, 2000);
  events?.close();
  events = watchEnvironments({
    onChange: (e) => { if (e.id === env.id) show(e); },
    onDelete: (id) => { if (id === env.id) startOver(); },
    // The stream may open after a change: ask once it is open.
    onState: async (state) => {
      if (state !== "open") return;
      try { show((await api("GET", `/environments/${env.id}`)).environment); } catch { /* the stream carries on */ }
    },
  });
}

// startOver shows the form again, filled as it was, for another try.
function startOver() {
  followed = null;
  clearInterval(poll);
  events?.close();
  $("#progress").hidden = true;
  form.hidden = false;
  $("#create-submit").disabled = false;
  nameInput.focus();
}

$("#progress-retry").addEventListener("click", async (e) => {
  e.currentTarget.disabled = true;
  try {
    await api("POST", `/environments/${followed.id}/start`);
  } catch (err) {
    showError($("#progress-error"), err.text);
    e.currentTarget.disabled = false;
  }
});

$("#progress-delete").addEventListener("click", async () => {
  const env = followed;
  try {
    await api("DELETE", `/environments/${env.id}`);
  } catch (err) {
    showError($("#progress-error"), err.text);
    return;
  }
  // The stream may have told of the deletion already (startOver ran).
  if (followed !== env) return;
  $("#progress-title").textContent = `Deleting ${env.name}…`;
  $("#progress-delete").hidden = $("#progress-retry").hidden = true;
  // The name is free once the deletion is through: the stream says when.
});

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  form.dataset.submitted = "1";
  showError(formError, "");
  if (!(validateName() & validateAutoStop())) {
    (nameInput.getAttribute("aria-invalid") === "true" ? nameInput : autoStop).focus();
    return;
  }
  const submit = $("#create-submit");
  submit.disabled = true;
  try {
    const body = { name: nameInput.value.trim(), template_name: template, instance_type: instanceType };
    if (autoStop.value !== "") body.auto_stop_minutes = Number(autoStop.value);
    if (runtimeSelect.value) body.runtime = runtimeSelect.value;
    if (fork.snapshot) body.from_snapshot = fork.snapshot;
    const vars = envVars();
    if (Object.keys(vars).length) body.environment_variables = vars;
    const res = await api("POST", "/environments", body);
    follow(res.environment);
  } catch (err) {
    showError(formError, err.text);
    submit.disabled = false;
  }
});

// A fork: /new?from_snapshot=ID (the environment page's snapshot list
// links here) starts the new workspace from that snapshot's files.
const query = new URLSearchParams(location.search);
const fork = { snapshot: query.get("from_snapshot") || "", from: query.get("from") || "", taken: query.get("taken") || "", template: query.get("template") || "" };
if (fork.snapshot) {
  const note = $("#fork-note");
  note.textContent = `Starting from the snapshot of ${fork.from || "an environment"}${fork.taken ? ` taken ${fork.taken}` : ""}: the new workspace's files are the snapshot's.`;
  note.hidden = false;
  const suggested = `${fork.from}-fork`;
  if (fork.from && !nameProblem(suggested)) nameInput.value = suggested;
  document.querySelector("h1").textContent = "New environment from a snapshot";
}

loadChoices();
// Say what "empty" means for this person.
api("GET", "/auth/me").then(({ user }) => {
  if (user.default_auto_stop_minutes !== null && user.default_auto_stop_minutes !== undefined) {
    autoStop.placeholder = `your default: ${user.default_auto_stop_minutes}`;
  }
}).catch(() => {});
