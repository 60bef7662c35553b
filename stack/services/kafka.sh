# shellcheck shell=bash
# Kafka: a single KRaft node (broker + controller in one JVM) on 127.0.0.1:$BOXOFFICE_KAFKA_PORT,
# controller on 127.0.0.1:$BOXOFFICE_KAFKA_CONTROLLER_PORT.
#   - jars: org.apache.kafka:kafka_2.13 and its runtime dependencies from Maven Central
#     (stack/maven/kafka/pom.xml, `mvn dependency:copy-dependencies`) into $BX_CACHE/kafka/<version>;
#   - data: $BX_STATE/kafka/data (formatted once; the cluster id is kept in $BX_STATE/kafka/cluster.id);
#   - config: stack/kafka/server.properties and stack/kafka/log4j2.xml rendered into $BX_STATE/kafka;
#   - log: $BX_STATE/logs/kafka.log (log4j2, size-capped rolling file).
# Version: the one Kafka version of every deployment (docker-compose.yml, helm/platform/kafka.yaml):
# 4.1.1, the newest that Strimzi 0.49.x runs (it supports 4.0.0-4.1.1); move them together
# (tests/deploy/test_versions.py checks). 4.x speaks only the newer protocol versions (KIP-896);
# kafka-python 3.0.12 negotiates them (tests/integration/test_kafka.py proves produce/consume/admin).
: "${BOXOFFICE_KAFKA_VERSION:=4.1.1}"
: "${BOXOFFICE_BOOKING_TOPIC:=booking}"
: "${BOXOFFICE_DEAD_LETTER_TOPIC:=booking-dlq}"
: "${BOXOFFICE_KAFKA_HEAP:=512m}"
BX_KAFKA_PARTITIONS=6

bx_kafka_home() { echo "$BX_CACHE/kafka/$BOXOFFICE_KAFKA_VERSION"; }
bx_kafka_python() { echo "${BX_VENV:-$BX_ROOT/.venv}/bin/python"; }
bx_kafka_bootstrap() { echo "$BX_HOST:$BOXOFFICE_KAFKA_PORT"; }
# JDK: the first 17+ (the default OpenJDK 17 here); BOXOFFICE_KAFKA_JAVA_HOME picks another one.
bx_kafka_java() {
  local jh
  if [[ -n "${BOXOFFICE_KAFKA_JAVA_HOME:-}" ]]; then echo "$BOXOFFICE_KAFKA_JAVA_HOME/bin/java"; return 0; fi
  jh=$(bx_java_home 17) || bx_die "kafka $BOXOFFICE_KAFKA_VERSION needs a JDK 17+ (none under /usr/lib/jvm)"
  echo "$jh/bin/java"
}

kafka_install() {
  local home pom stamp want
  home=$(bx_kafka_home)
  pom="$BX_ROOT/stack/maven/kafka/pom.xml"
  stamp="$home/.complete"
  want=$(printf '%s\n' "$BOXOFFICE_KAFKA_VERSION" | cat - "$pom" | sha256sum | cut -c1-64)
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then return 0; fi
  command -v mvn >/dev/null || bx_apt_install maven
  bx_kafka_java >/dev/null
  bx_log "fetching Kafka $BOXOFFICE_KAFKA_VERSION (kafka_2.13 + runtime deps) from Maven Central"
  rm -rf "$home/libs.part"
  JAVA_HOME=$(dirname "$(dirname "$(bx_kafka_java)")") bx_mvn -Dstyle.color=never -f "$pom" \
    -Dkafka.version="$BOXOFFICE_KAFKA_VERSION" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$home/libs.part" ||
    bx_die "kafka: maven could not fetch org.apache.kafka:kafka_2.13:$BOXOFFICE_KAFKA_VERSION"
  if [[ -d "$home/libs" ]] && diff -q <(ls "$home/libs") <(ls "$home/libs.part") >/dev/null; then
    rm -rf "$home/libs.part" # same jars: keep the directory a running broker may be reading
  else
    rm -rf "$home/libs"
    mv "$home/libs.part" "$home/libs"
  fi
  echo "$want" >"$stamp"
}

# Render the templates into the state dir (every start, so port overrides take effect).
bx_kafka_render() {
  local dir="$BX_STATE/kafka"
  mkdir -p "$dir/data"
  sed -e "s|@KAFKA_PORT@|$BOXOFFICE_KAFKA_PORT|g" \
    -e "s|@CONTROLLER_PORT@|$BOXOFFICE_KAFKA_CONTROLLER_PORT|g" \
    -e "s|@DATA_DIR@|$dir/data|g" \
    "$BX_ROOT/stack/kafka/server.properties" >"$dir/server.properties"
  sed -e "s|@LOG_FILE@|$(bx_log_file kafka)|g" "$BX_ROOT/stack/kafka/log4j2.xml" >"$dir/log4j2.xml"
}

# bx_kafka_jvm: sets BX_KAFKA_JVM to the java command line (JDK, small heap, log4j2 config, classpath).
bx_kafka_jvm() {
  BX_KAFKA_JVM=("$(bx_kafka_java)" -Xms128m -Xmx"$BOXOFFICE_KAFKA_HEAP" -XX:+UseG1GC
    -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true
    -Dlog4j2.configurationFile="$BX_STATE/kafka/log4j2.xml" -Dkafka.logs.dir="$BX_LOGS"
    -cp "$(bx_kafka_home)/libs/*")
}
bx_kafka_run() { bx_kafka_jvm; "${BX_KAFKA_JVM[@]}" "$@"; }

# Format the storage once; the cluster id stays in state so restarts reuse the same log dirs.
# $dir/formatted-by records the Kafka version that formatted it: a newer broker reads an older
# format, an older one refuses a newer metadata.version, so moving the pinned version down (or a
# data dir of unknown origin) reformats it. Local development data only: the topics are recreated
# empty by kafka_after_start (records not yet consumed are gone; bookings still in the outbox are not).
bx_kafka_format() {
  local dir="$BX_STATE/kafka" cid was=""
  [[ -f "$dir/formatted-by" ]] && was=$(cat "$dir/formatted-by")
  if [[ -f "$dir/data/meta.properties" ]]; then
    if [[ -n "$was" && "$(printf '%s\n%s\n' "$was" "$BOXOFFICE_KAFKA_VERSION" | sort -V | tail -n1)" == "$BOXOFFICE_KAFKA_VERSION" ]]; then
      return 0
    fi
    bx_log "kafka: $dir/data was formatted by Kafka ${was:-(unknown version)}, which $BOXOFFICE_KAFKA_VERSION may not read: reformatting it (local data)"
    rm -rf "$dir/data"
    mkdir -p "$dir/data"
  fi
  if [[ ! -s "$dir/cluster.id" ]]; then
    bx_kafka_run kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1 >"$dir/cluster.id.part"
    [[ -s "$dir/cluster.id.part" ]] || bx_die "kafka: could not generate a cluster id"
    mv "$dir/cluster.id.part" "$dir/cluster.id"
  fi
  cid=$(cat "$dir/cluster.id")
  bx_log "kafka: formatting $dir/data (cluster id $cid)"
  bx_kafka_run kafka.tools.StorageTool format --cluster-id "$cid" \
    --config "$dir/server.properties" --ignore-formatted >>"$(bx_log_file kafka)" 2>&1 ||
    bx_die "kafka: storage format failed; see its log: $(bx_log_file kafka)"
  echo "$BOXOFFICE_KAFKA_VERSION" >"$dir/formatted-by"
}

kafka_healthy() {
  bx_port_open "$BOXOFFICE_KAFKA_PORT" &&
    "$(bx_kafka_python)" "$BX_ROOT/stack/kafka/kafka_admin.py" ping "$(bx_kafka_bootstrap)"
}

kafka_start() {
  bx_pid_alive kafka && bx_stop_pid kafka 30 # a recorded broker that does not answer: restart it
  if bx_port_open "$BOXOFFICE_KAFKA_PORT" || bx_port_open "$BOXOFFICE_KAFKA_CONTROLLER_PORT"; then
    bx_die "kafka: port $BOXOFFICE_KAFKA_PORT or $BOXOFFICE_KAFKA_CONTROLLER_PORT is taken by another process (set BOXOFFICE_KAFKA_PORT / BOXOFFICE_KAFKA_CONTROLLER_PORT)"
  fi
  bx_kafka_render
  bx_kafka_format
  bx_kafka_jvm
  bx_start_bg kafka "${BX_KAFKA_JVM[@]}" kafka.Kafka "$BX_STATE/kafka/server.properties"
  bx_wait kafka 90 kafka_healthy
}

kafka_after_start() {
  "$(bx_kafka_python)" "$BX_ROOT/stack/kafka/kafka_admin.py" ensure-topics "$(bx_kafka_bootstrap)" \
    "$BOXOFFICE_BOOKING_TOPIC:$BX_KAFKA_PARTITIONS" "$BOXOFFICE_DEAD_LETTER_TOPIC:$BX_KAFKA_PARTITIONS" ||
    bx_die "kafka: could not create topics $BOXOFFICE_BOOKING_TOPIC / $BOXOFFICE_DEAD_LETTER_TOPIC; see $(bx_log_file kafka)"
}

kafka_stop() { bx_stop_pid kafka 30; }

kafka_status_line() {
  echo "127.0.0.1:$BOXOFFICE_KAFKA_PORT controller=:$BOXOFFICE_KAFKA_CONTROLLER_PORT version=$BOXOFFICE_KAFKA_VERSION topics=$BOXOFFICE_BOOKING_TOPIC,$BOXOFFICE_DEAD_LETTER_TOPIC log=$(bx_log_file kafka)"
}

kafka_env() {
  echo "export BOXOFFICE_KAFKA_BOOTSTRAP_SERVERS=$(bx_kafka_bootstrap)"
  echo "export BOXOFFICE_BOOKING_TOPIC=$BOXOFFICE_BOOKING_TOPIC"
  echo "export BOXOFFICE_DEAD_LETTER_TOPIC=$BOXOFFICE_DEAD_LETTER_TOPIC"
}
