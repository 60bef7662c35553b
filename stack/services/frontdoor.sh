# shellcheck shell=bash
# The front door: nginx from Debian packages, our own process (not the Debian service), one base URL
# for the API on http://127.0.0.1:$BOXOFFICE_FRONTDOOR_PORT that routes by path to the functions:
# /events, /venues -> get_event; /events/{id}/queue -> waiting_room; /customers -> get_customer;
# /bookings -> create_booking; /checkins, /events/{id}/checkins/..., /.well-known/ticket-keys -> check_in;
# /payments/webhook -> payment_webhook (devpay's webhooks, like Stripe's in production); everything else is the storefront (the buyer's web page: storefront/public, served as it is;
# docs/adr/0016-storefront.md), signing in with the local Keycloak's `boxoffice-storefront` client.
# Config rendered from stack/frontdoor/nginx.conf.tmpl into $BX_STATE/frontdoor/nginx.conf (checked
# with `nginx -t`); access and error log: $BX_STATE/logs/frontdoor.log; the catalogue cache, temp
# files and pid live in $BX_STATE/frontdoor (`stack/boxo down --purge` deletes them). Each function
# gets the client's Host. See docs/adr/0009-front-door.md.
: "${BOXOFFICE_FRONTDOOR_PORT:=28000}"
: "${BOXOFFICE_PROBLEM_BASE_URI:=https://boxoffice.example/problems/}"
BX_NGINX_BIN="${BOXOFFICE_NGINX_BIN:-/usr/sbin/nginx}"
BX_FD_DIR="$BX_STATE/frontdoor"
BX_FD_CONFIG="$BX_FD_DIR/nginx.conf"
BX_FD_STOREFRONT_CLIENT=boxoffice-storefront # stack/keycloak/realm-boxoffice.json
# Started as root, nginx would run its workers as `nobody`, who may not reach the cache and temp
# files in $BX_STATE (a clone under /root is private): then the workers run as the same user.
BX_FD_GLOBALS=()
[[ $EUID -eq 0 ]] && BX_FD_GLOBALS=(-g "user root;")

frontdoor_url() { echo "http://$BX_HOST:$BOXOFFICE_FRONTDOOR_PORT"; }

frontdoor_install() {
  [[ -x "$BX_NGINX_BIN" ]] || bx_apt_install nginx
  [[ -x "$BX_NGINX_BIN" ]] || bx_die "nginx binary not found at $BX_NGINX_BIN"
}

frontdoor_healthy() { bx_http_ok "$(frontdoor_url)/_frontdoor/healthz"; }

# _fd_render FILE: the config for the current ports, checked with `nginx -t`.
_fd_render() {
  local out=$1
  mkdir -p "$BX_FD_DIR"
  sed -e "s|@DIR@|$BX_FD_DIR|g" -e "s|@LOG@|$(bx_log_file frontdoor)|g" \
    -e "s|@LISTEN@|$BX_HOST:$BOXOFFICE_FRONTDOOR_PORT|g" \
    -e "s|@GET_EVENT_ADDR@|$BX_HOST:$(fn_port get_event)|g" \
    -e "s|@GET_CUSTOMER_ADDR@|$BX_HOST:$(fn_port get_customer)|g" \
    -e "s|@CREATE_BOOKING_ADDR@|$BX_HOST:$(fn_port create_booking)|g" \
    -e "s|@WAITING_ROOM_ADDR@|$BX_HOST:$(fn_port waiting_room)|g" \
    -e 's|@GET_EVENT_HOST@|$http_host|g' -e 's|@GET_CUSTOMER_HOST@|$http_host|g' \
    -e 's|@CREATE_BOOKING_HOST@|$http_host|g' -e 's|@CHECK_IN_HOST@|$http_host|g' \
    -e "s|@CHECK_IN_ADDR@|$BX_HOST:$(fn_port check_in)|g" \
    -e 's|@WAITING_ROOM_HOST@|$http_host|g' \
    -e "s|@PAYMENT_WEBHOOK_ADDR@|$BX_HOST:$(fn_port payment_webhook)|g" \
    -e 's|@PAYMENT_WEBHOOK_HOST@|$http_host|g' \
    -e "s|@PROBLEM_BASE@|$BOXOFFICE_PROBLEM_BASE_URI|g" \
    -e "s|@STOREFRONT_ROOT@|$BX_ROOT/storefront/public|g" -e "s|@STOREFRONT_URL@|$(frontdoor_url)|g" \
    -e "s|@STOREFRONT_CLIENT_ID@|$BX_FD_STOREFRONT_CLIENT|g" \
    -e "s|@OIDC_ISSUER@|$(bx_kc_url)/realms/$BX_KC_REALM|g" -e "s|@OIDC_ORIGIN@|$(bx_kc_url)|g" \
    "$BX_ROOT/stack/frontdoor/nginx.conf.tmpl" >"$out"
  "$BX_NGINX_BIN" -t -q -p "$BX_FD_DIR" -e "$(bx_log_file frontdoor)" -c "$out" "${BX_FD_GLOBALS[@]}" 2>/dev/null || {
    "$BX_NGINX_BIN" -t -p "$BX_FD_DIR" -e "$(bx_log_file frontdoor)" -c "$out" "${BX_FD_GLOBALS[@]}" >&2 || true
    bx_die "invalid nginx config rendered into $out (from stack/frontdoor/nginx.conf.tmpl)"
  }
}

frontdoor_start() {
  _fd_render "$BX_FD_CONFIG"
  bx_stop_pid frontdoor 5
  bx_start_bg frontdoor "$BX_NGINX_BIN" -p "$BX_FD_DIR" -e "$(bx_log_file frontdoor)" \
    -c "$BX_FD_CONFIG" "${BX_FD_GLOBALS[@]}"
  bx_wait frontdoor 20 frontdoor_healthy
}

# Already running with an outdated config (template or a port changed): reload it in place.
frontdoor_after_start() {
  local fresh="$BX_FD_CONFIG.new"
  _fd_render "$fresh"
  if cmp -s "$fresh" "$BX_FD_CONFIG"; then
    rm -f "$fresh"
    return 0
  fi
  mv "$fresh" "$BX_FD_CONFIG"
  bx_log "frontdoor: config changed, reloading"
  kill -HUP "$(cat "$(bx_pid_file frontdoor)")" ||
    bx_die "frontdoor config reload failed; see its log: $(bx_log_file frontdoor)"
}

frontdoor_stop() { bx_stop_pid frontdoor 10; }

frontdoor_status_line() {
  echo "$(frontdoor_url) storefront=$(frontdoor_url)/ /events,/venues->get_event /events/*/queue->waiting_room /customers->get_customer /bookings->create_booking /checkins->check_in /payments/webhook->payment_webhook log=$(bx_log_file frontdoor)"
}

frontdoor_env() {
  echo "export BOXOFFICE_FRONTDOOR_URL=$(frontdoor_url)"
  echo "export BOXOFFICE_API_URL=$(frontdoor_url)"
  echo "export BOXOFFICE_STOREFRONT_URL=$(frontdoor_url)"
}
