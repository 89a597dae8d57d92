import { api, $ } from "./api.js";
import { bindForm, showProviders, signIn } from "./auth.js";

// An invite link's page carries the invite in a hidden field; an invite
// bound to an address has the address filled in, read-only.
const invite = $("#invite")?.value || "";
const form = $("#signup-form");
if (form) {
  bindForm(form, async (data) => {
    const body = { email: data.get("email"), password: data.get("password"), name: data.get("name") };
    if (invite) body.invite = invite;
    await api("POST", "/auth/signup", body, { redirectOn401: false });
    await signIn(body.email, body.password);
  });
}
// Signing up with a provider takes the invite along.
showProviders(invite ? { invite } : {});
