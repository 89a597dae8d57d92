// The page an admin gets before opening another person's workspace app
// (web/apps.go renders it): nothing opens until the button is pressed, and
// then it asks the API for a one-time sign-in link to the app's own origin
// and goes there. (A cross-site page cannot press it: the request carries
// the session's CSRF token.)
import { api, $, showError } from "./api.js";

const id = document.body.dataset.environmentId;
const notice = $("#app-notice");
const button = $("#open-app");

button?.addEventListener("click", async () => {
  button.disabled = true;
  showError($("#open-error"), "");
  try {
    const res = await api("POST", `/environments/${id}/app-tickets`, { app: notice.dataset.app, path: notice.dataset.path });
    location.assign(res.url);
  } catch (err) {
    showError($("#open-error"), err.text);
    button.disabled = false;
  }
});
