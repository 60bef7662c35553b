# shellcheck shell=bash
# The local payment provider (stack/devpay/devpay.py): a stand-in for Stripe that speaks the part
# of its API our Stripe adapter uses, so the functions take payments with no internet through the
# same adapter and the same webhook path as in production. API and the buyer's checkout page
# (/checkout/<payment id>, Pay or Decline) on http://127.0.0.1:$BOXOFFICE_DEVPAY_PORT; its events
# are POSTed, signed by Stripe's scheme with BOXOFFICE_STRIPE_WEBHOOK_SECRET, to every URL of
# BOXOFFICE_DEVPAY_WEBHOOK_URL (comma-separated; default: the front door's /payments/webhook),
# retried for about a minute while it does not answer 2xx. State in memory: a restart forgets
# every payment. The functions get BOXOFFICE_STRIPE_API_BASE (this server), a test-mode API key
# and the webhook secret from devpay_env, always: the local stack never talks to Stripe.
: "${BOXOFFICE_DEVPAY_PORT:=28093}"
# A fixed dev value, not a secret: it only signs devpay's webhooks to the local stack.
BX_DEVPAY_WEBHOOK_SECRET=whsec_devpay_local_stack
BX_DEVPAY_API_KEY=sk_test_devpay

devpay_url() { echo "http://$BX_HOST:$BOXOFFICE_DEVPAY_PORT"; }
devpay_webhook_url() {
  echo "${BOXOFFICE_DEVPAY_WEBHOOK_URL:-http://$BX_HOST:${BOXOFFICE_FRONTDOOR_PORT:-28000}/payments/webhook}"
}

devpay_install() { :; }

devpay_healthy() { bx_http_ok "$(devpay_url)/healthz"; }

devpay_start() {
  bx_stop_pid devpay 10
  (
    export BOXOFFICE_DEVPAY_PORT BOXOFFICE_DEVPAY_WEBHOOK_URL
    BOXOFFICE_DEVPAY_WEBHOOK_URL=$(devpay_webhook_url)
    export BOXOFFICE_STRIPE_WEBHOOK_SECRET=$BX_DEVPAY_WEBHOOK_SECRET
    bx_start_bg devpay "${BX_VENV:-$BX_ROOT/.venv}/bin/python" "$BX_ROOT/stack/devpay/devpay.py" \
      --host "$BX_HOST" --port "$BOXOFFICE_DEVPAY_PORT"
  )
  bx_wait devpay 30 devpay_healthy
}

devpay_stop() { bx_stop_pid devpay 10; }

devpay_status_line() {
  echo "$(devpay_url) (checkout: /checkout/<payment id>, events: /devpay/events) -> webhooks $(devpay_webhook_url), log $(bx_log_file devpay)"
}

devpay_env() {
  echo "export BOXOFFICE_DEVPAY_URL=$(devpay_url)"
  echo "export BOXOFFICE_DEVPAY_WEBHOOK_URL=$(devpay_webhook_url)"
  echo "export BOXOFFICE_STRIPE_API_BASE=$(devpay_url)"
  echo "export BOXOFFICE_STRIPE_API_KEY=$BX_DEVPAY_API_KEY"
  echo "export BOXOFFICE_STRIPE_WEBHOOK_SECRET=$BX_DEVPAY_WEBHOOK_SECRET"
}
