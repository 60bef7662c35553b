// The storefront: boot, the header's sign-in state, the routes.
// /config.json (written by the front door from its configuration) names the OpenID Provider, the
// client and the storefront's own public URL.
import { onUser, signIn, signOut, startAuth } from "./auth.js";
import { bookingsPage } from "./bookings.js";
import { eventPage, eventsPage } from "./events.js";
import { linePage } from "./line.js";
import { profilePage } from "./profile.js";
import { interceptLinks, navigate, render, setRoutes } from "./router.js";
import { fill, h, pageHeading, problemBox } from "./ui.js";

const UUID = "[0-9a-fA-F-]{36}";

setRoutes([
  [/^\/$/, eventsPage],
  [new RegExp(`^/event/(?<id>${UUID})$`), eventPage],
  [new RegExp(`^/line/(?<id>${UUID})$`), linePage],
  [/^\/account\/bookings$/, bookingsPage],
  [/^\/account\/profile$/, profilePage],
]);

function header() {
  const account = document.getElementById("account");
  onUser((user) => {
    if (user) {
      const name = user.profile.name || user.profile.preferred_username || "you";
      fill(
        account,
        h("a", { href: "/account/profile", class: "who" }, h("span", { class: "visually-hidden" }, "Signed in as "), name),
        h("button", { type: "button", class: "link", onclick: () => signOut() }, "Sign out"),
      );
    } else {
      fill(account, h("button", { type: "button", class: "secondary", onclick: () => signIn() }, "Sign in"));
    }
  });
}

async function boot() {
  const main = document.getElementById("main");
  let config;
  try {
    const response = await fetch("/config.json", { credentials: "omit" });
    config = await response.json();
  } catch {
    fill(main, pageHeading("Boxoffice is unavailable"), h("p", {}, "Please try again in a moment."));
    return;
  }
  // One origin (the one the sign-in client is registered for): a visit through another name of
  // the same server (localhost vs 127.0.0.1) continues on the configured one.
  const canonical = new URL(config.url).origin;
  if (location.origin !== canonical) {
    location.replace(canonical + location.pathname + location.search + location.hash);
    return;
  }
  const callback = startAuth(config);
  header();
  interceptLinks();
  if (location.pathname === "/auth/callback") {
    try {
      navigate(await callback, { replace: true });
    } catch (error) {
      const problem = { title: "Sign-in did not complete", detail: error && error.message ? error.message : "" };
      history.replaceState(null, "", "/auth/callback"); // drop the response from the address bar
      fill(
        main,
        pageHeading("Sign-in did not complete"),
        problemBox(problem),
        h("p", {}, h("button", { type: "button", class: "primary", onclick: () => signIn("/") }, "Sign in again")),
      );
    }
    return;
  }
  await render();
}

boot();
