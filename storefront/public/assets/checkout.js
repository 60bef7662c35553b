// Paying for a held booking (docs/adr/0020-checkout-state-machine.md): the hold's countdown, the
// Pay button and what a booking's payment and refund read as.
// Pay: POST /bookings/{id}/payment (one payment per booking at the provider, however often it is
// asked), then the provider's page (its `redirectUrl`, a top-level navigation) with a `return_url`
// back to "My bookings"; the provider appends `payment=<id>&status=succeeded|failed` to it. The
// booking turns PENDING when the provider's webhook reaches Boxoffice, usually within a second:
// "My bookings" polls until it does (bookings.js).
import { api, Problem, serverNow } from "./api.js";
import { signIn } from "./auth.js";
import { navigate } from "./router.js";
import { fill, h, money, problemBox } from "./ui.js";

/** Where the provider sends the buyer back to: the booking in "My bookings". */
export const returnPath = (bookingId) => `/account/bookings?booking=${encodeURIComponent(bookingId)}`;

// Screen readers hear the time left at these many seconds (the visible clock is not a live
// region: a reading every second would drown everything else out).
const SPOKEN_AT_S = [300, 120, 60, 30];

/** "9:05": minutes and seconds left (rounded up: 0:00 only once the time is over). */
export function mmss(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

function spoken(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  const minutes = Math.floor(s / 60);
  const seconds = s % 60;
  const parts = [];
  if (minutes) parts.push(`${minutes} minute${minutes > 1 ? "s" : ""}`);
  if (seconds || !minutes) parts.push(`${seconds} second${seconds === 1 ? "" : "s"}`);
  return parts.join(" ");
}

const clockTime = (iso) => new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });

/** The provider's page to pay on, with the way back; null unless it is an http(s) URL. */
export function providerUrl(redirectUrl, bookingId) {
  let url;
  try {
    url = new URL(redirectUrl);
  } catch {
    return null;
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return null;
  url.searchParams.set("return_url", location.origin + returnPath(bookingId));
  return url.href;
}

/**
 * A held booking's countdown and Pay button. The clock is run by `startHoldClocks` over the page
 * (one timer for every hold on it); at 0:00 the Pay button is disabled and the lapse said.
 */
export function holdPanel(booking) {
  const left = Date.parse(booking.holdExpiresAt) - serverNow();
  const clock = h("strong", { class: "hold-clock", role: "timer" }, mmss(left));
  const pay = h("button", { type: "button", class: "primary", "data-key": "pay" }, `Pay ${money(booking.total)}`);
  const outcome = h("div", { class: "pay-outcome" });
  pay.addEventListener("click", () => startPayment(booking, pay, outcome));
  return h(
    "div",
    { class: "hold", "data-booking": booking.id, "data-expires": booking.holdExpiresAt },
    h(
      "p",
      { class: "hold-time" },
      `Your seats are held until ${clockTime(booking.holdExpiresAt)}. Time left to pay: `,
      clock,
    ),
    h("p", { class: "hold-lapsed", hidden: true }, "The hold has lapsed: the seats go back on sale."),
    h("p", {}, pay),
    h("p", { class: "visually-hidden hold-live", "aria-live": "polite", "aria-atomic": "true" }),
    outcome,
  );
}

/**
 * Counts down every hold panel inside `root` once a second; `onLapse(bookingId)` when one reaches
 * 0:00 (by the server's clock as far as this device knows it). Returns the function that stops it.
 */
export function startHoldClocks(root, onLapse = () => {}) {
  const tick = () => {
    for (const hold of root.querySelectorAll(".hold[data-expires]")) {
      const left = Date.parse(hold.dataset.expires) - serverNow();
      const clock = hold.querySelector(".hold-clock");
      if (clock && clock.textContent !== mmss(left)) clock.textContent = mmss(left);
      const live = hold.querySelector(".hold-live");
      if (left <= 0) {
        if (hold.dataset.lapsed) continue;
        hold.dataset.lapsed = "true";
        hold.querySelector(".hold-lapsed").hidden = false;
        for (const button of hold.querySelectorAll("button[data-key=pay]")) button.disabled = true;
        if (live) live.textContent = "The hold has lapsed: the seats go back on sale.";
        onLapse(hold.dataset.booking);
        continue;
      }
      // The next point worth saying; a panel shown with less time left starts from there quietly.
      const seconds = Math.ceil(left / 1000);
      const due = SPOKEN_AT_S.filter((at) => seconds <= at).pop();
      if (due === undefined) continue;
      if (hold.dataset.spokenAt === undefined) {
        hold.dataset.spokenAt = String(due);
      } else if (due < Number(hold.dataset.spokenAt)) {
        hold.dataset.spokenAt = String(due);
        if (live) live.textContent = `${spoken(left)} left to pay before the hold lapses.`;
      }
    }
  };
  tick();
  const timer = setInterval(tick, 1000);
  return () => clearInterval(timer);
}

async function startPayment(booking, button, outcome) {
  const label = button.textContent;
  button.disabled = true;
  button.textContent = "Opening the payment page…";
  fill(outcome);
  try {
    const { body: payment } = await api(`/bookings/${encodeURIComponent(booking.id)}/payment`, {
      method: "POST",
      auth: true,
    });
    if (payment.status === "succeeded") {
      // Paid already (in another tab): only its confirmation is still on its way.
      navigate(`${returnPath(booking.id)}&payment=${encodeURIComponent(payment.paymentId)}&status=succeeded`);
      return;
    }
    const target = providerUrl(payment.redirectUrl, booking.id);
    if (!target) {
      throw new Problem({
        type: "payment-page-unavailable",
        title: "The payment page is not available",
        detail: "The payment provider named no page to pay on. Please try again in a moment.",
      });
    }
    // Back from the provider's page by the browser's Back button (restored from the back/forward
    // cache): the button works again.
    window.addEventListener(
      "pageshow",
      () => {
        button.disabled = false;
        button.textContent = label;
      },
      { once: true },
    );
    location.assign(target);
  } catch (problem) {
    if (problem.status === 401) {
      signIn(location.pathname + location.search);
      return;
    }
    fill(outcome, problemBox(problem));
    button.textContent = label;
    // Not payable any more (lapsed, paid or cancelled meanwhile): the page's next read shows why.
    button.disabled = problem.slug === "booking-not-payable";
  }
}

const positive = (m) => Boolean(m) && Number(m.amount) > 0;

/** "Paid £80.00 · Refunded £80.00" / "Refund pending: £80.00", or null when nothing was paid. */
export function paymentSummary(payment) {
  if (!payment || !positive(payment.paid)) return null;
  return h(
    "p",
    { class: "payment" },
    `Paid ${money(payment.paid)}`,
    positive(payment.refunded) ? [" · ", h("strong", { class: "refunded" }, `Refunded ${money(payment.refunded)}`)] : null,
    positive(payment.refundPending)
      ? [" · ", h("strong", { class: "refund-pending" }, `Refund pending: ${money(payment.refundPending)}`)]
      : null,
  );
}

/** A refund asked of the provider and not done yet: worth reading again. */
export const refundPending = (booking) => Boolean(booking.payment) && positive(booking.payment.refundPending);
