// The Boxoffice API on the same origin (the front door). Every error is an RFC 9457 problem;
// `Problem` carries its slug, title, detail, field errors and Retry-After.
import { accessToken, renewToken } from "./auth.js";

export class Problem extends Error {
  constructor({ type, title, status, detail, errors, retryAfter }) {
    super(detail || title);
    this.type = type || "about:blank";
    this.slug = this.type.split("/").pop();
    this.title = title || "Something went wrong";
    this.status = status || 0;
    this.detail = detail || "";
    this.errors = Array.isArray(errors) ? errors : [];
    this.retryAfter = retryAfter; // seconds, or undefined
  }

  /** Worth sending again, unchanged (with the same Idempotency-Key). */
  get retryable() {
    return this.status === 0 || this.status >= 502 || this.slug === "idempotency-key-in-use";
  }
}

// The server's clock minus this device's, when they differ by more than a few seconds (a device
// whose clock is wrong would count a hold's time down wrongly); from the Date of signed-in answers.
let clockOffset = 0;
const CLOCK_SLACK_MS = 5000; // Date has whole seconds, and the answer took its time to arrive

/** Now, by the server's clock (as near as this device can tell): for holds' countdowns. */
export const serverNow = () => Date.now() + clockOffset;

function noteServerClock(response) {
  const date = Date.parse(response.headers.get("Date") || "");
  if (Number.isNaN(date)) return;
  const offset = date - Date.now();
  clockOffset = Math.abs(offset) > CLOCK_SLACK_MS ? offset : 0;
}

export const networkProblem = () =>
  new Problem({
    type: "network-error",
    title: "No connection",
    status: 0,
    detail: "The request did not reach Boxoffice or its answer was lost. Check your connection and try again.",
  });

function retryAfterSeconds(value) {
  if (!value) return undefined;
  if (/^\d+$/.test(value)) return Number(value);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

async function problemFrom(response) {
  const retryAfter = retryAfterSeconds(response.headers.get("Retry-After"));
  const type = response.headers.get("Content-Type") || "";
  if (type.startsWith("application/problem+json") || type.startsWith("application/json")) {
    try {
      return new Problem({ ...(await response.json()), status: response.status, retryAfter });
    } catch {
      // not JSON after all: described by its status below
    }
  }
  return new Problem({
    title: response.statusText || `HTTP ${response.status}`,
    status: response.status,
    retryAfter,
  });
}

/**
 * `api(path, {method, body, auth, headers})` -> {status, headers, body}; throws a Problem.
 * auth: send the signed-in buyer's access token (renewed once when the API says 401).
 * Catalogue reads go without a token, so the front door's cache serves them.
 */
export async function api(path, { method = "GET", body, auth = false, headers = {} } = {}) {
  const send = async () => {
    const sent = { Accept: "application/json, application/problem+json", ...headers };
    if (body !== undefined) sent["Content-Type"] = "application/json";
    if (auth) {
      const token = await accessToken();
      if (!token) {
        throw new Problem({ type: "unauthorized", title: "Please sign in", status: 401 });
      }
      sent.Authorization = `Bearer ${token}`;
    }
    try {
      return await fetch(path, {
        method,
        headers: sent,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "omit",
        cache: auth ? "no-store" : "default",
      });
    } catch {
      throw networkProblem();
    }
  };
  let response = await send();
  if (response.status === 401 && auth && (await renewToken())) response = await send();
  if (auth) noteServerClock(response); // answers to tokens are never cached: their Date is now
  if (!response.ok) throw await problemFrom(response);
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : null };
}
