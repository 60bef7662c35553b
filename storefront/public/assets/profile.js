// The buyer's profile (PUT /customers/me): required before the first booking. The form is
// prefilled from the ID token (name, e-mail) for a buyer who has not registered yet; the API's
// field errors (422 validation-failed) are shown next to their fields.
import { api } from "./api.js";
import { claims, safePath, signedIn, signIn, whenReady } from "./auth.js";
import { navigate, takeFlash } from "./router.js";
import { fill, h, pageHeading, problemBox } from "./ui.js";

// ISO 3166-1 alpha-2 (as /usr/share/zoneinfo/iso3166.tab); names in the browser's language.
const COUNTRIES = (
  "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ " +
  "BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM " +
  "DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS " +
  "GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN " +
  "KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ " +
  "MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM " +
  "PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV " +
  "SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI " +
  "VN VU WF WS YE YT ZA ZM ZW " +
  ""
).trim().split(" ");

const FIELDS = [
  // [name in the API, label, input attributes]
  ["name", "Full name", { autocomplete: "name", required: true, maxlength: "200" }],
  ["email", "E-mail", { type: "email", autocomplete: "email", required: true, maxlength: "254" }],
  ["address.line1", "Address", { autocomplete: "address-line1", required: true, maxlength: "200" }],
  ["address.line2", "Address line 2 (optional)", { autocomplete: "address-line2", maxlength: "200" }],
  ["address.postalCode", "Postcode", { autocomplete: "postal-code", required: true, maxlength: "20" }],
  ["address.city", "Town or city", { autocomplete: "address-level2", required: true, maxlength: "100" }],
];

const inputId = (name) => `field-${name.replace(".", "-")}`;

function countrySelect(value) {
  let names = null;
  try {
    names = new Intl.DisplayNames([navigator.language, "en"], { type: "region" });
  } catch {
    names = null;
  }
  const label = (code) => (names && names.of(code)) || code;
  const options = COUNTRIES.map((code) => [code, label(code)]).sort((a, b) => a[1].localeCompare(b[1]));
  return h(
    "select",
    { id: inputId("address.country"), name: "address.country", autocomplete: "country", required: true },
    options.map(([code, name]) => h("option", { value: code, selected: code === value }, name)),
  );
}

function defaultCountry() {
  const region = (navigator.language || "").split("-")[1];
  return region && COUNTRIES.includes(region.toUpperCase()) ? region.toUpperCase() : "GB";
}

export async function profilePage(main, _params, query) {
  fill(main, h("p", { class: "muted" }, "Loading your details…"));
  await whenReady();
  if (!signedIn()) {
    signIn(`/account/profile${query.toString() ? `?${query}` : ""}`);
    return;
  }
  const next = query.get("next");
  let customer = null;
  try {
    customer = (await api("/customers/me", { auth: true })).body;
  } catch (problem) {
    if (problem.status !== 404) {
      fill(main, pageHeading("Your details"), problemBox(problem));
      return;
    }
  }
  const token = claims();
  const values = customer
    ? { name: customer.name, email: customer.email, ...prefix(customer.address) }
    : { name: token.name || "", email: token.email || "", "address.country": defaultCountry() };
  const flash = takeFlash();
  const summary = h("div", { id: "form-problem" });
  const inputs = new Map();
  const rows = FIELDS.map(([name, text, attrs]) => {
    const input = h("input", { id: inputId(name), name, type: "text", value: values[name] ?? "", ...attrs });
    inputs.set(name, input);
    return row(name, text, input);
  });
  const country = countrySelect(values["address.country"] || defaultCountry());
  inputs.set("address.country", country);
  rows.push(row("address.country", "Country", country));
  const submit = h("button", { type: "submit", class: "primary" }, customer ? "Save details" : "Save and continue");
  const form = h("form", { class: "profile", "aria-describedby": "profile-intro" }, summary, rows, submit);
  fill(
    main,
    pageHeading("Your details"),
    flash ? h("p", { class: "flash", role: "status" }, flash) : null,
    h(
      "p",
      { id: "profile-intro" },
      customer
        ? "The name on your tickets and where we can reach you."
        : "Before your first booking we need your name, e-mail and address. Your tickets carry your name.",
    ),
    form,
  );

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    for (const input of inputs.values()) clearError(input);
    fill(summary);
    const get = (name) => inputs.get(name).value.trim();
    const address = { line1: get("address.line1"), postalCode: get("address.postalCode"), city: get("address.city"), country: get("address.country") };
    if (get("address.line2")) address.line2 = get("address.line2");
    submit.disabled = true;
    try {
      await api("/customers/me", { method: "PUT", auth: true, body: { name: get("name"), email: get("email"), address } });
      navigate(next ? safePath(next) : "/account/bookings", { flash: "Your details are saved." });
    } catch (problem) {
      fill(summary, problemBox(problem));
      let first = null;
      for (const { field, message } of problem.errors) {
        const input = inputs.get(field);
        if (!input) continue;
        showError(input, message);
        first = first || input;
      }
      if (first) first.focus();
    } finally {
      submit.disabled = false;
    }
  });
}

function prefix(address) {
  return Object.fromEntries(Object.entries(address || {}).map(([k, v]) => [`address.${k}`, v]));
}

function row(name, text, input) {
  return h("p", { class: "field" }, h("label", { for: inputId(name) }, text), input, h("span", { class: "field-error", id: `${inputId(name)}-error`, hidden: true }));
}

function showError(input, message) {
  const error = document.getElementById(`${input.id}-error`);
  error.textContent = message;
  error.hidden = false;
  input.setAttribute("aria-invalid", "true");
  input.setAttribute("aria-describedby", error.id);
}

function clearError(input) {
  const error = document.getElementById(`${input.id}-error`);
  error.textContent = "";
  error.hidden = true;
  input.removeAttribute("aria-invalid");
  input.removeAttribute("aria-describedby");
}
