// Small line charts drawn as SVG (no library, no inline styles: the
// colours are classes in app.css).

const NS = "http://www.w3.org/2000/svg";
const W = 300, H = 100, PAD = 2;

function svgEl(tag, attrs) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

// lineChart replaces the <svg> in figure with a chart of points ([t, v],
// t in ms) from `from` to `to`, the y axis from 0 to max. label describes
// the chart for screen readers.
export function lineChart(figure, points, { from, to, max, label }) {
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img", "aria-label": label });
  for (const f of [0.25, 0.5, 0.75]) svg.append(svgEl("line", { class: "grid", x1: 0, x2: W, y1: H * f, y2: H * f }));
  const span = Math.max(1, to - from);
  const x = (t) => ((t - from) / span) * W;
  const y = (v) => H - PAD - (Math.min(v, max) / max) * (H - 2 * PAD);
  if (points.length) {
    // A gap of more than 5 minutes between samples (the workspace was
    // stopped) breaks the line.
    let d = "";
    let prev = null;
    let gaps = false;
    for (const [t, v] of points) {
      const gap = prev !== null && t - prev > 5 * 60 * 1000;
      gaps ||= gap;
      d += `${prev === null || gap ? "M" : "L"}${x(t).toFixed(1)},${y(v).toFixed(1)}`;
      prev = t;
    }
    if (points.length > 1 && !gaps) {
      const first = x(points[0][0]).toFixed(1), last = x(points[points.length - 1][0]).toFixed(1);
      svg.append(svgEl("path", { class: "area", d: `M${first},${H}L${d.slice(1)}L${last},${H}Z` }));
    }
    svg.append(svgEl("path", { class: "line", d }));
  }
  figure.querySelector("svg")?.remove();
  figure.append(svg);
}
