import { $ } from "./api.js";
import { bindForm, showProviders, signIn } from "./auth.js";

bindForm($("#signin-form"), (data) => signIn(data.get("email"), data.get("password")));
showProviders();
