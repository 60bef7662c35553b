# shellcheck shell=bash
# The functions, each its own process under functions-framework (gunicorn, 1 worker, threads),
# as Knative would run them; each is registered with Prometheus through a file_sd target file.
# Ports: BOXOFFICE_<NAME>_PORT, defaults below.
: "${BOXOFFICE_GET_EVENT_PORT:=28081}"
: "${BOXOFFICE_GET_CUSTOMER_PORT:=28082}"
: "${BOXOFFICE_CREATE_BOOKING_PORT:=28083}"
: "${BOXOFFICE_CONSUME_ORDER_PORT:=28084}"
: "${BOXOFFICE_CHECK_IN_PORT:=28087}"
: "${BOXOFFICE_FUNCTION_THREADS:=8}"

BX_FUNCTIONS=(get_event get_customer create_booking consume_order check_in)

fn_port() { local v="BOXOFFICE_${1^^}_PORT"; echo "${!v}"; }
fn_present() { grep -qs '^def handler' "$BX_ROOT/functions/$1/main.py"; }
fn_healthy() { bx_http_ok "http://$BX_HOST:$(fn_port "$1")/healthz" 2>/dev/null; }

functions_install() { :; }

functions_healthy() {
  local fn
  for fn in "${BX_FUNCTIONS[@]}"; do
    fn_present "$fn" || continue
    fn_healthy "$fn" || return 1
  done
}

functions_start() {
  local fn port targets="$BX_STATE/prometheus/targets"
  mkdir -p "$targets"
  for fn in "${BX_FUNCTIONS[@]}"; do
    fn_present "$fn" || continue
    fn_healthy "$fn" && continue
    bx_stop_pid "$fn" 5
    port=$(fn_port "$fn")
    (
      eval "$(bx_env)"
      export PORT=$port THREADS=$BOXOFFICE_FUNCTION_THREADS WORKERS=1
      cd "$BX_ROOT/functions/$fn"
      bx_start_bg "$fn" "$BX_ROOT/.venv/bin/functions-framework" --target handler \
        --source main.py --host "$BX_HOST" --port "$port"
    )
    bx_wait "$fn" 60 fn_healthy "$fn"
    printf '[{"targets":["%s:%s"],"labels":{"function":"%s"}}]\n' "$BX_HOST" "$port" "$fn" \
      >"$targets/$fn.json"
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
