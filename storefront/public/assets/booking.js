// Booking tickets, correct under retries: one Idempotency-Key per purchase attempt.
// An attempt is (buyer, event, ticket category, ticket count). Its key is kept in sessionStorage
// (this tab only, not a secret) until the booking is made, so pressing "Book" again, or again
// after a network failure or a reload, sends the same key: the API then replays the booking it
// already made instead of booking twice. Another category or ticket count is another attempt (the
// API refuses one key for two different requests). Refusals (sold out, limit reached, overloaded)
// are not stored by the API, so trying again with the same key is evaluated afresh.
import { api } from "./api.js";

const slot = (subject, eventId) => `bx.attempt.${subject}.${eventId}`;

function attempt(subject, eventId, ticketCount, categoryId) {
  const name = slot(subject, eventId);
  let stored = null;
  try {
    stored = JSON.parse(sessionStorage.getItem(name) || "null");
  } catch {
    stored = null;
  }
  if (
    stored &&
    stored.ticketCount === ticketCount &&
    (stored.categoryId ?? null) === categoryId &&
    typeof stored.key === "string"
  ) {
    return stored;
  }
  const fresh = { key: crypto.randomUUID(), ticketCount, categoryId };
  sessionStorage.setItem(name, JSON.stringify(fresh));
  return fresh;
}

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * POST /bookings -> {booking, replayed}; throws the API's Problem. `categoryId`: the ticket
 * category (null for an event that has none to choose from). For an event in queue mode,
 * `admissionToken` is the waiting room's admission (line.js). On an event paid online the booking
 * is a HELD one, to be paid (checkout.js).
 */
export async function book({ subject, eventId, ticketCount, categoryId = null, admissionToken = null }) {
  const { key } = attempt(subject, eventId, ticketCount, categoryId);
  for (let tries = 1; ; tries += 1) {
    try {
      const { body, headers } = await api("/bookings", {
        method: "POST",
        auth: true,
        body: categoryId ? { eventId, ticketCount, categoryId } : { eventId, ticketCount },
        headers: admissionToken ? { "Idempotency-Key": key, "Admission-Token": admissionToken } : { "Idempotency-Key": key },
      });
      sessionStorage.removeItem(slot(subject, eventId));
      return { booking: body, replayed: headers.get("Idempotent-Replayed") === "true" };
    } catch (problem) {
      // The first request with this key is still running: its answer is coming, wait for it.
      if (problem.slug === "idempotency-key-in-use" && tries < 6) {
        await pause(400 * tries);
        continue;
      }
      throw problem;
    }
  }
}
