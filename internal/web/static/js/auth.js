import { api, $, el, showError } from "./api.js";

// nextPath is where to go after signing in: the server decides (the form's
// data-next, its ?next= if that is a path on this server, else the
// dashboard) and the page goes there as told, so there is one rule, the
// server's (httpmw.SafeNext).
export function nextPath() {
  return document.querySelector("form[data-next]")?.dataset.next || "/dashboard";
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
