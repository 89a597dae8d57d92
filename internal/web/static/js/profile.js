import { api, $, el, formatTime, showError, timeAgo, toast } from "./api.js";

function initials(name, email) {
  const words = name.trim().split(/\s+/).filter(Boolean);
  const letters = words.map((w) => [...w].find((c) => /[\p{L}\p{N}]/u.test(c))).filter(Boolean).slice(0, 2);
  if (letters.length) return letters.join("").toUpperCase();
  return ([...email].find((c) => /[\p{L}\p{N}]/u.test(c)) || "?").toUpperCase();
}

// Name.
const nameForm = $("#name-form");
nameForm.addEventListener("submit", async (e) => {
  e.preventDefault();
  const input = $("#profile-name");
  const name = input.value.trim();
  const problem = [...name].length > 100 ? "At most 100 characters." : "";
  showError($("#profile-name-error"), problem);
  input.setAttribute("aria-invalid", problem ? "true" : "false");
  showError($("#name-error"), "");
  if (problem) return;
  const button = nameForm.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const { user } = await api("PATCH", "/auth/me", { name });
    input.value = user.name;
    $("#me-name").textContent = user.name;
    const avatar = initials(user.name, user.email);
    $("#avatar").textContent = avatar;
    document.querySelectorAll(".topbar .avatar").forEach((a) => (a.textContent = avatar));
    toast("Saved");
  } catch (err) {
    showError($("#name-error"), err.text);
  } finally {
    button.disabled = false;
  }
});

// Password.
const pwForm = $("#password-form");
pwForm.addEventListener("submit", async (e) => {
  e.preventDefault();
  const data = new FormData(pwForm);
  const error = $("#password-error");
  let problem = "";
  if (!data.get("current_password")) problem = "Type your current password.";
  else if ([...data.get("new_password")].length < 8) problem = "The new password needs at least 8 characters.";
  else if (data.get("new_password") !== data.get("confirm_password")) problem = "The new passwords do not match.";
  showError(error, problem);
  if (problem) return;
  const button = pwForm.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const res = await api("POST", "/auth/password", { current_password: data.get("current_password"), new_password: data.get("new_password") });
    pwForm.reset();
    toast(res.sessions_revoked ? `Password changed; ${res.sessions_revoked} other session${res.sessions_revoked === 1 ? "" : "s"} signed out` : "Password changed");
    await loadSessions();
  } catch (err) {
    showError(error, err.text);
  } finally {
    button.disabled = false;
  }
});

// Sessions.
function describe(ua) {
  if (!ua) return "Unknown client";
  if (/dev8/i.test(ua) || /^Go-http-client/.test(ua)) return "Command line";
  const browser = (ua.match(/(Firefox|Edg|Chrome|Safari)\/[\d.]+/) || [])[1];
  const os = (ua.match(/\((?:[^;)]*;\s*)?([^;)]*)/) || [])[1];
  return [browser === "Edg" ? "Edge" : browser, os].filter(Boolean).join(" on ") || ua.slice(0, 60);
}

async function loadSessions() {
  const { sessions } = await api("GET", "/auth/sessions");
  const items = sessions.map((s) => el("li", {},
    el("span", { class: "what" },
      el("strong", { text: describe(s.user_agent) + (s.current ? " (this one)" : "") }),
      el("small", { text: `${s.ip || "unknown address"} · signed in ${formatTime(s.created_at)} · last seen ${timeAgo(s.last_seen_at)}` })),
    s.current ? null : el("button", {
      type: "button", class: "button small danger", text: "Revoke", "aria-label": `Revoke the session from ${describe(s.user_agent)} at ${s.ip || "unknown address"}`,
      onclick: async (e) => {
        e.currentTarget.disabled = true;
        try {
          await api("DELETE", `/auth/sessions/${s.id}`);
          toast("Session revoked");
        } catch (err) {
          toast(err.text);
        }
        loadSessions();
      },
    })));
  $("#sessions").replaceChildren(...(items.length ? items : [el("li", { class: "empty-item", text: "No sessions." })]));
}

loadSessions().catch((err) => toast(err.text || String(err)));
