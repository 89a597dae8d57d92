// Icons as inline SVG drawn with the text's colour (app.css .icon): no
// icon font and no emoji, so they look the same on every machine.

const NS = "http://www.w3.org/2000/svg";

// 24×24 outlines, stroked.
const paths = {
  nodejs: "M12 2 21 7v10l-9 5-9-5V7z M12 8v8 M9 10v4",
  python: "M12 3c-3 0-4 1-4 3v2h5 M8 8H6c-2 0-3 1.5-3 4s1 4 3 4h2 M12 21c3 0 4-1 4-3v-2h-5 M16 16h2c2 0 3-1.5 3-4s-1-4-3-4h-2 M8 8v4c0 1 1 2 2 2h4c1 0 2 1 2 2 M16 16v-4",
  terminal: "M4 17l6-5-6-5 M12 19h8",
  layers: "M12 2 2 7l10 5 10-5z M2 17l10 5 10-5 M2 12l10 5 10-5",
  go: "M12 2 22 12 12 22 2 12z",
  rust: "M12 8a4 4 0 1 0 0 8 4 4 0 0 0 0-8z M12 2v3 M12 19v3 M2 12h3 M19 12h3 M4.9 4.9 7 7 M17 17l2.1 2.1 M4.9 19.1 7 17 M17 7l2.1-2.1",
  code: "M8 6 2 12l6 6 M16 6l6 6-6 6",
  box: "M4 4h16v16H4z",
};

// icon returns the named icon (a plain box for an unknown name), hidden
// from screen readers: the text beside it says what it is.
export function icon(name) {
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", "icon");
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(NS, "path");
  path.setAttribute("d", paths[name] || paths.box);
  svg.append(path);
  return svg;
}
