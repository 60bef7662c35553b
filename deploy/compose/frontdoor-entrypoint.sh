#!/bin/sh
# The front door under docker compose: renders the same template as the local stack
# (stack/frontdoor/nginx.conf.tmpl, mounted at /etc/boxoffice/nginx.conf.tmpl) for the compose
# network (each function gets the client's Host), then runs nginx in the foreground, logging to
# the container's stderr. The storefront's files are storefront/public, mounted at
# /usr/share/boxoffice/storefront; it signs in with Keycloak as the browser reaches it
# (http://localhost:28080). Overridable:
# FRONTDOOR_TEMPLATE, FRONTDOOR_DIR, FRONTDOOR_LISTEN (or FRONTDOOR_PORT), <FUNCTION>_ADDR (tests/deploy/test_compose.py),
# STOREFRONT_ROOT, STOREFRONT_URL, STOREFRONT_CLIENT_ID, OIDC_ISSUER.
set -eu
dir=${FRONTDOOR_DIR:-/tmp/frontdoor}
issuer=${OIDC_ISSUER:-http://localhost:28080/realms/boxoffice}
origin=$(printf '%s' "$issuer" | sed -E 's|^(https?://[^/]+).*|\1|')
mkdir -p "$dir"
sed -e "s|@DIR@|$dir|g" -e "s|@LOG@|/dev/stderr|g" \
  -e "s|@LISTEN@|${FRONTDOOR_LISTEN:-0.0.0.0:${FRONTDOOR_PORT:-8080}}|g" \
  -e "s|@GET_EVENT_ADDR@|${GET_EVENT_ADDR:-get_event:8080}|g" \
  -e "s|@GET_CUSTOMER_ADDR@|${GET_CUSTOMER_ADDR:-get_customer:8080}|g" \
  -e "s|@CREATE_BOOKING_ADDR@|${CREATE_BOOKING_ADDR:-create_booking:8080}|g" \
  -e "s|@WAITING_ROOM_ADDR@|${WAITING_ROOM_ADDR:-waiting_room:8080}|g" \
  -e 's|@GET_EVENT_HOST@|$http_host|g' -e 's|@GET_CUSTOMER_HOST@|$http_host|g' \
  -e 's|@CREATE_BOOKING_HOST@|$http_host|g' -e 's|@CHECK_IN_HOST@|$http_host|g' \
  -e "s|@CHECK_IN_ADDR@|${CHECK_IN_ADDR:-check_in:8080}|g" \
  -e 's|@WAITING_ROOM_HOST@|$http_host|g' \
  -e "s|@PAYMENT_WEBHOOK_ADDR@|${PAYMENT_WEBHOOK_ADDR:-payment_webhook:8080}|g" \
  -e 's|@PAYMENT_WEBHOOK_HOST@|$http_host|g' \
  -e "s|@PROBLEM_BASE@|${BOXOFFICE_PROBLEM_BASE_URI:-https://boxoffice.example/problems/}|g" \
  -e "s|@STOREFRONT_ROOT@|${STOREFRONT_ROOT:-/usr/share/boxoffice/storefront}|g" \
  -e "s|@STOREFRONT_URL@|${STOREFRONT_URL:-http://localhost:28000}|g" \
  -e "s|@STOREFRONT_CLIENT_ID@|${STOREFRONT_CLIENT_ID:-boxoffice-storefront}|g" \
  -e "s|@OIDC_ISSUER@|$issuer|g" -e "s|@OIDC_ORIGIN@|$origin|g" \
  "${FRONTDOOR_TEMPLATE:-/etc/boxoffice/nginx.conf.tmpl}" >"$dir/nginx.conf"
nginx -t -q -p "$dir" -e /dev/stderr -c "$dir/nginx.conf"
exec nginx -p "$dir" -e /dev/stderr -c "$dir/nginx.conf"
