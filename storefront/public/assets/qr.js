// A ticket's QR code, drawn in the page from its code (qrcode-generator, vendored): the same
// symbol the PDF prints — alphanumeric mode, error correction M (a `BX1.…` code is 167
// characters of the QR alphanumeric alphabet: version 7, 45x45 modules). One SVG <path> per
// symbol, built with DOM calls (no markup strings, no inline styles: the page's CSP allows none).
import qrcode from "./vendor/qrcode.mjs";

const SVG = "http://www.w3.org/2000/svg";
const ALPHANUMERIC = /^[0-9A-Z $%*+\-./:]*$/;
const QUIET_ZONE = 4; // modules of white border, as the standard requires

export function qrSvg(code, label) {
  const qr = qrcode(0, "M"); // 0: the smallest version that holds the data
  qr.addData(code, ALPHANUMERIC.test(code) ? "Alphanumeric" : "Byte");
  qr.make();
  const count = qr.getModuleCount();
  const size = count + 2 * QUIET_ZONE;
  let d = "";
  for (let row = 0; row < count; row += 1) {
    for (let col = 0; col < count; col += 1) {
      if (qr.isDark(row, col)) d += `M${col + QUIET_ZONE} ${row + QUIET_ZONE}h1v1h-1z`;
    }
  }
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${size} ${size}`);
  svg.setAttribute("class", "qr");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  svg.setAttribute("shape-rendering", "crispEdges");
  const background = document.createElementNS(SVG, "rect");
  background.setAttribute("width", String(size));
  background.setAttribute("height", String(size));
  background.setAttribute("fill", "#fff");
  const modules = document.createElementNS(SVG, "path");
  modules.setAttribute("d", d);
  modules.setAttribute("fill", "#000");
  svg.append(background, modules);
  return svg;
}
