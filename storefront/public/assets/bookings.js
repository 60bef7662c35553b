// My bookings: live status (HELD -> PENDING -> CONFIRMED without reloading), a hold's countdown
// and Pay, the way back from the payment provider's page, the tickets with their QR codes and the
// PDF link, the payment and its refund, cancelling.
import { api } from "./api.js";
import { signedIn, signIn, whenReady } from "./auth.js";
import { holdPanel, paymentSummary, refundPending, startHoldClocks } from "./checkout.js";
import { qrSvg } from "./qr.js";
import { eventPath, takeFlash } from "./router.js";
import { announce, badge, fill, h, money, pageHeading, problemBox, when } from "./ui.js";

const POLL_MS = 1500; // while something is on its way (confirmation, PDF, cancellation)
const POLL_SLOW_MS = 15000; // after POLL_FOR_MS without news
const POLL_FOR_MS = 120000;
const LINK_FRESH_MS = 240000; // presigned PDF links live 5 minutes (BOXOFFICE_TICKET_LINK_SECONDS)
const PAYMENT_WAIT_MS = 30000; // back from the provider: its webhook usually arrives within a second

/** Still changing on the server: worth reading again soon. A hold is paid or lapses. */
const unsettled = (b) =>
  b.status === "HELD" ||
  b.status === "PENDING" ||
  (b.status === "CONFIRMED" && (!b.order || !b.order.documentUrl)) ||
  (b.status === "CANCELLED" && b.order && b.order.status !== "CANCELLED") ||
  refundPending(b);

/** What the page shows of a booking (the PDF link's signature changes on every read). */
const shown = (b, paying) =>
  JSON.stringify([
    b.status,
    b.holdExpiresAt,
    paying,
    b.payment,
    b.order && b.order.status,
    b.order && b.order.tickets.map((t) => t.status),
    Boolean(b.order && b.order.documentUrl),
  ]);

const STATUS = {
  HELD: (paying) => (paying ? badge("pending", "Confirming payment…") : badge("held", "Awaiting payment")),
  PENDING: () => badge("pending", "Confirming…"),
  CONFIRMED: () => badge("confirmed", "Confirmed"),
  CANCELLED: () => badge("cancelled", "Cancelled"),
  EXPIRED: () => badge("expired", "Hold lapsed"),
};

/** A status change, said to screen readers. */
const SAID = {
  HELD: "held, awaiting payment",
  PENDING: "paid, confirming",
  CONFIRMED: "confirmed, your tickets are ready",
  CANCELLED: "cancelled",
  EXPIRED: "the hold lapsed, the seats are back on sale",
};

export async function bookingsPage(main, params, query) {
  fill(main, h("p", { class: "muted" }, "Loading your bookings…"));
  await whenReady();
  if (!signedIn()) {
    signIn(location.pathname + location.search); // back here, with the payment's outcome
    return undefined;
  }
  const flash = takeFlash();
  // Back from the payment provider's page: ?booking=<id>&payment=<provider's id>&status=...
  const returned =
    query && query.get("booking") && query.get("status")
      ? { id: query.get("booking"), succeeded: query.get("status") === "succeeded", since: Date.now() }
      : null;
  if (returned) history.replaceState(null, "", "/account/bookings"); // a reload does not say it again
  const paying = new Set(returned && returned.succeeded ? [returned.id] : []); // paid, webhook awaited
  const payment = h("div", { class: "payment-outcome" });
  const list = h("div", { class: "bookings" });
  const more = h("button", { type: "button", class: "secondary", hidden: true }, "Show older bookings");
  const status = h("div");
  fill(
    main,
    pageHeading("My bookings"),
    flash ? h("p", { class: "flash", role: "status" }, flash) : null,
    payment,
    status,
    list,
    more,
  );
  if (returned && returned.succeeded) {
    fill(payment, h("p", { class: "flash", role: "status" }, "Payment received, confirming your booking…"));
  } else if (returned) {
    fill(
      payment,
      problemBox({
        title: "Your payment did not go through",
        detail: "The payment provider declined it or it was not completed. You can pay again while your seats are held.",
      }),
    );
  }
  /** What the way back from the provider says once the booking's fate is known. */
  const settlePayment = (booking) => {
    if (!returned || booking.id !== returned.id || !paying.has(booking.id)) return;
    if (booking.status === "HELD") {
      if (Date.now() - returned.since > PAYMENT_WAIT_MS) {
        fill(
          payment,
          h(
            "p",
            { class: "flash", role: "status" },
            "Payment received; its confirmation from the payment provider is taking longer than usual. This page updates by itself.",
          ),
        );
      }
      return;
    }
    paying.delete(booking.id);
    const paid = booking.status === "PENDING" || booking.status === "CONFIRMED";
    fill(
      payment,
      paid
        ? h("p", { class: "flash", role: "status" }, "Payment confirmed: your booking is paid.")
        : problemBox({
            title: booking.status === "EXPIRED" ? "The payment arrived after the hold lapsed" : "The booking was not paid",
            detail: "Its seats went back on sale and the payment is refunded in full.",
          }),
    );
  };

  const events = new Map(); // event id -> Promise<event | null>
  const eventOf = (id) => {
    if (!events.has(id)) {
      events.set(id, api(`/events/${encodeURIComponent(id)}`).then((r) => r.body, () => null));
    }
    return events.get(id);
  };
  const items = new Map(); // booking id -> {booking, element, readAt}
  let cursor = null;
  let stopped = false;
  let timer = null;
  let lastNews = Date.now();

  const show = async (booking, { append = false } = {}) => {
    const event = await eventOf(booking.eventId);
    settlePayment(booking);
    const known = items.get(booking.id);
    const payingFor = paying.has(booking.id);
    if (known && shown(known.booking, known.paying) === shown(booking, payingFor)) {
      known.booking = booking;
      known.readAt = Date.now();
      const link = known.element.querySelector("a.pdf");
      if (link && booking.order && booking.order.documentUrl) link.href = booking.order.documentUrl;
      return;
    }
    const element = article(booking, event, { cancel: () => cancel(booking.id), paying: payingFor });
    if (known) {
      const focused = known.element.contains(document.activeElement) ? document.activeElement.dataset.key : null;
      known.element.replaceWith(element);
      if (focused) (element.querySelector(`[data-key="${focused}"]`) ?? element).focus();
      if (known.booking.status !== booking.status) {
        announce(`${event ? event.name : "Booking"}: ${SAID[booking.status] ?? booking.status.toLowerCase()}`);
      }
      lastNews = Date.now();
    } else if (append) {
      list.append(element);
    } else {
      list.prepend(element);
    }
    items.set(booking.id, { booking, element, readAt: Date.now(), paying: payingFor });
  };

  const load = async () => {
    more.disabled = true;
    try {
      const query = new URLSearchParams({ limit: "20" });
      if (cursor) query.set("cursor", cursor);
      const { body } = await api(`/bookings?${query}`, { auth: true });
      for (const booking of body.items) await show(booking, { append: true });
      // The booking paid just now is on the first page unless many were made since: read it.
      if (returned && !items.has(returned.id) && !cursor) await refresh(returned.id);
      cursor = body.nextCursor;
      more.hidden = !cursor;
      if (!items.size) {
        fill(status, h("p", {}, "No bookings yet. ", h("a", { href: "/" }, "See what's on")));
      }
    } catch (problem) {
      fill(status, problemBox(problem));
    } finally {
      more.disabled = false;
    }
  };

  const refresh = async (id) => {
    const { body } = await api(`/bookings/${encodeURIComponent(id)}`, { auth: true });
    await show(body);
    return body;
  };

  const poll = async () => {
    timer = null;
    if (stopped) return;
    const pending = [...items.values()].filter((i) => unsettled(i.booking));
    if (pending.length && document.visibilityState === "visible") {
      try {
        // The newest page has every booking made since the page was opened.
        const { body } = await api("/bookings?limit=20", { auth: true });
        for (const booking of body.items) if (items.has(booking.id)) await show(booking);
      } catch {
        // a failed poll is retried at the next tick
      }
    }
    if (!stopped && [...items.values()].some((i) => unsettled(i.booking))) {
      timer = setTimeout(poll, Date.now() - lastNews > POLL_FOR_MS ? POLL_SLOW_MS : POLL_MS);
    }
  };

  const cancel = async (id) => {
    const paid = Boolean(items.get(id)?.booking.payment);
    await api(`/bookings/${encodeURIComponent(id)}`, { method: "DELETE", auth: true });
    await refresh(id); // as reads show it: with its payment and refund
    if (returned && returned.id === id) fill(payment); // what the provider's way back said is over
    announce(`Booking cancelled. Its seats are back on sale${paid ? " and the payment is refunded" : ""}.`);
    lastNews = Date.now();
    if (!timer) timer = setTimeout(poll, POLL_MS);
  };

  // An expired PDF link is fetched again before it is followed.
  list.addEventListener("click", async (e) => {
    const link = e.target instanceof Element ? e.target.closest("a.pdf") : null;
    if (!link) return;
    const id = link.closest("article").dataset.booking;
    const item = items.get(id);
    if (item && Date.now() - item.readAt > LINK_FRESH_MS) {
      e.preventDefault();
      const fresh = await refresh(id);
      if (fresh.order && fresh.order.documentUrl) location.assign(fresh.order.documentUrl);
    }
  });
  more.addEventListener("click", load);
  const visible = () => {
    if (document.visibilityState === "visible" && !timer) poll();
  };
  document.addEventListener("visibilitychange", visible);

  // Holds count down; one that lapses is read again soon (housekeeping marks it EXPIRED).
  const stopClocks = startHoldClocks(list, () => {
    lastNews = Date.now();
    if (!timer) timer = setTimeout(poll, POLL_MS);
  });
  await load();
  timer = setTimeout(poll, POLL_MS);
  return () => {
    stopped = true;
    stopClocks();
    if (timer) clearTimeout(timer);
    document.removeEventListener("visibilitychange", visible);
  };
}

function article(booking, event, { cancel, paying }) {
  const name = event ? event.name : "Event";
  const started = event && new Date(event.startsAt) <= new Date();
  const n = booking.quantity;
  // Named when the event sells several categories.
  const categories = event && Array.isArray(event.categories) ? event.categories : [];
  const category = categories.length > 1 ? categories.find((c) => c.id === booking.categoryId) : null;
  const headingId = `booking-${booking.id}-title`;
  return h(
    "article",
    {
      class: `booking booking-${booking.status.toLowerCase()}`,
      "data-booking": booking.id,
      "aria-labelledby": headingId,
      tabindex: "-1",
    },
    h("h2", { id: headingId }, event ? h("a", { href: eventPath(event.id) }, name) : name),
    event ? h("p", { class: "when" }, when(event.startsAt), ` · ${event.venue.name}, ${event.venue.city}`) : null,
    h(
      "p",
      { class: "summary" },
      `${n} ticket${n > 1 ? "s" : ""}${category ? ` · ${category.name}` : ""} · ${money(booking.total)} · booked `,
      when(booking.createdAt),
    ),
    h("p", { class: "status" }, "Status: ", STATUS[booking.status] ? STATUS[booking.status](paying) : booking.status),
    paymentSummary(booking.payment),
    hold(booking, paying),
    tickets(booking, name),
    booking.status !== "CANCELLED" && booking.status !== "EXPIRED" && !started && !paying
      ? cancelControl(booking, cancel)
      : null,
  );
}

function hold(booking, paying) {
  if (booking.status === "HELD" && paying) {
    return h("p", { class: "muted" }, "Payment received, confirming… Your tickets appear here once it is confirmed.");
  }
  if (booking.status === "HELD" && booking.holdExpiresAt) return holdPanel(booking);
  if (booking.status === "EXPIRED") {
    return h(
      "p",
      {},
      "Not paid in time: the seats were held until ",
      booking.holdExpiresAt ? when(booking.holdExpiresAt) : "the hold lapsed",
      " and are back on sale.",
    );
  }
  return null;
}

function tickets(booking, name) {
  const order = booking.order;
  if (booking.status === "PENDING") {
    return h("p", { class: "muted" }, "Your tickets appear here as soon as the booking is confirmed.");
  }
  if (!order || booking.status === "CANCELLED") return null;
  const count = order.tickets.length;
  return h(
    "section",
    { class: "tickets", "aria-label": `Tickets for ${name}` },
    h(
      "ul",
      {},
      [...order.tickets]
        .sort((a, b) => a.seq - b.seq)
        .map((t) =>
          h(
            "li",
            { class: "ticket", "data-ticket": t.id },
            h(
              "figure",
              {},
              qrSvg(t.code, `QR code of ticket ${t.seq} of ${count}`),
              h(
                "figcaption",
                {},
                h("strong", {}, `Ticket ${t.seq} of ${count}`),
                t.status === "VALID" ? null : [" ", badge("cancelled", "Cancelled")],
                h("code", { class: "ticket-code" }, t.code),
              ),
            ),
          ),
        ),
    ),
    order.documentUrl
      ? h("p", {}, h("a", { class: "pdf button secondary", href: order.documentUrl, "data-key": "pdf" }, "Download tickets (PDF)"))
      : h("p", { class: "muted" }, "Preparing your printable tickets (PDF)…"),
  );
}

function cancelControl(booking, cancel) {
  const box = h("div", { class: "cancel" });
  const ask = () => {
    const yes = h("button", { type: "button", class: "danger", "data-key": "cancel-yes" }, "Yes, cancel booking");
    const no = h("button", { type: "button", class: "secondary", "data-key": "cancel-no" }, "Keep booking");
    const refund = booking.payment && Number(booking.payment.paid.amount) > 0 ? ` The ${money(booking.payment.paid)} you paid is refunded.` : "";
    const question = h(
      "p",
      { id: `cancel-${booking.id}` },
      `Cancel these ${booking.quantity} ticket(s)? This cannot be undone.${refund}`,
    );
    const group = h("div", { role: "group", "aria-labelledby": `cancel-${booking.id}` }, question, yes, " ", no);
    fill(box, group);
    no.addEventListener("click", () => {
      start();
      box.querySelector("button").focus();
    });
    yes.addEventListener("click", async () => {
      yes.disabled = true;
      no.disabled = true;
      yes.textContent = "Cancelling…";
      try {
        await cancel();
      } catch (problem) {
        fill(box, problemBox(problem));
      }
    });
    no.focus();
  };
  const start = () => fill(box, h("button", { type: "button", class: "secondary", "data-key": "cancel", onclick: ask }, "Cancel booking"));
  start();
  return box;
}
