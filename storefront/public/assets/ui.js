// DOM helpers and formatting. Every element is built with createElement and text nodes (no
// innerHTML anywhere): whatever the API returns is shown as text, never parsed as markup.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "class") {
      el.className = value;
    } else if (value === true) {
      el.setAttribute(name, "");
    } else {
      el.setAttribute(name, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace an element's content. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const announcer = () => document.getElementById("announcer");

/** Say something to screen readers (a polite live region), e.g. "Booking confirmed". */
export function announce(text) {
  const region = announcer();
  if (!region) return;
  region.textContent = "";
  // A new text node in a later task: announced even when the text repeats.
  setTimeout(() => {
    region.textContent = text;
  }, 50);
}

/** The page's main heading: focused after navigation, so screen readers read the new page. */
export function pageHeading(text) {
  document.title = `${text} · Boxoffice`;
  return h("h1", { tabindex: "-1", id: "page-heading" }, text);
}

const dateTime = new Intl.DateTimeFormat(undefined, {
  weekday: "short",
  day: "numeric",
  month: "short",
  year: "numeric",
  hour: "2-digit",
  minute: "2-digit",
  timeZoneName: "short",
});

export function when(iso) {
  return h("time", { datetime: iso }, dateTime.format(new Date(iso)));
}

export function money({ amount, currency }) {
  // amount is a decimal string: formatting it as a number is exact for prices (2 decimals).
  return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(Number(amount));
}

/** Multiply a decimal string by a count, exactly (in minor units). */
export function times({ amount, currency }, count) {
  const [whole, fraction = ""] = amount.split(".");
  const digits = fraction.length;
  const minor = BigInt(whole + fraction) * BigInt(count);
  const text = minor.toString().padStart(digits + 1, "0");
  const total = digits ? `${text.slice(0, -digits)}.${text.slice(-digits)}` : text;
  return { amount: total, currency };
}

/** A problem (see api.js) as an alert: its title and detail, and what the buyer can do. */
export function problemBox(problem, { retryIn } = {}) {
  return h(
    "div",
    { class: "problem", role: "alert" },
    h("p", { class: "problem-title" }, problem.title),
    problem.detail && problem.detail !== problem.title ? h("p", {}, problem.detail) : null,
    retryIn ? h("p", { class: "retry" }, retryIn) : null,
  );
}

export function badge(kind, text) {
  return h("span", { class: `badge badge-${kind}` }, text);
}
