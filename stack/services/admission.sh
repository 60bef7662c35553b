# shellcheck shell=bash
# The admission controller (python -m boxoffice.processes.admission): every BOXOFFICE_ADMISSION_TICK_SECONDS
# (1) it advances the serving counter of every open waiting room (docs/adr/0014-waiting-room.md).
# /healthz and /metrics on http://127.0.0.1:$BOXOFFICE_ADMISSION_PORT (28091), registered with
# Prometheus; log $BX_LOGS/admission.log. Also owns the dev admission key pair (Ed25519),
# generated once into $BX_STATE/secrets/admission-signing-key (private, for waiting_room) and
# admission-verify-key (public, for create_booking), mode 600, and exported as
# BOXOFFICE_ADMISSION_SIGNING_KEY and BOXOFFICE_ADMISSION_VERIFY_KEYS.
# Started only once functions/waiting_room/main.py defines `handler` (like functions.sh).
: "${BOXOFFICE_ADMISSION_PORT:=28091}"
BX_ADMISSION_KEY="$BX_STATE/secrets/admission-signing-key"
BX_ADMISSION_PUB="$BX_STATE/secrets/admission-verify-key"

admission_url() { echo "http://$BX_HOST:$BOXOFFICE_ADMISSION_PORT"; }
_admission_wanted() { grep -qs '^def handler' "$BX_ROOT/functions/waiting_room/main.py"; }

admission_install() {
  [[ -s "$BX_ADMISSION_KEY" && -s "$BX_ADMISSION_PUB" ]] && return 0
  mkdir -p "$BX_STATE/secrets" && chmod 700 "$BX_STATE/secrets"
  (
    umask 077
    "${BX_VENV:-$BX_ROOT/.venv}/bin/python" -c '
import sys
from boxoffice.adapters.admission_tokens import generate_signing_key
signing, verify = generate_signing_key()
open(sys.argv[1], "w").write(signing)
open(sys.argv[2], "w").write(verify)' "$BX_ADMISSION_KEY" "$BX_ADMISSION_PUB"
  ) || bx_die "could not generate the admission key pair"
}

admission_healthy() {
  _admission_wanted || return 0
  bx_http_ok "$(admission_url)/healthz" 2>/dev/null
}

admission_start() {
  _admission_wanted || return 0
  bx_stop_pid admission 10
  (
    eval "$(bx_env)"
    export PORT=$BOXOFFICE_ADMISSION_PORT
    bx_start_bg admission "${BX_VENV:-$BX_ROOT/.venv}/bin/python" -m boxoffice.processes.admission \
      --host "$BX_HOST" --port "$BOXOFFICE_ADMISSION_PORT"
  )
  bx_wait admission 30 bx_http_ok "$(admission_url)/healthz"
  bx_prometheus_target admission "$BX_HOST:$BOXOFFICE_ADMISSION_PORT" function=admission
}

admission_stop() {
  bx_stop_pid admission 10
  bx_prometheus_target_rm admission
}

admission_status_line() {
  if _admission_wanted; then
    echo "$(admission_url) (metrics, /healthz) ticks every ${BOXOFFICE_ADMISSION_TICK_SECONDS:-1}s log=$(bx_log_file admission)"
  else
    echo "not started: functions/waiting_room/main.py has no handler yet"
  fi
}

admission_env() {
  echo "export BOXOFFICE_ADMISSION_URL=$(admission_url)"
  [[ -s "$BX_ADMISSION_KEY" ]] && echo "export BOXOFFICE_ADMISSION_SIGNING_KEY=$(cat "$BX_ADMISSION_KEY")"
  [[ -s "$BX_ADMISSION_PUB" ]] && echo "export BOXOFFICE_ADMISSION_VERIFY_KEYS=$(cat "$BX_ADMISSION_PUB")"
  return 0
}
