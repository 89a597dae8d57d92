// Dev8: tells the server when a person uses this VS Code tab, so an idle tab
// does not keep its workspace running. Only input counts: keys, clicks and
// taps, scrolling. The workbench's own traffic (its websocket keepalives
// every few seconds) and a tab left open do not. At most one report per
// interval, so typing costs one small request a minute.
(() => {
  const script = document.currentScript;
  const endpoint = new URL("activity", script.src).href;
  const every = Number(script.dataset.every) || 60000;
  let last = -Infinity;
  const report = () => {
    const now = performance.now();
    if (now - last < every) {
      return;
    }
    last = now;
    fetch(endpoint, {
      method: "POST",
      credentials: "same-origin",
      keepalive: true,
      headers: { "X-Dev8-Activity": "1" },
    }).catch(() => {
      // Offline or the server restarting: the next input tries again.
      last = -Infinity;
    });
  };
  for (const type of ["keydown", "pointerdown", "wheel", "touchstart"]) {
    window.addEventListener(type, report, { capture: true, passive: true });
  }
})();
