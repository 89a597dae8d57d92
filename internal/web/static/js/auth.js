import { api, $, el, showError } from "./api.js";

// nextPath is where to go after signing in: the page that sent the visitor
// here, if it is one of ours.
export function nextPath() {
  const next = new URLSearchParams(location.search).get("next") || "";
  // A path on this server only: not //host, nor /\host (which browsers
  // read as //host), nor anything with control characters.
  return /^\/(?![\/\\])[^\\\x00-\x1f]*$/.test(next) ? next : "/dashboard";
}

export async function signIn(email, password) {
  await api("POST", "/auth/login", { email, password }, { redirectOn401: false });
  location.assign(nextPath());
}

// The sign-in buttons of the OAuth providers the server has configured;
// params are added to each button's link (an invite, on the sign-up page).
export async function showProviders(params = {}) {
  let data;
  try {
    data = await api("GET", "/auth/providers", undefined, { redirectOn401: false });
  } catch {
    return;
  }
  const providers = data?.providers || [];
  if (!providers.length) return;
  const box = $("#oauth");
  for (const p of providers) {
    const href = p.start_url || p.url;
    if (!href) continue;
    const url = new URL(href, location.origin);
    url.searchParams.set("next", nextPath());
    for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
    box.append(el("a", { class: "button", href: url.pathname + url.search, text: `Continue with ${p.display_name || p.name}` }));
  }
  box.hidden = false;
}

export function bindForm(form, submit) {
  const error = $("#form-error");
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    showError(error, "");
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await submit(new FormData(form));
    } catch (err) {
      showError(error, err.text || String(err));
      button.disabled = false;
    }
  });
}
