# shellcheck shell=bash
# Flyway (command line) from Maven Central, only the PostgreSQL pieces: stack/maven/flyway/pom.xml is
# resolved once with `mvn dependency:copy-dependencies` into $BX_CACHE/flyway/<pom hash>/lib and run
# with `java -cp`. Not a server: postgres_install calls flyway_install, postgres_migrate (in postgres.sh)
# and the wrapper stack/flyway call flyway_run.
BX_FLYWAY_POM="$BX_ROOT/stack/maven/flyway/pom.xml"
BX_FLYWAY_MAIN=org.flywaydb.commandline.Main

# The cache directory for the current pom (a pom change resolves a new set of jars).
flyway_lib_dir() {
  local h; h=$(sha256sum "$BX_FLYWAY_POM" | cut -c1-12)
  echo "$BX_CACHE/flyway/$h/lib"
}

flyway_install() {
  local lib; lib=$(flyway_lib_dir)
  [[ -f "$lib/.complete" ]] && return 0
  command -v mvn >/dev/null || bx_apt_install maven
  bx_java_home 17 >/dev/null || bx_apt_install openjdk-17-jre-headless
  bx_log "resolving Flyway from Maven Central ($BX_FLYWAY_POM)"
  rm -rf "$lib"; mkdir -p "$lib"
  (cd "$(dirname "$BX_FLYWAY_POM")" &&
    bx_mvn -Dstyle.color=never dependency:copy-dependencies -DoutputDirectory="$lib" -DincludeScope=runtime) ||
    bx_die "could not resolve Flyway (mvn dependency:copy-dependencies on $BX_FLYWAY_POM)"
  touch "$lib/.complete"
}

# flyway_run ARGS...: the Flyway command line with our classpath; arguments are passed through.
flyway_run() {
  flyway_install
  local jh; jh=$(bx_java_home 17) || bx_die "Flyway needs Java 17+"
  # No telemetry and no update check (it queries Maven Central on every run).
  REDGATE_DISABLE_TELEMETRY=true FLYWAY_TELEMETRY_OPT_OUT=true \
    "$jh/bin/java" -Djava.awt.headless=true -cp "$(flyway_lib_dir)/*" "$BX_FLYWAY_MAIN" \
    -skipCheckForUpdate "$@"
}
