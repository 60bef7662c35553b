# shellcheck shell=bash
# Shared helpers for the local stack. Sourced by stack/boxo and stack/services/*.sh.
#
# Conventions (every service file follows them):
#   - downloads are cached under $BX_CACHE (one project cache directory, kept across runs);
#   - data lives under $BX_STATE/<service>, logs in $BX_STATE/logs/<service>.log,
#     pid files in $BX_STATE/run/<service>.pid;
#   - every server listens on 127.0.0.1 only, on a port that an environment variable overrides;
#   - each service file defines <svc>_install, <svc>_start, <svc>_healthy, <svc>_stop (all idempotent).

BX_ROOT="${BX_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
# Downloads are cached outside the work tree so that fresh clones (CI) reuse them.
BX_CACHE="${BOXOFFICE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/boxoffice}"
BX_STATE="${BOXOFFICE_STATE_DIR:-$BX_ROOT/.state}"
BX_LOGS="$BX_STATE/logs"
BX_RUN="$BX_STATE/run"
BX_HOST=127.0.0.1

# Ports (override any of them in the environment).
: "${BOXOFFICE_PG_PORT:=25432}"
: "${BOXOFFICE_KAFKA_PORT:=29092}"
: "${BOXOFFICE_KAFKA_CONTROLLER_PORT:=29093}"
: "${BOXOFFICE_KEYCLOAK_PORT:=28080}"
: "${BOXOFFICE_KEYCLOAK_MANAGEMENT_PORT:=28090}"
: "${BOXOFFICE_PROMETHEUS_PORT:=29090}"
export BOXOFFICE_PG_PORT BOXOFFICE_KAFKA_PORT BOXOFFICE_KAFKA_CONTROLLER_PORT \
  BOXOFFICE_KEYCLOAK_PORT BOXOFFICE_KEYCLOAK_MANAGEMENT_PORT BOXOFFICE_PROMETHEUS_PORT

mkdir -p "$BX_CACHE" "$BX_LOGS" "$BX_RUN"

bx_log() { printf '\033[1;34m[boxoffice]\033[0m %s\n' "$*" >&2; }
bx_ok() { printf '\033[1;32m[boxoffice]\033[0m %s\n' "$*" >&2; }
bx_die() { printf '\033[1;31m[boxoffice] error:\033[0m %s\n' "$*" >&2; exit 1; }

bx_log_file() { echo "$BX_LOGS/$1.log"; }
bx_pid_file() { echo "$BX_RUN/$1.pid"; }

# bx_pid_alive NAME: the recorded process of NAME is running.
bx_pid_alive() {
  local pf; pf=$(bx_pid_file "$1")
  [[ -s "$pf" ]] && kill -0 "$(cat "$pf")" 2>/dev/null
}

# bx_start_bg NAME CMD...: start CMD detached (own session), output to NAME's log, pid recorded.
bx_start_bg() {
  local name=$1; shift
  local log; log=$(bx_log_file "$name")
  : >>"$log"
  setsid nohup "$@" >>"$log" 2>&1 </dev/null &
  echo $! >"$(bx_pid_file "$name")"
}

# bx_stop_pid NAME [TIMEOUT]: TERM the recorded process group, KILL it after TIMEOUT seconds.
bx_stop_pid() {
  local name=$1 timeout=${2:-20} pf pid i
  pf=$(bx_pid_file "$name")
  [[ -s "$pf" ]] || return 0
  pid=$(cat "$pf")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < timeout * 5; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pf"
}

# bx_wait NAME TIMEOUT_SECONDS CHECK_CMD...: poll CHECK_CMD until it succeeds; on timeout fail
# with a message naming the service and its log file.
bx_wait() {
  local name=$1 timeout=$2; shift 2
  local start=$SECONDS
  while ! "$@" >/dev/null 2>&1; do
    if ((SECONDS - start >= timeout)); then
      bx_log "last lines of $(bx_log_file "$name"):"
      tail -n 20 "$(bx_log_file "$name")" >&2 || true
      bx_die "$name did not become healthy within ${timeout}s; see its log: $(bx_log_file "$name")"
    fi
    sleep 0.5
  done
}

# bx_port_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
bx_port_open() { (exec 3<>"/dev/tcp/$BX_HOST/$1") 2>/dev/null; }

# bx_http_ok URL: URL answers 2xx.
bx_http_ok() { curl -fsS --max-time 3 -o /dev/null "$1"; }

bx_apt_updated=""
# bx_apt_install PKG...: install the Debian packages that are missing (apt-get update once).
bx_apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  local sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
  if [[ -z "$bx_apt_updated" ]]; then
    bx_log "apt-get update"
    $sudo apt-get update -qq >/dev/null
    bx_apt_updated=1
  fi
  bx_log "installing Debian packages: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

BX_MAVEN_REPO="${BOXOFFICE_MAVEN_REPO:-https://repo.maven.apache.org/maven2}"
# bx_maven_fetch GROUP:ARTIFACT:VERSION[:CLASSIFIER]:TYPE -> prints the cached file path.
# Downloads once into $BX_CACHE/maven and verifies Maven Central's SHA-1.
bx_maven_fetch() {
  local coord=$1 g a v c t
  IFS=: read -r g a v c t <<<"$coord"
  if [[ -z "$t" ]]; then t=$c; c=""; fi
  local file="$a-$v${c:+-$c}.$t"
  local url="$BX_MAVEN_REPO/${g//.//}/$a/$v/$file"
  local dest="$BX_CACHE/maven/$file"
  mkdir -p "$BX_CACHE/maven"
  if [[ ! -s "$dest" ]]; then
    bx_log "downloading $file"
    curl -fsSL --retry 3 -o "$dest.part" "$url" || bx_die "download failed: $url"
    local want got
    want=$(curl -fsSL --retry 3 "$url.sha1" | cut -c1-40) || bx_die "checksum download failed: $url.sha1"
    got=$(sha1sum "$dest.part" | cut -c1-40)
    [[ "$want" == "$got" ]] || { rm -f "$dest.part"; bx_die "checksum mismatch for $file"; }
    mv "$dest.part" "$dest"
  fi
  echo "$dest"
}

# bx_mvn ARGS...: Maven with its local repository inside the project cache.
bx_mvn() { mvn -B -q -Dmaven.repo.local="$BX_CACHE/m2" "$@"; }

# bx_java_home MIN_MAJOR: a JDK home whose major version is at least MIN_MAJOR.
bx_java_home() {
  local min=$1 j v
  for j in ${JAVA_HOME:+"$JAVA_HOME"} /usr/lib/jvm/*; do
    [[ -n "$j" && -x "$j/bin/java" ]] || continue
    v=$("$j/bin/java" -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/{print $2}')
    v=${v%%.*}
    if [[ -n "$v" && "$v" -ge "$min" ]]; then echo "$j"; return 0; fi
  done
  return 1
}

# bx_prometheus_target NAME HOST:PORT [LABEL=VALUE...]: register a scrape target for the local
# Prometheus (file_sd: $BX_STATE/prometheus/targets/NAME.json, picked up within 5 s; written atomically).
# Example: bx_prometheus_target get_event 127.0.0.1:28081 function=get_event
bx_prometheus_target() {
  local name=$1 target=$2 dir="$BX_STATE/prometheus/targets" labels="" kv; shift 2
  for kv in "$@"; do labels+="${labels:+, }\"${kv%%=*}\": \"${kv#*=}\""; done
  mkdir -p "$dir"
  printf '[{"targets": ["%s"], "labels": {%s}}]\n' "$target" "$labels" >"$dir/.$name.json.tmp"
  mv "$dir/.$name.json.tmp" "$dir/$name.json"
}
# bx_prometheus_target_rm NAME: unregister it.
bx_prometheus_target_rm() { rm -f "$BX_STATE/prometheus/targets/$1.json"; }
