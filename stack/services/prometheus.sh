# shellcheck shell=bash
# Prometheus from Debian packages, our own process (not the Debian service): config rendered from
# stack/prometheus/prometheus.yml.tmpl into $BX_STATE/prometheus/prometheus.yml, TSDB in
# $BX_STATE/prometheus/data, on 127.0.0.1:$BOXOFFICE_PROMETHEUS_PORT. Scrapes itself and every function
# process listed in $BX_STATE/prometheus/targets/*.json (file_sd, re-read every 5 s).
: "${BOXOFFICE_PROMETHEUS_SCRAPE_INTERVAL:=2s}"
BX_PROM_BIN="${BOXOFFICE_PROMETHEUS_BIN:-/usr/bin/prometheus}"
BX_PROMTOOL_BIN="${BOXOFFICE_PROMTOOL_BIN:-/usr/bin/promtool}"
BX_PROM_DIR="$BX_STATE/prometheus"
BX_PROM_CONFIG="$BX_PROM_DIR/prometheus.yml"
BX_PROM_TARGETS_DIR="$BX_PROM_DIR/targets"

prometheus_install() {
  [[ -x "$BX_PROM_BIN" && -x "$BX_PROMTOOL_BIN" ]] || bx_apt_install prometheus
  [[ -x "$BX_PROM_BIN" ]] || bx_die "prometheus binary not found at $BX_PROM_BIN"
}

prometheus_url() { echo "http://$BX_HOST:$BOXOFFICE_PROMETHEUS_PORT"; }

prometheus_healthy() { bx_http_ok "$(prometheus_url)/-/ready"; }

# _prom_render FILE: the config for the current environment, checked with promtool.
_prom_render() {
  local out=$1 interval=$BOXOFFICE_PROMETHEUS_SCRAPE_INTERVAL
  mkdir -p "$BX_PROM_DIR/data" "$BX_PROM_TARGETS_DIR"
  # The scrape timeout may not exceed the interval; Prometheus' default is 10s.
  local timeout=$interval
  [[ "$interval" =~ ^([0-9]+)s$ && ${BASH_REMATCH[1]} -gt 10 ]] && timeout=10s
  sed -e "s|@SCRAPE_INTERVAL@|$interval|g" -e "s|@SCRAPE_TIMEOUT@|$timeout|g" \
    -e "s|@LISTEN@|$BX_HOST:$BOXOFFICE_PROMETHEUS_PORT|g" -e "s|@TARGETS_DIR@|$BX_PROM_TARGETS_DIR|g" \
    -e "s|@RULES_DIR@|$BX_ROOT/helm/boxoffice/rules|g" \
    "$BX_ROOT/stack/prometheus/prometheus.yml.tmpl" >"$out"
  "$BX_PROMTOOL_BIN" check config "$out" >/dev/null 2>&1 || {
    "$BX_PROMTOOL_BIN" check config "$out" >&2 || true
    bx_die "invalid Prometheus config rendered into $out (from stack/prometheus/prometheus.yml.tmpl)"
  }
}

prometheus_start() {
  _prom_render "$BX_PROM_CONFIG"
  bx_start_bg prometheus "$BX_PROM_BIN" \
    --config.file="$BX_PROM_CONFIG" \
    --storage.tsdb.path="$BX_PROM_DIR/data" \
    --storage.tsdb.retention.time=7d \
    --web.listen-address="$BX_HOST:$BOXOFFICE_PROMETHEUS_PORT" \
    --web.enable-lifecycle \
    --log.level=info
  bx_wait prometheus 60 prometheus_healthy
}

# Already running with an outdated config (template or scrape interval changed): reload it in place.
prometheus_after_start() {
  local fresh="$BX_PROM_CONFIG.new"
  _prom_render "$fresh"
  if cmp -s "$fresh" "$BX_PROM_CONFIG"; then
    rm -f "$fresh"
    return 0
  fi
  mv "$fresh" "$BX_PROM_CONFIG"
  bx_log "prometheus: config changed, reloading"
  curl -fsS --max-time 10 -X POST "$(prometheus_url)/-/reload" >/dev/null ||
    bx_die "prometheus config reload failed; see its log: $(bx_log_file prometheus)"
}

prometheus_stop() { bx_stop_pid prometheus 30; }

prometheus_status_line() {
  echo "$BX_HOST:$BOXOFFICE_PROMETHEUS_PORT scrape=$BOXOFFICE_PROMETHEUS_SCRAPE_INTERVAL targets=$BX_PROM_TARGETS_DIR log=$(bx_log_file prometheus)"
}

prometheus_env() {
  echo "export BOXOFFICE_PROMETHEUS_URL=$(prometheus_url)"
}
