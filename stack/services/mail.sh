# shellcheck shell=bash
# The SMTP sink of ticket emails (docs/adr/0019-tickets-by-email.md): Mailpit, built once with
# `go install` from the Go module proxy into the project cache (benchmarks/env.py `go_install`,
# as vegeta and stripe-mock are). It accepts every email on 127.0.0.1:$BOXOFFICE_SMTP_PORT and
# delivers none; its web inbox and API (/api/v1/...) are on http://127.0.0.1:$BOXOFFICE_MAIL_WEB_PORT.
# Messages are kept in $BX_STATE/mail/mailpit.db (the newest 5000). --enable-chaos lets a test
# make it refuse (PUT /api/v1/chaos), never on by itself.
: "${BOXOFFICE_SMTP_PORT:=28025}"
: "${BOXOFFICE_MAIL_WEB_PORT:=28026}"
: "${BOXOFFICE_SMTP_FROM:=Boxoffice <tickets@boxoffice.test>}"
BX_MAILPIT_MODULE=github.com/axllent/mailpit
BX_MAILPIT_VERSION=v1.33.1

mail_bin() { echo "$BX_CACHE/tools/mailpit-$BX_MAILPIT_VERSION/mailpit"; }
mail_web_url() { echo "http://$BX_HOST:$BOXOFFICE_MAIL_WEB_PORT"; }

mail_install() {
  [[ -x "$(mail_bin)" ]] && return 0
  bx_log "building Mailpit $BX_MAILPIT_VERSION (go install, once)"
  (cd "$BX_ROOT" && "${BX_VENV:-$BX_ROOT/.venv}/bin/python" -c \
    'import sys; from pathlib import Path; from benchmarks.env import go_install; go_install(sys.argv[1], sys.argv[2], Path(sys.argv[3]))' \
    "$BX_MAILPIT_MODULE" "$BX_MAILPIT_VERSION" "$(mail_bin)" >&2) || bx_die "could not build Mailpit"
}

mail_healthy() { bx_http_ok "$(mail_web_url)/readyz" && bx_port_open "$BOXOFFICE_SMTP_PORT"; }

mail_start() {
  bx_stop_pid mail 5
  mkdir -p "$BX_STATE/mail"
  bx_start_bg mail "$(mail_bin)" --smtp "$BX_HOST:$BOXOFFICE_SMTP_PORT" \
    --listen "$BX_HOST:$BOXOFFICE_MAIL_WEB_PORT" --database "$BX_STATE/mail/mailpit.db" \
    --max 5000 --disable-version-check --smtp-disable-rdns --enable-chaos
  bx_wait mail 30 mail_healthy
}

mail_stop() { bx_stop_pid mail 5; }

mail_status_line() {
  echo "SMTP $BX_HOST:$BOXOFFICE_SMTP_PORT, inbox $(mail_web_url)/ (Mailpit $BX_MAILPIT_VERSION), log $(bx_log_file mail)"
}

mail_env() {
  echo "export BOXOFFICE_SMTP_HOST=$BX_HOST"
  echo "export BOXOFFICE_SMTP_PORT=$BOXOFFICE_SMTP_PORT"
  echo "export BOXOFFICE_SMTP_FROM='$BOXOFFICE_SMTP_FROM'"
  echo "export BOXOFFICE_SMTP_STARTTLS=off"
  echo "export BOXOFFICE_MAIL_WEB_URL=$(mail_web_url)"
}
