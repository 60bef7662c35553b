// What's on (the upcoming events) and an event's page with its booking form: the ticket category
// (when there are several), the number of tickets, and on an event paid online the hold to pay.
import { api } from "./api.js";
import { claims, signedIn, signIn, whenReady } from "./auth.js";
import { book } from "./booking.js";
import { holdPanel, startHoldClocks } from "./checkout.js";
import { admissionFor, lineOf, myPlace } from "./line.js";
import { eventPath, linePath, navigate, takeFlash } from "./router.js";
import { announce, badge, fill, h, money, pageHeading, problemBox, times, when } from "./ui.js";

// What the page says about an event is what the API says (its `status`: the rule POST /bookings
// applies), and the booking form offers at most the API's `maxTicketsPerOrder` tickets.
const CLOSED = {
  CANCELLED: ["cancelled", "Cancelled", "This event is cancelled."],
  SALES_ENDED: ["sales-ended", "Sales ended", "Sales have ended: this event has started."],
  SOLD_OUT: ["sold-out", "Sold out", "This event is sold out."],
};

export function availability(event) {
  const { total, remaining } = event.capacity;
  const closed = CLOSED[event.status];
  if (closed) return badge(closed[0], closed[1]);
  if (remaining === 0) return badge("sold-out", "Sold out");
  if (remaining <= Math.max(5, total / 10)) return badge("few", `Only ${remaining} left`);
  return h("span", { class: "remaining" }, `${remaining.toLocaleString()} of ${total.toLocaleString()} left`);
}

/** The event's ticket categories (an API without them: none, the event's one price). */
const categoriesOf = (event) => (Array.isArray(event.categories) ? event.categories : []);

/** Several prices: "from £25.00". */
function priceOf(event) {
  const prices = new Set(categoriesOf(event).map((c) => c.price.amount));
  return prices.size > 1 ? `from ${money(event.price)}` : money(event.price);
}

const onSale = (category) => category.status === "ON_SALE" && category.remaining > 0;

function categoryAvailability(category) {
  const closed = CLOSED[category.status];
  if (closed) return badge(closed[0], closed[1]);
  if (category.remaining === 0) return badge("sold-out", "Sold out");
  if (category.remaining <= Math.max(5, category.capacity / 10)) return badge("few", `Only ${category.remaining} left`);
  return h("span", { class: "remaining" }, `${category.remaining.toLocaleString()} left`);
}

function card(event) {
  return h(
    "li",
    { class: "card" },
    h("h2", {}, h("a", { href: eventPath(event.id) }, event.name)),
    h("p", { class: "when" }, when(event.startsAt)),
    h("p", { class: "where" }, `${event.venue.name}, ${event.venue.city}`),
    h("p", { class: "price-line" }, h("span", { class: "price" }, priceOf(event)), " ", availability(event)),
  );
}

export function eventsPage(main) {
  const list = h("ul", { class: "cards", "aria-busy": "true" });
  const status = h("p", { class: "muted" }, "Loading events…");
  const more = h("button", { type: "button", class: "secondary", hidden: true }, "Show more events");
  fill(main, pageHeading("What's on"), status, list, more);

  let cursor = null;
  const load = async () => {
    more.disabled = true;
    try {
      const query = new URLSearchParams({ limit: "12" });
      if (cursor) query.set("cursor", cursor);
      const { body } = await api(`/events?${query}`);
      list.append(...body.items.map(card));
      cursor = body.nextCursor;
      status.remove();
      if (!list.children.length) list.replaceWith(h("p", {}, "No upcoming events yet."));
      more.hidden = !cursor;
    } catch (problem) {
      fill(status, problemBox(problem));
    } finally {
      list.setAttribute("aria-busy", "false");
      more.disabled = false;
    }
  };
  more.addEventListener("click", load);
  load();
}

export async function eventPage(main, params) {
  // A hold made on this page counts down here until the buyer pays or leaves.
  const stopClocks = startHoldClocks(main);
  await eventContent(main, params);
  return stopClocks;
}

async function eventContent(main, { id }) {
  fill(main, h("p", { class: "muted" }, "Loading the event…"));
  let event;
  let line;
  try {
    [event, line] = await Promise.all([api(`/events/${encodeURIComponent(id)}`).then((r) => r.body), lineOf(id)]);
  } catch (problem) {
    fill(main, pageHeading(problem.status === 404 ? "Event not found" : "Event"), problemBox(problem));
    return;
  }
  const flash = takeFlash();
  const facts = h(
    "dl",
    { class: "facts" },
    h("dt", {}, "When"),
    h("dd", {}, when(event.startsAt)),
    h("dt", {}, "Where"),
    h("dd", {}, `${event.venue.name}, ${event.venue.city}`),
    h("dt", {}, "Price"),
    h("dd", {}, `${priceOf(event)} per ticket`),
    h("dt", {}, "Tickets"),
    h("dd", { id: "availability" }, availability(event)),
  );
  const action = h("div", { id: "event-action" });
  fill(
    main,
    h("p", { class: "back" }, h("a", { href: "/" }, "← All events")),
    pageHeading(event.name),
    flash ? h("p", { class: "flash", role: "status" }, flash) : null,
    event.description ? h("p", { class: "lead" }, event.description) : null,
    facts,
    action,
  );
  if (!line) {
    fill(action, bookingForm(event, null));
    return;
  }
  // Queue mode: only buyers the waiting room admitted may book.
  if (line.state === "sold-out" || line.state === "closed") {
    fill(action, h("p", { class: "notice" }, line.state === "sold-out" ? "This event is sold out." : "The sale is closed."));
    return;
  }
  await whenReady();
  let admission = signedIn() ? admissionFor(event.id) : null;
  if (signedIn() && !admission) {
    try {
      const place = await myPlace(event.id);
      admission = place && place.state === "admitted" ? place.admission : null;
    } catch {
      admission = null;
    }
  }
  if (admission) {
    const until = new Date(admission.expiresAt).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    fill(action, h("p", { class: "flash" }, `It is your turn: book before ${until}.`), bookingForm(event, admission));
    return;
  }
  const join = h("button", { type: "button", class: "primary" }, signedIn() ? "Join the line" : "Sign in to join the line");
  join.addEventListener("click", () => (signedIn() ? navigate(linePath(event.id)) : signIn(linePath(event.id))));
  fill(
    action,
    h("h2", {}, "Waiting room"),
    h(
      "p",
      {},
      line.state === "scheduled"
        ? `Tickets go on sale at ${new Date(line.opensAt).toLocaleString()}. Join the line now: everyone who joins before then gets a place drawn at random.`
        : "Demand is high: buyers are let in from a line, in order. Join it to get your place.",
    ),
    join,
  );
}

function bookingForm(event, admission) {
  const remaining = event.capacity.remaining;
  const categories = categoriesOf(event);
  if (event.status !== "ON_SALE" || remaining === 0 || (categories.length && !categories.some(onSale))) {
    const closed = CLOSED[event.status] || CLOSED.SOLD_OUT;
    return h("p", { class: "notice" }, closed[2]);
  }
  // The category booked: chosen in the picker when there are several, else the only one (none
  // from an API that predates categories: the event's price and seats).
  let chosen = categories.find(onSale) ?? null;
  const picker = categories.length > 1 ? categoryPicker(categories, chosen) : null;
  const count = h("select", { id: "ticket-count", name: "ticketCount" });
  const total = h("output", { id: "total", for: "ticket-count", "aria-live": "polite" });
  const submit = h("button", { type: "submit", class: "primary" });
  const outcome = h("div", { id: "booking-outcome" });
  const form = h(
    "form",
    { class: "booking-form", "aria-labelledby": "book-heading" },
    h("h2", { id: "book-heading" }, "Book tickets"),
    picker,
    h("p", { class: "field" }, h("label", { for: "ticket-count" }, "Number of tickets"), count),
    h("p", {}, "Total: ", total),
    submit,
    outcome,
  );
  const price = () => (chosen ? chosen.price : event.price);
  const tickets = () => Number(count.value);
  // At most the API's `maxTicketsPerOrder`, and no more than the category has left.
  const offer = () => {
    const max = Math.min(event.maxTicketsPerOrder, chosen ? chosen.remaining : remaining);
    const keep = Math.min(Math.max(tickets() || 1, 1), max);
    fill(count, Array.from({ length: max }, (_, i) => h("option", { value: String(i + 1) }, String(i + 1))));
    count.value = String(keep);
  };
  const label = () => {
    total.value = money(times(price(), tickets()));
    submit.textContent = signedIn() ? `Book ${tickets()} ticket${tickets() > 1 ? "s" : ""}` : "Sign in to book";
  };
  offer();
  count.addEventListener("change", () => {
    fill(outcome);
    label();
  });
  if (picker) {
    picker.addEventListener("change", (e) => {
      const picked = categories.find((c) => c.id === e.target.value);
      if (!picked) return;
      chosen = picked;
      fill(outcome);
      offer();
      label();
    });
  }
  whenReady().then(label);
  label();

  let busy = false;
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (busy) return; // a second click while the first is on its way: the same attempt anyway
    await whenReady();
    if (!signedIn()) {
      signIn(eventPath(event.id));
      return;
    }
    busy = true;
    submit.disabled = true;
    form.setAttribute("aria-busy", "true");
    submit.textContent = "Booking…";
    fill(outcome);
    try {
      const { booking, replayed } = await book({
        subject: claims().sub,
        eventId: event.id,
        ticketCount: tickets(),
        categoryId: chosen ? chosen.id : null,
        admissionToken: admission ? admission.token : null,
      });
      const n = booking.quantity;
      if (booking.status === "HELD") {
        form.replaceWith(heldSection(booking, event, categories.length > 1 ? chosen : null));
        return;
      }
      navigate("/account/bookings", {
        flash: `${replayed ? "Already booked" : "Booked"}: ${n} ticket${n > 1 ? "s" : ""} for ${event.name}.`,
      });
      return;
    } catch (problem) {
      if (problem.status === 401) {
        signIn(eventPath(event.id));
        return;
      }
      if (problem.slug === "registration-required") {
        navigate(`/account/profile?next=${encodeURIComponent(eventPath(event.id))}`, {
          flash: "Before your first booking, please tell us who you are.",
        });
        return;
      }
      const retryAfter = problem.retryable ? problem.retryAfter ?? 0 : 0;
      const note = h("p", { class: "retry" });
      const join =
        problem.slug === "admission-required" || problem.slug === "admission-expired"
          ? h("p", {}, h("a", { href: linePath(event.id) }, "Go to the waiting room"))
          : null;
      fill(outcome, problemBox(problem), retryAfter ? note : null, join);
      if (problem.slug === "sold-out") {
        if (picker) markSoldOut(picker, chosen);
        else fill(document.getElementById("availability"), badge("sold-out", "Sold out"));
      }
      if (retryAfter) await countdown(note, retryAfter);
    } finally {
      busy = false;
      submit.disabled = false;
      form.setAttribute("aria-busy", "false");
      label();
    }
  });
  return form;
}

/** A radio group: each category with its price and what is left (sold out: not selectable). */
function categoryPicker(categories, chosen) {
  return h(
    "fieldset",
    { class: "categories" },
    h("legend", {}, "Ticket category"),
    categories.map((c) => {
      const id = `category-${c.id}`;
      return h(
        "p",
        { class: "category" },
        h("input", {
          type: "radio",
          name: "categoryId",
          id,
          value: c.id,
          checked: chosen !== null && c.id === chosen.id,
          disabled: !onSale(c),
        }),
        h(
          "label",
          { for: id },
          h("span", { class: "category-name" }, c.name),
          " ",
          h("span", { class: "price" }, money(c.price)),
          " ",
          h("span", { class: "category-left", "data-category": c.id }, categoryAvailability(c)),
        ),
      );
    }),
  );
}

function markSoldOut(picker, category) {
  const left = picker.querySelector(`[data-category="${category.id}"]`);
  if (left) fill(left, badge("sold-out", "Sold out"));
}

/** After booking on an event paid online: the seats are held; the countdown and Pay. */
function heldSection(booking, event, category) {
  const n = booking.quantity;
  const heading = h("h2", { id: "held-heading", tabindex: "-1" }, "Your seats are held");
  const section = h(
    "section",
    { class: "held booking-form", "aria-labelledby": "held-heading" },
    heading,
    h(
      "p",
      {},
      `${n} ticket${n > 1 ? "s" : ""}${category ? ` (${category.name})` : ""} for ${event.name} · ${money(booking.total)}. `,
      "Pay now to confirm them; unpaid, they go back on sale when the hold lapses.",
    ),
    holdPanel(booking),
    h("p", {}, h("a", { href: "/account/bookings" }, "My bookings")),
  );
  const until = new Date(booking.holdExpiresAt).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  setTimeout(() => heading.focus(), 0);
  announce(`${n} seat${n > 1 ? "s" : ""} held until ${until}. Pay to confirm them.`);
  return section;
}

/** "You can try again in N s", counting down; resolves at 0 (the form is then enabled again). */
function countdown(note, seconds) {
  return new Promise((resolve) => {
    let left = seconds;
    const tick = () => {
      if (left <= 0) {
        note.textContent = "You can try again now.";
        announce("You can try again now.");
        resolve();
        return;
      }
      note.textContent = `You can try again in ${left} s.`;
      left -= 1;
      setTimeout(tick, 1000);
    };
    tick();
  });
}
