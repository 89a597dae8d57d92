// The web terminal: xterm.js on the environment's PTY websocket
// (GET /api/v1/environments/{id}/pty). The terminal id lives in the tab's
// sessionStorage, so a reload or a network blip reattaches to the same
// shell, which replays its recent output.
//
// The page's module (static/js/terminal.js) mounts it and says when the
// environment can be connected to: ready() resolves once it is RUNNING, so
// a stopped workspace is not retried forever but waits for its Start.
import { Terminal } from "@xterm/xterm";
import { FitAddon } from "@xterm/addon-fit";
import "@xterm/xterm/css/xterm.css";

export function mountTerminal({ id, screen, banner, ready }) {
  const key = `dev8-terminal-${id}`;
  let terminalID = sessionStorage.getItem(key);
  if (!terminalID) {
    terminalID = crypto.randomUUID();
    sessionStorage.setItem(key, terminalID);
  }

  const dark = matchMedia("(prefers-color-scheme: dark)").matches;
  const term = new Terminal({
    cursorBlink: true,
    fontFamily: 'ui-monospace, SFMono-Regular, Menlo, Consolas, monospace',
    fontSize: 14,
    scrollback: 5000,
    theme: dark ? { background: "#0f0f14" } : { background: "#16161d" },
  });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(screen);
  fit.fit();
  term.focus();

  function show(state, text) {
    banner.dataset.state = state;
    banner.textContent = text;
  }

  let ws;
  let retry = 0;
  let closedForGood = false;

  async function connect() {
    // Nothing to connect to until the environment runs.
    if (!(await ready())) return;
    const url = new URL(`/api/v1/environments/${id}/pty`, location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("reconnect", terminalID);
    url.searchParams.set("width", String(term.cols));
    url.searchParams.set("height", String(term.rows));
    show("connecting", retry ? "Reconnecting…" : "Connecting…");
    ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      retry = 0;
      show("open", "Connected");
    };
    ws.onmessage = (e) => term.write(typeof e.data === "string" ? e.data : new Uint8Array(e.data));
    ws.onclose = (e) => {
      if (closedForGood) return;
      if (e.code === 1000) {
        // The shell exited: a new one starts on the next connect.
        closedForGood = true;
        sessionStorage.removeItem(key);
        show("closed", "The shell exited. Reload the page for a new one.");
        return;
      }
      const delay = Math.min(500 * 2 ** retry, 8000);
      retry++;
      show("reconnecting", `Connection lost; reconnecting in ${Math.round(delay / 1000)} s…`);
      setTimeout(connect, delay);
    };
  }

  const send = (msg) => {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
  };
  term.onData((data) => send({ data }));
  term.onResize(({ cols, rows }) => send({ width: cols, height: rows }));
  new ResizeObserver(() => fit.fit()).observe(screen);

  connect();
  return { focus: () => term.focus() };
}
