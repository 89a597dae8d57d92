import { api, $ } from "./api.js";
import { bindForm, showProviders, signIn } from "./auth.js";

bindForm($("#signup-form"), async (data) => {
  const body = { email: data.get("email"), password: data.get("password"), name: data.get("name") };
  await api("POST", "/auth/signup", body, { redirectOn401: false });
  await signIn(body.email, body.password);
});
showProviders();
