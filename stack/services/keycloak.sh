# shellcheck shell=bash
# Keycloak: dev-mode server (`kc.sh start-dev`) on http://127.0.0.1:$BOXOFFICE_KEYCLOAK_PORT, health on
# the management port $BOXOFFICE_KEYCLOAK_MANAGEMENT_PORT, with the `boxoffice` realm imported from
# stack/keycloak/realm-boxoffice.json.
#   - dist: org.keycloak:keycloak-quarkus-dist:<version>:zip from Maven Central (SHA-1 checked, cached),
#     unpacked into $BX_STATE/keycloak/keycloak-<version> (its dev H2 database and build output live there);
#   - log: $BX_STATE/logs/keycloak.log;
#   - DEV ONLY: master-realm admin is admin/admin (KC_BOOTSTRAP_ADMIN_*), plain HTTP, H2 database.
# The realm file is imported when the database has no `boxoffice` realm; when the file changes, the next
# `up` wipes the dev database and re-imports (so edits to the JSON always take effect; manual changes
# made in the admin console are lost then). Keycloak resolves `${NAME:default}` placeholders in it from
# the environment at import: BOXOFFICE_STOREFRONT_URL, the front door's URL (the storefront client's exact
# redirect URIs and web origin), is set from the stack's port; a change of it re-imports too.
: "${BOXOFFICE_KEYCLOAK_VERSION:=26.7.3}"
: "${BOXOFFICE_KEYCLOAK_HEAP:=512m}"
BX_KC_REALM=boxoffice

bx_kc_home() { echo "$BX_STATE/keycloak/keycloak-$BOXOFFICE_KEYCLOAK_VERSION"; }
bx_kc_url() { echo "http://$BX_HOST:$BOXOFFICE_KEYCLOAK_PORT"; }
bx_kc_realm_file() { echo "$BX_ROOT/stack/keycloak/realm-boxoffice.json"; }
# The storefront's URL (the front door, stack/services/frontdoor.sh), as the realm import sees it.
bx_kc_storefront_url() { frontdoor_url; }
bx_kc_realm_sha() {
  { cat "$(bx_kc_realm_file)"; echo "BOXOFFICE_STOREFRONT_URL=$(bx_kc_storefront_url)"; } | sha256sum | cut -c1-64
}
# JDK: the first 21+ (Temurin 25 here; Keycloak 26.7 also runs on 17, checked, and falls back to it);
# BOXOFFICE_KEYCLOAK_JAVA_HOME picks another one. (bx_java_home prints "" when the java on PATH
# qualifies: kc.sh then uses that one.)
bx_kc_java_home() {
  if [[ -n "${BOXOFFICE_KEYCLOAK_JAVA_HOME:-}" ]]; then echo "$BOXOFFICE_KEYCLOAK_JAVA_HOME"; return 0; fi
  bx_java_home 21 || bx_java_home 17 ||
    bx_die "keycloak $BOXOFFICE_KEYCLOAK_VERSION needs a JDK 17+ (21+ preferred; none under /usr/lib/jvm)"
}

keycloak_install() {
  local zip home
  home=$(bx_kc_home)
  [[ -x "$home/bin/kc.sh" ]] && return 0
  zip=$(bx_maven_fetch "org.keycloak:keycloak-quarkus-dist:$BOXOFFICE_KEYCLOAK_VERSION:zip")
  bx_kc_java_home >/dev/null
  command -v unzip >/dev/null || bx_apt_install unzip
  bx_log "unpacking Keycloak $BOXOFFICE_KEYCLOAK_VERSION into $home"
  rm -rf "$home.part" && mkdir -p "$home.part"
  unzip -q "$zip" -d "$home.part" || bx_die "keycloak: cannot unpack $zip"
  mv "$home.part/keycloak-$BOXOFFICE_KEYCLOAK_VERSION" "$home"
  rmdir "$home.part"
}

# Ready = health/ready on the management port AND the realm's discovery document, AND the running
# server imported the current realm file.
keycloak_healthy() {
  bx_http_ok "http://$BX_HOST:$BOXOFFICE_KEYCLOAK_MANAGEMENT_PORT/health/ready" &&
    bx_http_ok "$(bx_kc_url)/realms/$BX_KC_REALM/.well-known/openid-configuration" &&
    [[ "$(cat "$BX_STATE/keycloak/realm.sha256" 2>/dev/null)" == "$(bx_kc_realm_sha)" ]]
}

keycloak_start() {
  local home sha
  home=$(bx_kc_home)
  bx_pid_alive keycloak && bx_stop_pid keycloak 30 # recorded but not healthy (or realm changed): restart
  if bx_port_open "$BOXOFFICE_KEYCLOAK_PORT" || bx_port_open "$BOXOFFICE_KEYCLOAK_MANAGEMENT_PORT"; then
    bx_die "keycloak: port $BOXOFFICE_KEYCLOAK_PORT or $BOXOFFICE_KEYCLOAK_MANAGEMENT_PORT is taken by another process (set BOXOFFICE_KEYCLOAK_PORT / BOXOFFICE_KEYCLOAK_MANAGEMENT_PORT)"
  fi
  sha=$(bx_kc_realm_sha)
  # The dev database holds nothing but the imported realm (+ the bootstrap admin): rebuild it when the
  # realm file changed or when the previous start never became healthy (e.g. a failed import).
  if [[ -d "$home/data/h2" ]]; then
    if [[ "$(cat "$BX_STATE/keycloak/realm.sha256" 2>/dev/null)" != "$sha" ]]; then
      bx_log "keycloak: $(bx_kc_realm_file) changed: resetting the dev database to re-import it"
      rm -rf "$home/data/h2"
    elif [[ -f "$BX_STATE/keycloak/start.pending" ]]; then
      bx_log "keycloak: the previous start did not become healthy: resetting the dev database"
      rm -rf "$home/data/h2"
    fi
  fi
  mkdir -p "$home/data/import"
  cp "$(bx_kc_realm_file)" "$home/data/import/realm-boxoffice.json"
  # DEV ONLY: admin/admin bootstraps the master realm's admin the first time the database is created.
  local jh; jh=$(bx_kc_java_home)
  JAVA_HOME=$jh \
    JAVA_OPTS_KC_HEAP="-Xms64m -Xmx$BOXOFFICE_KEYCLOAK_HEAP" \
    KC_BOOTSTRAP_ADMIN_USERNAME=admin KC_BOOTSTRAP_ADMIN_PASSWORD=admin \
    BOXOFFICE_STOREFRONT_URL="$(bx_kc_storefront_url)" \
    bx_start_bg keycloak "$home/bin/kc.sh" start-dev --import-realm \
    --http-host="$BX_HOST" --http-port="$BOXOFFICE_KEYCLOAK_PORT" \
    --hostname="$(bx_kc_url)" \
    --http-management-port="$BOXOFFICE_KEYCLOAK_MANAGEMENT_PORT" --health-enabled=true
  echo "$sha" >"$BX_STATE/keycloak/realm.sha256"
  : >"$BX_STATE/keycloak/start.pending"
  bx_wait keycloak "${BOXOFFICE_KEYCLOAK_START_TIMEOUT:-180}" keycloak_healthy
  rm -f "$BX_STATE/keycloak/start.pending"
}

keycloak_stop() { bx_stop_pid keycloak 30; }

keycloak_status_line() {
  echo "$(bx_kc_url) management=:$BOXOFFICE_KEYCLOAK_MANAGEMENT_PORT version=$BOXOFFICE_KEYCLOAK_VERSION realm=$BX_KC_REALM log=$(bx_log_file keycloak)"
}

keycloak_env() {
  echo "export BOXOFFICE_KEYCLOAK_URL=$(bx_kc_url)"
  echo "export BOXOFFICE_OIDC_ISSUER=$(bx_kc_url)/realms/$BX_KC_REALM"
  echo "export BOXOFFICE_OIDC_AUDIENCE=boxoffice-api"
  echo "export BOXOFFICE_OIDC_CLIENT_ID=boxoffice-web"
}
