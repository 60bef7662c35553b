# shellcheck shell=bash
# The functions, each its own server (python -m boxoffice.processes.server: functions-framework's app
# on granian, as the images run them), with one worker process per CPU so that one function
# can use the whole machine; each is registered with Prometheus through a file_sd target file.
# Ports: BOXOFFICE_<NAME>_PORT, defaults below. Size: BOXOFFICE_FUNCTION_WORKERS (default: the
# number of CPUs) x BOXOFFICE_FUNCTION_THREADS (8).
#
# BOXOFFICE_CONTAINERS=1 (`make up CONTAINERS=1`): each function runs instead as a container of
# its image (`make images`; stack/services/images.sh), named boxoffice-<function>-<port>, as the
# cluster runs it: host network on the same port, read-only root with a tmpfs /tmp, uid 10001, no
# capabilities, the entrypoint's own size (1 worker x 4 threads per CPU), and the same
# environment the processes get; a container whose image was rebuilt since is restarted. `make up`
# without it puts processes back (`stack/boxo up` with the
# variable unset keeps what runs); `down` stops both.
: "${BOXOFFICE_GET_EVENT_PORT:=28081}"
: "${BOXOFFICE_GET_CUSTOMER_PORT:=28082}"
: "${BOXOFFICE_CREATE_BOOKING_PORT:=28083}"
: "${BOXOFFICE_CONSUME_ORDER_PORT:=28084}"
: "${BOXOFFICE_HOUSEKEEPING_PORT:=28089}"
: "${BOXOFFICE_CHECK_IN_PORT:=28087}"
: "${BOXOFFICE_WAITING_ROOM_PORT:=28088}"
: "${BOXOFFICE_PAYMENT_WEBHOOK_PORT:=28092}"
: "${BOXOFFICE_FUNCTION_THREADS:=8}"
: "${BOXOFFICE_FUNCTION_WORKERS:=$(nproc 2>/dev/null || echo 1)}"

BX_FUNCTIONS=(get_event get_customer create_booking consume_order check_in housekeeping waiting_room
  payment_webhook)

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

fn_wanted_mode() { [[ "${BOXOFFICE_CONTAINERS:-0}" == 1 ]] && echo container || echo process; }
fn_mode() { cat "$BX_RUN/$1.mode" 2>/dev/null || echo process; }
# fn_mode_ok NAME: it runs as asked (BOXOFFICE_CONTAINERS set, even empty, as `make up` sets it);
# with the variable unset (`stack/boxo up`, `status`) whatever runs is right.
fn_mode_ok() { [[ ! -v BOXOFFICE_CONTAINERS || $(fn_mode "$1") == "$(fn_wanted_mode)" ]]; }
fn_container() { echo "${BX_CONTAINER_PREFIX}$1-$(fn_port "$1")"; }

# fn_image_changed NAME: its container runs an older build of its image (after `make images`).
fn_image_changed() {
  [[ $(fn_mode "$1") == container && $(fn_wanted_mode) == container ]] || return 1
  [[ "$(bx_docker image inspect -f '{{.Id}}' "$(image_name "$1")" 2>/dev/null)" != "$(cat "$BX_RUN/$1.image" 2>/dev/null)" ]]
}

# fn_container_stop NAME: remove its container, if an engine runs (never starts one for that).
fn_container_stop() {
  engine_healthy || return 0
  bx_docker stop -t "${2:-10}" "$(fn_container "$1")" >/dev/null 2>&1 || true
  bx_docker rm -f "$(fn_container "$1")" >/dev/null 2>&1 || true
}

# fn_run_container NAME PORT: start its image's container (the caller waits for health).
fn_run_container() {
  local fn=$1 port=$2 image envfile="$BX_RUN/$1.container.env"
  engine_ensure
  image=$(image_name "$fn")
  bx_docker image inspect "$image" >/dev/null 2>&1 || bx_die "no image $image: run make images first"
  fn_container_stop "$fn"
  (
    umask 077
    eval "$(bx_env)"
    env | grep '^BOXOFFICE_' | grep -v '^BOXOFFICE_CONTAINERS=' >"$envfile"
    [[ $fn != consume_order ]] ||
      echo "BOXOFFICE_TICKET_DOCUMENT_WORKER=${BOXOFFICE_TICKET_DOCUMENT_WORKER:-off}" >>"$envfile"
  )
  bx_docker image inspect -f '{{.Id}}' "$image" >"$BX_RUN/$fn.image"
  bx_docker run -d --name "$(fn_container "$fn")" --network host --read-only \
    --tmpfs /tmp:rw,nosuid,nodev,size=64m --user 10001:10001 --cap-drop ALL \
    --security-opt no-new-privileges --stop-timeout 30 --env-file "$envfile" \
    -e "PORT=$port" -e "LISTEN_HOST=$BX_HOST" "$image" >/dev/null ||
    bx_die "could not start the $fn container ($image)"
}

# fn_start NAME: (re)start one function's server and wait until it is healthy. Also used by the
# fault suite (tests/faults), which runs functions against its own PostgreSQL and Kafka this way.
fn_start() {
  local fn=$1 port targets="$BX_STATE/prometheus/targets"
  mkdir -p "$targets"
  bx_stop_pid "$fn" 5
  port=$(fn_port "$fn")
  if [[ $(fn_wanted_mode) == container ]]; then
    fn_run_container "$fn" "$port"
    echo container >"$BX_RUN/$fn.mode"
    bx_wait "$fn" 60 fn_healthy "$fn"
    printf '[{"targets":["%s:%s"],"labels":{"function":"%s"}}]\n' "$BX_HOST" "$port" "$fn" \
      >"$targets/$fn.json"
    return 0
  fi
  fn_container_stop "$fn"
  echo process >"$BX_RUN/$fn.mode"
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
    fn_healthy "$fn" && fn_ready "$fn" && fn_mode_ok "$fn" || return 1
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
    elif ! fn_mode_ok "$fn"; then
      out+=("$fn runs as a $(fn_mode "$fn"), wanted as a $(fn_wanted_mode)")
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
    fn_healthy "$fn" && fn_mode_ok "$fn" && ! fn_image_changed "$fn" && continue
    fn_start "$fn"
  done
}

functions_stop() {
  local fn
  for fn in "${BX_FUNCTIONS[@]}"; do
    bx_stop_pid "$fn" 10
    fn_container_stop "$fn" 30
    rm -f "$BX_STATE/prometheus/targets/$fn.json" "$BX_RUN/$fn.mode" "$BX_RUN/$fn.image"
  done
}

functions_status_line() {
  local fn out=""
  for fn in "${BX_FUNCTIONS[@]}"; do
    fn_present "$fn" && out+="$fn:$(fn_port "$fn") "
  done
  if [[ $(fn_mode get_event) == container ]]; then
    echo "${out}containers: logs with docker logs ${BX_CONTAINER_PREFIX}<function>-<port>"
  else
    echo "${out}logs $BX_LOGS/<function>.log"
  fi
}

functions_env() {
  local fn
  for fn in "${BX_FUNCTIONS[@]}"; do
    echo "export BOXOFFICE_${fn^^}_URL=http://$BX_HOST:$(fn_port "$fn")"
  done
}
