// The waiting room of a hot on-sale (an event in queue mode): the buyer's place in line, people
// ahead and the estimated wait; the page moves on to the booking form by itself when the buyer is
// admitted, and says at once when the event sold out.
// Polling as the API asks: the public line (GET /events/{id}/queue, cached by the front door for
// a second, so it costs almost nothing) every 2 s, and the buyer's own place
// (GET /events/{id}/queue/me) after its Retry-After, or at once when the serving counter reaches
// the buyer's position or the line's state changes.
import { api } from "./api.js";
import { signedIn, signIn, whenReady } from "./auth.js";
import { eventPath, linePath, navigate } from "./router.js";
import { announce, fill, h, pageHeading, problemBox } from "./ui.js";

const LINE_POLL_MS = 2000;
// Joining while the waiting room is too busy to answer (503 with Retry-After): the page asks
// again by itself after the Retry-After plus a random share of a window that doubles with each
// refusal in a row, up to this many seconds ("full jitter"): a crowd refused together does not
// come back together, and the line fills at the rate the waiting room can take.
export const JOIN_BACKOFF_CAP_S = 30;
const admissions = new Map(); // event id -> {token, expiresAt}: in memory only, like the tokens

/** A still valid admission of this page's buyer for the event, or null. */
export function admissionFor(eventId) {
  const admission = admissions.get(eventId);
  if (admission && Date.parse(admission.expiresAt) > Date.now() + 1000) return admission;
  admissions.delete(eventId);
  return null;
}

function remember(place) {
  if (place.state === "admitted" && place.admission) admissions.set(place.eventId, place.admission);
  return place;
}

/** The event's line (public), or null when the event is not in queue mode. */
export async function lineOf(eventId) {
  try {
    return (await api(`/events/${encodeURIComponent(eventId)}/queue`)).body;
  } catch (problem) {
    if (problem.status === 404) return null;
    throw problem;
  }
}

/** The signed-in buyer's place (null when they have none), remembering an admission. */
export async function myPlace(eventId) {
  try {
    return remember((await api(`/events/${encodeURIComponent(eventId)}/queue/me`, { auth: true })).body);
  } catch (problem) {
    if (problem.status === 404) return null;
    throw problem;
  }
}

/** Seconds before joining again after `refused` refusals in a row (the last said `retryAfter`). */
export function joinDelaySeconds(retryAfter, refused, random = Math.random) {
  return (retryAfter ?? 1) + random() * Math.min(JOIN_BACKOFF_CAP_S, 2 ** refused);
}

/** The buyer's place (joining, or the place they already have); null when the page was left. */
async function joinLine(main, event) {
  const here = linePath(event.id);
  for (let refused = 0; ; refused += 1) {
    try {
      return remember((await api(`/events/${encodeURIComponent(event.id)}/queue`, { method: "POST", auth: true })).body);
    } catch (problem) {
      if (problem.status !== 503) throw problem;
      const seconds = joinDelaySeconds(problem.retryAfter, refused);
      const text = `So many people are joining right now that you have no place yet. Trying again in ${Math.ceil(seconds)} s.`;
      fill(main, pageHeading(`Waiting room: ${event.name}`), h("p", { id: "line-joining", role: "status" }, text));
      await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
      if (location.pathname !== here) return null;
    }
  }
}

function waitText(seconds) {
  if (seconds === null || seconds === undefined) return "Not known yet";
  if (seconds < 60) return "Less than a minute";
  const minutes = Math.round(seconds / 60);
  if (minutes < 90) return `About ${minutes} minute${minutes === 1 ? "" : "s"}`;
  return `About ${Math.round(minutes / 60)} hours`;
}

const FINAL = {
  "sold-out": ["Sold out", "Sorry: every ticket is sold. Nobody else is let in from the line."],
  closed: ["The line is closed", "The event was cancelled or has started."],
  expired: ["Your turn has ended", "Your purchase window ended before you booked. Each buyer has one place in line."],
};

export async function linePage(main, { id }) {
  fill(main, h("p", { class: "muted" }, "Finding your place in line…"));
  await whenReady();
  if (!signedIn()) {
    signIn(linePath(id));
    return undefined;
  }
  let event = null;
  let place = null;
  try {
    event = (await api(`/events/${encodeURIComponent(id)}`)).body;
    place = await joinLine(main, event);
    if (place === null) return undefined;
  } catch (problem) {
    if (problem.slug === "registration-required") {
      navigate(`/account/profile?next=${encodeURIComponent(linePath(id))}`, {
        flash: "Before you join the line, please tell us who you are.",
      });
      return undefined;
    }
    fill(main, pageHeading(event ? event.name : "Waiting room"), problemBox(problem), h("p", {}, h("a", { href: eventPath(id) }, "Back to the event")));
    return undefined;
  }

  const position = h("strong", { class: "position", id: "line-position" });
  const ahead = h("dd", { id: "line-ahead" });
  const wait = h("dd", { id: "line-wait" });
  const state = h("div", { id: "line-state", role: "status" });
  const opens = h("p", { id: "line-opens", hidden: true });
  const progress = h("progress", { id: "line-progress", max: "100", "aria-label": "Your progress in the line" });
  fill(
    main,
    h("p", { class: "back" }, h("a", { href: eventPath(id) }, `← ${event.name}`)),
    pageHeading(`Waiting room: ${event.name}`),
    h("p", { class: "lead" }, "You are in line. Keep this page open: it moves on to booking by itself when it is your turn."),
    h(
      "section",
      { class: "line", "aria-label": "Your place" },
      h("p", {}, "Your place in line: ", position),
      progress,
      h("dl", { class: "facts" }, h("dt", {}, "People ahead of you"), ahead, h("dt", {}, "Estimated wait"), wait),
      opens,
    ),
    state,
  );

  let stopped = false;
  let lineTimer = null;
  let placeTimer = null;
  let firstAhead = null;
  let lastAnnounced = 0;

  const stop = () => {
    stopped = true;
    clearTimeout(lineTimer);
    clearTimeout(placeTimer);
  };

  const showFinal = (kind) => {
    stop();
    const [title, text] = FINAL[kind];
    fill(state, problemBox({ title, detail: text }), h("p", {}, h("a", { href: "/" }, "See other events")));
    announce(`${title}. ${text}`);
  };

  const showPlace = (p) => {
    place = p;
    if (p.state === "admitted") {
      stop();
      announce("It is your turn. Taking you to the booking form.");
      navigate(eventPath(id), { flash: "It is your turn: book your tickets now." });
      return;
    }
    if (FINAL[p.state]) {
      showFinal(p.state);
      return;
    }
    position.textContent = p.position === null ? "to be drawn when the sale opens" : p.position.toLocaleString();
    ahead.textContent = p.peopleAhead === null ? "Not known yet" : p.peopleAhead.toLocaleString();
    wait.textContent = waitText(p.estimatedWaitSeconds);
    if (p.peopleAhead !== null) {
      firstAhead = firstAhead ?? Math.max(p.peopleAhead, 1);
      progress.value = Math.round(100 * (1 - p.peopleAhead / firstAhead));
    } else {
      progress.removeAttribute("value"); // indeterminate until the draw
    }
    if (Date.now() - lastAnnounced > 60000 && p.peopleAhead !== null) {
      lastAnnounced = Date.now();
      announce(`${p.peopleAhead} people ahead of you. ${waitText(p.estimatedWaitSeconds)}.`);
    }
  };

  const pollPlace = async () => {
    clearTimeout(placeTimer);
    if (stopped) return;
    let retryAfter = place ? place.retryAfterSeconds : 2;
    try {
      const p = await myPlace(id);
      if (p) {
        showPlace(p);
        retryAfter = p.retryAfterSeconds;
      }
    } catch (problem) {
      retryAfter = problem.retryAfter ?? 5; // 503: ask again after its Retry-After, never faster
    }
    if (!stopped) placeTimer = setTimeout(pollPlace, Math.max(1, retryAfter) * 1000);
  };

  const pollLine = async () => {
    if (stopped) return;
    try {
      const line = await lineOf(id);
      if (line && (line.state === "sold-out" || line.state === "closed")) {
        showFinal(line.state);
        return;
      }
      if (line) {
        opens.hidden = line.state !== "scheduled";
        opens.textContent = `The sale opens at ${new Date(line.opensAt).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" })}.`;
      }
      if (line && place && place.position !== null && line.servedUpTo >= place.position) pollPlace();
      else if (line && place && place.position === null && line.drawn) pollPlace();
    } catch {
      // the next tick tries again
    }
    if (!stopped) lineTimer = setTimeout(pollLine, LINE_POLL_MS);
  };

  showPlace(place);
  if (!stopped) {
    placeTimer = setTimeout(pollPlace, Math.max(1, place.retryAfterSeconds) * 1000);
    pollLine();
  }
  return stop;
}
