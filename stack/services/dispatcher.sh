# shellcheck shell=bash
# The KafkaSource-contract dispatcher (stack/kafkasource/dispatcher.py): the local stand-in for
# Knative's KafkaSource. Consumes $BOXOFFICE_BOOKING_TOPIC with consumer group
# $BOXOFFICE_DISPATCHER_GROUP and POSTs each record as a binary-mode CloudEvent to consume_order
# (http://127.0.0.1:$BOXOFFICE_CONSUME_ORDER_PORT/); dead letters go to $BOXOFFICE_DEAD_LETTER_TOPIC
# (inspect/replay: `stack/boxo dlq list|replay`). Delivery defaults: retry 8, exponential, PT0.5S,
# timeout PT30S, as the chart's KafkaSource (ADR 8; BOXOFFICE_DISPATCHER_RETRY, _BACKOFF_POLICY, _BACKOFF_DELAY, _TIMEOUT override).
# Metrics and /healthz on 127.0.0.1:$BOXOFFICE_DISPATCHER_PORT, registered with Prometheus; /healthz
# is 503 when it has lag and has delivered nothing for BOXOFFICE_DISPATCHER_STALL_TIMEOUT seconds
# (60): `stack/boxo status` shows it unhealthy and `stack/boxo up` restarts it.
# Started only once functions/consume_order/main.py defines `handler` (like functions.sh).
: "${BOXOFFICE_DISPATCHER_PORT:=28086}"
: "${BOXOFFICE_DISPATCHER_GROUP:=boxoffice-consume-order}"

dispatcher_url() { echo "http://$BX_HOST:$BOXOFFICE_DISPATCHER_PORT"; }
_dispatcher_wanted() { grep -qs '^def handler' "$BX_ROOT/functions/consume_order/main.py"; }
_dispatcher_up() { bx_http_ok "$(dispatcher_url)/healthz" 2>/dev/null; }

dispatcher_install() { :; }

# Its process is alive (then a failing /healthz means "unhealthy", e.g. stalled, not "down").
dispatcher_running() { _dispatcher_wanted && bx_pid_alive dispatcher; }
# What /healthz says (e.g. "unhealthy: lag 179 and nothing delivered for 60 s").
dispatcher_health_detail() { curl -sS --max-time 3 "$(dispatcher_url)/healthz" 2>&1 | head -n1; }

# Healthy when not wanted yet (consume_order missing), else when /healthz answers.
dispatcher_healthy() {
  _dispatcher_wanted || return 0
  _dispatcher_up
}

dispatcher_start() {
  _dispatcher_wanted || return 0
  bx_stop_pid dispatcher 20
  (
    eval "$(bx_env)"
    export BOXOFFICE_DISPATCHER_GROUP BOXOFFICE_DISPATCHER_PORT
    bx_start_bg dispatcher "${BX_VENV:-$BX_ROOT/.venv}/bin/python" \
      "$BX_ROOT/stack/kafkasource/dispatcher.py" \
      --sink "http://$BX_HOST:${BOXOFFICE_CONSUME_ORDER_PORT:-28084}/" \
      --topic "${BOXOFFICE_BOOKING_TOPIC:-booking}" \
      --group "$BOXOFFICE_DISPATCHER_GROUP" \
      --dlq-topic "${BOXOFFICE_DEAD_LETTER_TOPIC:-booking-dlq}" \
      --metrics-host "$BX_HOST" --metrics-port "$BOXOFFICE_DISPATCHER_PORT"
  )
  bx_wait dispatcher 60 _dispatcher_up
  bx_prometheus_target dispatcher "$BX_HOST:$BOXOFFICE_DISPATCHER_PORT" function=kafkasource-dispatcher
}

# Graceful: SIGTERM commits the handled offsets before exit.
dispatcher_stop() {
  bx_stop_pid dispatcher 20
  bx_prometheus_target_rm dispatcher
}

dispatcher_status_line() {
  if _dispatcher_wanted; then
    echo "$(dispatcher_url) (metrics, /healthz) -> consume_order:${BOXOFFICE_CONSUME_ORDER_PORT:-28084} topic=${BOXOFFICE_BOOKING_TOPIC:-booking} group=$BOXOFFICE_DISPATCHER_GROUP dlq=${BOXOFFICE_DEAD_LETTER_TOPIC:-booking-dlq} log=$(bx_log_file dispatcher)"
  else
    echo "not started: functions/consume_order/main.py has no handler yet"
  fi
}

dispatcher_env() {
  echo "export BOXOFFICE_DISPATCHER_URL=$(dispatcher_url)"
}

# `stack/boxo dlq list|replay ...`: inspect and replay dead letters (stack/kafkasource/dlq.py).
dispatcher_dlq() {
  (
    eval "$(bx_env)"
    exec "${BX_VENV:-$BX_ROOT/.venv}/bin/python" "$BX_ROOT/stack/kafkasource/dlq.py" "$@"
  )
}
