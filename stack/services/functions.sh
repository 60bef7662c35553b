# shellcheck shell=bash
# The functions, each its own server (python -m boxoffice.processes.server: functions-framework's app
# on granian, as the images run them), with one worker process per CPU so that one function
# can use the whole machine; each is registered with Prometheus through a file_sd target file.
# Ports: BOXOFFICE_<NAME>_PORT, defaults below. Size: BOXOFFICE_FUNCTION_WORKERS (default: the
# number of CPUs) x BOXOFFICE_FUNCTION_THREADS (8).
: "${BOXOFFICE_GET_EVENT_PORT:=28081}"
: "${BOXOFFICE_GET_CUSTOMER_PORT:=28082}"
: "${BOXOFFICE_CREATE_BOOKING_PORT:=28083}"
: "${BOXOFFICE_CONSUME_ORDER_PORT:=28084}"
: "${BOXOFFICE_HOUSEKEEPING_PORT:=28089}"
: "${BOXOFFICE_CHECK_IN_PORT:=28087}"
: "${BOXOFFICE_WAITING_ROOM_PORT:=28088}"
: "${BOXOFFICE_FUNCTION_THREADS:=8}"
: "${BOXOFFICE_FUNCTION_WORKERS:=$(nproc 2>/dev/null || echo 1)}"

BX_FUNCTIONS=(get_event get_customer create_booking consume_order check_in housekeeping waiting_room)

fn_port() { local v="BOXOFFICE_${1^^}_PORT"; echo "${!v}"; }
fn_present() { grep -qs '^def handler' "$BX_ROOT/functions/$1/main.py"; }
fn_healthy() { bx_http_ok "http://$BX_HOST:$(fn_port "$1")/healthz" 2>/dev/null; }
# fn_ready NAME: its readiness probe answers 2xx (database reachable; create_booking: Kafka
# configured too). `stack/boxo status` shows a live but unready function as unhealthy, and why.
fn_ready() { bx_http_ok "http://$BX_HOST:$(fn_port "$1")/readyz" 2>/dev/null; }
# fn_unready_reason NAME: the `detail` of its readiness problem+json (503), e.g. a missing setting.
fn_unready_reason() {
  curl -sS --max-time 3 "http://$BX_HOST:$(fn_port "$1")/readyz" 2>&1 |
    sed -n 's/.*"detail": *"\([^"]*\)".*/\1/p' | head -n1
}

functions_install() { :; }

# fn_start NAME: (re)start one function's server and wait until it is healthy. Also used by the
# fault suite (tests/faults), which runs functions against its own PostgreSQL and Kafka this way.
fn_start() {
  local fn=$1 port targets="$BX_STATE/prometheus/targets"
  mkdir -p "$targets"
  bx_stop_pid "$fn" 5
  port=$(fn_port "$fn")
  (
    eval "$(bx_env)"
    export PORT=$port THREADS=$BOXOFFICE_FUNCTION_THREADS WORKERS=$BOXOFFICE_FUNCTION_WORKERS
    # Ticket PDFs are rendered by the stack's own document worker process (documents.sh).
    [[ $fn != consume_order ]] ||
      export BOXOFFICE_TICKET_DOCUMENT_WORKER=${BOXOFFICE_TICKET_DOCUMENT_WORKER:-off}
    cd "$BX_ROOT/functions/$fn"
    bx_start_bg "$fn" "$BX_ROOT/.venv/bin/python" -m boxoffice.processes.server --source main.py \
      --host "$BX_HOST" --port "$port"
  )
  bx_wait "$fn" 60 fn_healthy "$fn"
  printf '[{"targets":["%s:%s"],"labels":{"function":"%s"}}]\n' "$BX_HOST" "$port" "$fn" \
    >"$targets/$fn.json"
}

functions_healthy() {
  local fn
  for fn in "${BX_FUNCTIONS[@]}"; do
    fn_present "$fn" || continue
    fn_healthy "$fn" && fn_ready "$fn" || return 1
  done
}

# Some function serves (live), so an unhealthy one is reported with functions_health_detail.
functions_running() {
  local fn
  for fn in "${BX_FUNCTIONS[@]}"; do
    fn_present "$fn" || continue
    fn_healthy "$fn" && return 0
  done
  return 1
}

functions_health_detail() {
  local fn out=()
  for fn in "${BX_FUNCTIONS[@]}"; do
    fn_present "$fn" || continue
    if ! fn_healthy "$fn"; then
      out+=("$fn down")
    elif ! fn_ready "$fn"; then
      out+=("$fn not ready ($(fn_unready_reason "$fn"))")
    fi
  done
  local IFS=";"
  echo "${out[*]}"
}

functions_start() {
  local fn
  for fn in "${BX_FUNCTIONS[@]}"; do
    fn_present "$fn" || continue
    fn_healthy "$fn" && continue
    fn_start "$fn"
  done
}

functions_stop() {
  local fn
  for fn in "${BX_FUNCTIONS[@]}"; do
    bx_stop_pid "$fn" 10
    rm -f "$BX_STATE/prometheus/targets/$fn.json"
  done
}

functions_status_line() {
  local fn out=""
  for fn in "${BX_FUNCTIONS[@]}"; do
    fn_present "$fn" && out+="$fn:$(fn_port "$fn") "
  done
  echo "${out}logs $BX_LOGS/<function>.log"
}

functions_env() {
  local fn
  for fn in "${BX_FUNCTIONS[@]}"; do
    echo "export BOXOFFICE_${fn^^}_URL=http://$BX_HOST:$(fn_port "$fn")"
  done
}
