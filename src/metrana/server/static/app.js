// The dashboard: one page for every address, rendered from the REST API.
import { ApiError, api, loginWithKey, logout } from "./api.js";
import { renderCompare } from "./compare.js";
import { renderHome } from "./home.js";
import { renderRun } from "./run.js";
import { el } from "./util.js";

function renderLogin(main) {
  const key = el("input", { type: "password", id: "api-key", autocomplete: "off", required: true });
  const problem = el("p", { class: "error", role: "alert" });
  const form = el("form", { class: "login", onsubmit: async (ev) => {
    ev.preventDefault();
    try {
      await loginWithKey(key.value);
      location.reload();
    } catch (error) {
      problem.textContent = error.message;
    }
  } },
  el("h1", {}, "Log in to Metrana"),
  el("p", {}, "Open the login link that ", el("code", {}, "metrana serve"), " printed (it works once), run ",
    el("code", {}, "metrana ui"), " on this machine, or paste an API key:"),
  el("label", { for: "api-key" }, "API key"), key, el("button", { type: "submit", class: "primary" }, "Log in"), problem);
  main.replaceChildren(form);
}

async function who() {
  const status = await api("/auth/status");
  const out = el("button", { type: "button", class: "link", onclick: async () => { await logout(); location.href = "/"; } }, "log out");
  document.getElementById("who").replaceChildren(`${status.organization.name} · `, out);
}

async function route() {
  const main = document.getElementById("main");
  const path = location.pathname;
  try {
    await who();
    const run = path.match(/^\/experiments\/([^/]+)$/);
    if (run) await renderRun(main, decodeURIComponent(run[1]));
    else if (path === "/compare") await renderCompare(main);
    else await renderHome(main);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) renderLogin(main);
    else main.replaceChildren(el("p", { class: "error", role: "alert" }, `Error: ${error.message}`));
  }
}

route();
