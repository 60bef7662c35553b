// /auth/silent.html: a silent sign-in's hidden iframe lands here with Keycloak's answer in its
// URL fragment. Hand it to the storefront page that opened the iframe (same origin only), which
// checks the state and exchanges the code itself; nothing is stored here.
new oidc.UserManager({
  authority: location.origin,
  client_id: "silent-callback",
  redirect_uri: location.origin + location.pathname,
  response_mode: "fragment",
}).signinSilentCallback();
