// History-API routing between the storefront's pages. The paths are the ones the front door
// serves index.html for (stack/frontdoor/nginx.conf.tmpl, $bx_storefront_page): they never
// collide with the API's (/events, /bookings, ... are the API's; pages are /event/..., /account/...).
import { fill } from "./ui.js";

export const eventPath = (id) => `/event/${encodeURIComponent(id)}`;
export const linePath = (eventId) => `/line/${encodeURIComponent(eventId)}`;

let routes = [];
let cleanup = null;
let flash = null;
let rendered = false;

/** routes: [[RegExp with named groups, page(main, params, query)], ...] */
export function setRoutes(table) {
  routes = table;
}

/** A message for the next page (shown once, as a status). */
export function takeFlash() {
  const message = flash;
  flash = null;
  return message;
}

export function navigate(path, { replace = false, flash: message = null } = {}) {
  flash = message;
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  render();
}

export async function render() {
  if (cleanup) {
    cleanup();
    cleanup = null;
  }
  const main = document.getElementById("main");
  const url = new URL(location.href);
  for (const [pattern, page] of routes) {
    const match = pattern.exec(url.pathname);
    if (!match) continue;
    const result = await page(main, match.groups ?? {}, url.searchParams);
    if (typeof result === "function") cleanup = result;
    break;
  }
  // After the first page, move focus to the new page's heading (screen readers read it).
  if (rendered) {
    const heading = document.getElementById("page-heading");
    if (heading) heading.focus();
    else main.focus();
  }
  rendered = true;
  updateCurrentLink(url.pathname);
}

function updateCurrentLink(pathname) {
  for (const link of document.querySelectorAll("header nav a")) {
    if (link.getAttribute("href") === pathname) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

/** Same-origin links to a page are followed in place; everything else is a normal link. */
export function interceptLinks() {
  document.addEventListener("click", (e) => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    const link = e.target instanceof Element ? e.target.closest("a[href]") : null;
    if (!link || link.target || link.hasAttribute("download")) return;
    const url = new URL(link.href);
    if (url.origin !== location.origin) return;
    if (url.hash && url.pathname === location.pathname && url.search === location.search) return; // in-page (skip link)
    if (!routes.some(([pattern]) => pattern.test(url.pathname))) return;
    e.preventDefault();
    navigate(url.pathname + url.search);
  });
  window.addEventListener("popstate", () => render());
}

export function showFatal(main, ...content) {
  fill(main, ...content);
}
