#!/bin/sh
# Container entrypoint of every Boxoffice function image (see Containerfile).
#
# Runs the function's server (python -m boxoffice.processes.server: functions-framework's app on
# granian, behind a bounded request queue with a deadline, docs/adr/0011-overload.md) for
# $FUNCTION on $PORT (Knative sets PORT; default 8080). The server's size comes from the
# container's CPU limit, not the host's CPU count (which sees every core of the node):
#   WORKERS  default 1 (one process per pod: the pod is the unit of scale on Knative)
#   THREADS  requests run at once: default THREADS_PER_CPU (4) x ceil(CPU limit), at least 2;
#            the CPU limit is read
#            from cgroup v2 cpu.max (or cgroup v1 cfs quota); no limit -> 1 CPU assumed.
# Explicit WORKERS / THREADS in the environment win. LISTEN_HOST: the address to listen on
# (default 0.0.0.0; the local stack's containers share the host's network and take 127.0.0.1).
set -eu

: "${FUNCTION:?FUNCTION is not set (get_event|get_customer|create_booking|consume_order|housekeeping|check_in|waiting_room|payment_webhook)}"
APP_DIR="${BOXOFFICE_APP_DIR:-/app}"
CPU_MAX_FILE="${BOXOFFICE_CGROUP_CPU_MAX:-/sys/fs/cgroup/cpu.max}"
CFS_DIR="${BOXOFFICE_CGROUP_V1_CPU_DIR:-/sys/fs/cgroup/cpu}"

cpu_limit() {
  # prints the CPU limit rounded up to whole CPUs, or nothing when unlimited/unknown
  if [ -r "$CPU_MAX_FILE" ]; then
    read -r quota period <"$CPU_MAX_FILE" || true
    if [ -n "${quota:-}" ] && [ "$quota" != "max" ] && [ "${period:-0}" -gt 0 ]; then
      echo $(((quota + period - 1) / period))
    fi
    return 0
  fi
  if [ -r "$CFS_DIR/cpu.cfs_quota_us" ] && [ -r "$CFS_DIR/cpu.cfs_period_us" ]; then
    quota=$(cat "$CFS_DIR/cpu.cfs_quota_us")
    period=$(cat "$CFS_DIR/cpu.cfs_period_us")
    if [ "$quota" -gt 0 ] && [ "$period" -gt 0 ]; then
      echo $(((quota + period - 1) / period))
    fi
  fi
}

cpus="$(cpu_limit)"
cpus="${cpus:-1}"
[ "$cpus" -ge 1 ] || cpus=1
threads=$((${THREADS_PER_CPU:-4} * cpus))
[ "$threads" -ge 2 ] || threads=2

export WORKERS="${WORKERS:-1}"
export THREADS="${THREADS:-$threads}"
export PORT="${PORT:-8080}"

if [ "${1:-}" = "--print-config" ]; then
  echo "FUNCTION=$FUNCTION PORT=$PORT WORKERS=$WORKERS THREADS=$THREADS CPUS=$cpus"
  exit 0
fi

exec python -m boxoffice.processes.server \
  --source "$APP_DIR/functions/$FUNCTION/main.py" --host "${LISTEN_HOST:-0.0.0.0}" --port "$PORT"
