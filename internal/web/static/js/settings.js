import { api, $, el, formatTime, showError, toast } from "./api.js";

function item(title, detail, onRemove, label) {
  return el("li", {},
    el("span", { class: "what" }, el("strong", { text: title }), el("small", { text: detail })),
    el("button", { type: "button", class: "button small danger", text: "Remove", "aria-label": label, onclick: onRemove }),
  );
}

function list(node, items, empty) {
  node.replaceChildren(...(items.length ? items : [el("li", { class: "empty-item", text: empty })]));
}

// bind submits a form through fn, showing its error in errorNode.
function bind(form, errorNode, fn) {
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    showError(errorNode, "");
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await fn(new FormData(form));
    } catch (err) {
      showError(errorNode, err.text || String(err));
    } finally {
      button.disabled = false;
    }
  });
}

async function remove(path, what) {
  try {
    await api("DELETE", path);
    toast(`${what} removed`);
  } catch (err) {
    toast(err.text);
  }
}

// SSH keys.
async function loadKeys() {
  const { ssh_keys: keys } = await api("GET", "/ssh-keys");
  list($("#keys"), keys.map((k) => item(k.name || k.comment || k.type, `${k.type} ${k.fingerprint} · added ${formatTime(k.created_at)}`,
    async () => { await remove(`/ssh-keys/${k.id}`, "Key"); loadKeys(); }, `Remove SSH key ${k.name || k.fingerprint}`)), "No SSH keys yet.");
}
bind($("#key-form"), $("#key-error"), async (data) => {
  await api("POST", "/ssh-keys", { name: data.get("name").trim(), public_key: data.get("public_key").trim() });
  $("#key-form").reset();
  toast("Key added");
  await loadKeys();
});

// API tokens.
async function loadTokens() {
  const { api_tokens: tokens } = await api("GET", "/tokens");
  list($("#tokens"), tokens.map((t) => item(t.name, `created ${formatTime(t.created_at)} · ${t.expires_at ? "expires " + formatTime(t.expires_at) : "never expires"} · ${t.last_used_at ? "last used " + formatTime(t.last_used_at) : "never used"}`,
    async () => { await remove(`/tokens/${t.id}`, "Token"); loadTokens(); }, `Revoke token ${t.name}`)), "No API tokens yet.");
}
bind($("#token-form"), $("#token-error"), async (data) => {
  const res = await api("POST", "/tokens", { name: data.get("name").trim(), expires_in_days: Number(data.get("expires_in_days")) });
  $("#token-secret").textContent = res.token;
  $("#token-reveal").hidden = false;
  $("#token-form").reset();
  await loadTokens();
});
$("#token-copy").addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText($("#token-secret").textContent);
    toast("Copied");
  } catch {
    toast("Copy failed: select the token and copy it");
  }
});

// Git identity and the GitHub token.
function showGit(git) {
  $("#git-name").value = git.name || "";
  $("#git-email").value = git.email || "";
  $("#git-token").value = "";
  $("#git-token-state").textContent = git.github_token_set ? `A token is set (${formatTime(git.github_token_set_at)}); type a new one to replace it.` : "No token set.";
  $("#git-token-remove").hidden = !git.github_token_set;
}
async function loadGit() {
  showGit((await api("GET", "/git")).git);
}
bind($("#git-form"), $("#git-error"), async (data) => {
  const body = { name: data.get("name").trim(), email: data.get("email").trim() };
  if (data.get("github_token")) body.github_token = data.get("github_token");
  showGit((await api("PUT", "/git", body)).git);
  toast("Saved");
});
$("#git-token-remove").addEventListener("click", async () => {
  await remove("/git/github-token", "GitHub token");
  loadGit();
});

// Secrets.
async function loadSecrets() {
  const { secrets } = await api("GET", "/secrets");
  list($("#secrets"), secrets.map((s) => item(s.name, `updated ${formatTime(s.updated_at)}`,
    async () => { await remove(`/secrets/${encodeURIComponent(s.name)}`, "Secret"); loadSecrets(); }, `Delete secret ${s.name}`)), "No secrets yet.");
}
bind($("#secret-form"), $("#secret-error"), async (data) => {
  await api("PUT", `/secrets/${encodeURIComponent(data.get("name").trim())}`, { value: data.get("value") });
  $("#secret-form").reset();
  toast("Secret saved");
  await loadSecrets();
});

// Defaults.
async function loadDefaults() {
  const { user } = await api("GET", "/auth/me");
  $("#default-auto-stop").value = user.default_auto_stop_minutes ?? "";
}
bind($("#defaults-form"), $("#defaults-error"), async (data) => {
  const raw = data.get("default_auto_stop_minutes");
  if (raw !== "" && !Number.isInteger(Number(raw))) throw new Error("Auto-stop: a whole number of minutes, or empty for the server's default.");
  const { user } = await api("PATCH", "/auth/me", { default_auto_stop_minutes: raw === "" ? null : Number(raw) });
  $("#default-auto-stop").value = user.default_auto_stop_minutes ?? "";
  toast("Saved");
});

Promise.all([loadDefaults(), loadKeys(), loadTokens(), loadGit(), loadSecrets()]).catch((err) => toast(err.text || String(err)));
