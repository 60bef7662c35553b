# shellcheck shell=bash
# The local stand-in for the chart's PingSource: every $BOXOFFICE_HOUSEKEEPING_INTERVAL seconds
# (60: lapsed seat holds are released within a minute, ADR 20) it POSTs to the housekeeping
# function (http://127.0.0.1:$BOXOFFICE_HOUSEKEEPING_PORT/), which releases lapsed seat holds,
# sends due refunds and prunes expired idempotency keys and old order-event rows (ADR 13). Its log, one line per
# pass with the function's report: $BX_LOGS/housekeeping-trigger.log.
: "${BOXOFFICE_HOUSEKEEPING_INTERVAL:=60}"

_housekeeping_wanted() { grep -qs '^def handler' "$BX_ROOT/functions/housekeeping/main.py"; }

housekeeping_install() { :; }

housekeeping_healthy() {
  _housekeeping_wanted || return 0
  bx_pid_alive housekeeping-trigger
}

housekeeping_start() {
  _housekeeping_wanted || return 0
  bx_stop_pid housekeeping-trigger 5
  local url="http://$BX_HOST:${BOXOFFICE_HOUSEKEEPING_PORT:-28089}/"
  bx_start_bg housekeeping-trigger bash -c '
    while true; do
      printf "%s " "$(date -u +%FT%TZ)"
      curl -sS --max-time 120 -X POST -H "Content-Type: application/json" -d "{}" "$1" || true
      echo
      sleep "$2"
    done' housekeeping-trigger "$url" "$BOXOFFICE_HOUSEKEEPING_INTERVAL"
}

housekeeping_stop() { bx_stop_pid housekeeping-trigger 5; }

housekeeping_status_line() {
  echo "every ${BOXOFFICE_HOUSEKEEPING_INTERVAL}s POST -> housekeeping:${BOXOFFICE_HOUSEKEEPING_PORT:-28089} log=$(bx_log_file housekeeping-trigger)"
}
