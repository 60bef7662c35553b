// Sign-in with Keycloak (any OpenID Provider): authorization code flow with PKCE (S256), by
// oidc-client-ts (assets/vendor/oidc-client-ts.min.js, the global `oidc`).
// - Tokens (access, refresh, id) live in memory only (InMemoryWebStorage): never in
//   localStorage or sessionStorage, never in a cookie of ours.
// - Renewal: with the refresh token, before the access token expires (automaticSilentRenew),
//   and once more when the API answers 401.
// - After a reload the memory is empty: if this browser signed in before (the flag below, not a
//   token), a silent sign-in (prompt=none in a hidden iframe, /auth/silent.html) restores the
//   session from Keycloak's own session, without showing anything.
// - The authorization response comes in the URL fragment (response_mode=fragment): the code
//   never reaches a server log, and the callback page removes it from the address bar.
// - Sign-out ends Keycloak's session too (RP-initiated logout) and comes back to /.
const SIGNED_IN = "bx.signedIn"; // localStorage: "this browser has a session" (a hint only)

let manager = null;
let ready = Promise.resolve();
let current = null;
const listeners = new Set();

function setUser(user) {
  current = user && !user.expired ? user : null;
  for (const listener of listeners) listener(current);
}

/** Call `listener(user | null)` now and on every change. */
export function onUser(listener) {
  listeners.add(listener);
  listener(current);
}

export const signedIn = () => current !== null;

/** The buyer's name, e-mail and subject from the ID token (to prefill the profile form). */
export function claims() {
  return current ? current.profile : {};
}

/** A same-origin path to go back to after sign-in (anything else: the home page). */
export function safePath(path) {
  return typeof path === "string" && /^\/(?!\/)[^\\]*$/.test(path) ? path : "/";
}

/**
 * Start sign-in handling for this page load. Returns the path to show after a sign-in callback,
 * or null. The promise `whenReady()` resolves once it is known whether the buyer is signed in.
 */
export function startAuth(config) {
  manager = new oidc.UserManager({
    authority: config.issuer,
    client_id: config.clientId,
    redirect_uri: `${config.url}/auth/callback`,
    silent_redirect_uri: `${config.url}/auth/silent.html`,
    post_logout_redirect_uri: `${config.url}/`,
    response_type: "code",
    response_mode: "fragment",
    scope: "openid profile email",
    userStore: new oidc.WebStorageStateStore({ store: new oidc.InMemoryWebStorage() }),
    // Only the sign-in request's state and PKCE verifier, for the way back from Keycloak.
    stateStore: new oidc.WebStorageStateStore({ store: window.sessionStorage }),
    automaticSilentRenew: true,
    silentRequestTimeoutInSeconds: 8,
    monitorSession: false,
    loadUserInfo: false,
  });
  manager.events.addUserLoaded(setUser);
  manager.events.addUserUnloaded(() => setUser(null));
  manager.events.addAccessTokenExpired(() => setUser(null));
  manager.events.addSilentRenewError(async () => {
    // The refresh token was refused: Keycloak's session ended (signed out elsewhere, expired).
    localStorage.removeItem(SIGNED_IN);
    await manager.removeUser();
  });

  if (location.pathname === "/auth/callback") {
    const done = manager.signinRedirectCallback(location.href).then((user) => {
      localStorage.setItem(SIGNED_IN, "1");
      setUser(user);
      return safePath(user.state && user.state.returnTo);
    });
    ready = done.then(
      () => undefined,
      () => undefined,
    );
    return done;
  }
  if (localStorage.getItem(SIGNED_IN)) {
    ready = manager.signinSilent().then(setUser, () => {
      localStorage.removeItem(SIGNED_IN);
      setUser(null);
    });
  }
  return Promise.resolve(null);
}

export const whenReady = () => ready;

/** The current access token, renewed first when it is about to expire; null when signed out. */
export async function accessToken() {
  await ready;
  if (!manager) return null;
  let user = await manager.getUser();
  if (user && (user.expires_in ?? 0) < 15) {
    user = (await renewToken()) ? await manager.getUser() : null;
  }
  return user && !user.expired ? user.access_token : null;
}

/** Renew the tokens now (refresh token, else a silent sign-in). */
export async function renewToken() {
  try {
    return Boolean(await manager.signinSilent());
  } catch {
    return false;
  }
}

/** Off to Keycloak's sign-in page; back at `returnTo` afterwards. */
export function signIn(returnTo = location.pathname + location.search) {
  return manager.signinRedirect({ state: { returnTo: safePath(returnTo) } });
}

export async function signOut() {
  localStorage.removeItem(SIGNED_IN);
  sessionStorage.clear(); // purchase attempts of this buyer (see booking.js)
  if (current) {
    await manager.signoutRedirect();
  } else {
    await manager.removeUser();
    location.assign("/");
  }
}
