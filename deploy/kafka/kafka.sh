#!/usr/bin/env bash
# A real single-node Apache Kafka 4 broker (KRaft, combined broker+controller)
# for kinfer's integration tests and local development, run straight from the
# Maven Central jars: no Docker, no tarball download.
#
#   deploy/kafka/kafka.sh fetch     resolve the jars (once per pom change)
#   deploy/kafka/kafka.sh start     fetch, format a fresh data dir, start, wait until ready
#   deploy/kafka/kafka.sh stop      SIGTERM, wait, then SIGKILL
#   deploy/kafka/kafka.sh restart   stop + start on the same data (fault tests)
#   deploy/kafka/kafka.sh status    exit 0 when running, 3 when not
#   deploy/kafka/kafka.sh logs [N]  last N lines of the broker log
#
# Environment (defaults in brackets):
#   KINFER_CACHE            cache root [<repo>/.cache]; jars in $KINFER_CACHE/kafka/libs
#   KAFKA_PORT              client listener on 127.0.0.1 [39092]
#   KAFKA_CONTROLLER_PORT   KRaft controller listener on 127.0.0.1 [39093]
#   KAFKA_DATA              log.dirs [$KINFER_CACHE/kafka/data-$KAFKA_PORT]
#   KAFKA_KEEP_DATA=1       start on the existing data instead of wiping it
#   KAFKA_HEAP_OPTS         JVM heap [-Xms256m -Xmx1g]
#   KAFKA_START_TIMEOUT     seconds to wait for readiness [90]
#   KAFKA_STOP_TIMEOUT      seconds to wait after SIGTERM before SIGKILL [30]
#   KAFKA_EXTRA_PROPS       extra server.properties lines, newline separated
#   KAFKA_STARTED_BY        recorded in the run dir; kafkatest sets "kafkatest"
#
# On a successful start the last line printed is KINFER_TEST_BROKERS=127.0.0.1:PORT.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
POM=$HERE/pom.xml
CACHE=${KINFER_CACHE:-$ROOT/.cache}
KDIR=$CACHE/kafka
LIBS=$KDIR/libs
MARKER=$LIBS/.kinfer-resolved
HOST=127.0.0.1
PORT=${KAFKA_PORT:-39092}
CPORT=${KAFKA_CONTROLLER_PORT:-39093}
DATA=${KAFKA_DATA:-$KDIR/data-$PORT}
# Per-port run dir: config, pid, log. kafkatest (Go) keeps its leases here too.
RUN=$KDIR/run/$PORT
PIDFILE=$RUN/kafka.pid
LOG=$RUN/kafka.log
CONF=$RUN/server.properties
# Who started the running broker (KAFKA_STARTED_BY, default "kafka.sh"):
# kafkatest only ever stops a broker that a test process started.
STARTED_BY=$RUN/started-by
LOG4J=$RUN/log4j2.properties
LOG4J_TOOLS=$RUN/log4j2-tools.properties
START_TIMEOUT=${KAFKA_START_TIMEOUT:-90}
STOP_TIMEOUT=${KAFKA_STOP_TIMEOUT:-30}
NODE_ID=1

log() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# --- fetch -------------------------------------------------------------------

pom_hash() { sha256sum "$POM" | cut -d' ' -f1; }

fetch() {
  local want
  want=$(pom_hash)
  if [[ -f $MARKER && $(cat "$MARKER") == "$want" ]]; then
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found: install Maven 3 (and Java 17+) to fetch the Kafka jars"
  mkdir -p "$KDIR"
  exec 8>"$KDIR/.fetch.lock"
  flock 8
  if [[ -f $MARKER && $(cat "$MARKER") == "$want" ]]; then
    exec 8>&-
    return 0 # another process resolved them while we waited
  fi
  # Resolve into a temp dir and swap, so an interrupted fetch never leaves a
  # half-filled libs dir behind a valid marker.
  local tmp=$KDIR/libs.tmp.$$
  rm -rf "$tmp"
  log "resolving Kafka jars from $POM into $LIBS"
  # Maven 3.8's jansi prints colour resets even in batch mode; strip them.
  if ! mvn -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$tmp" 2>&1 | sed $'s/\e\\[[0-9;]*m//g' >&2; then
    rm -rf "$tmp"
    die "mvn dependency:copy-dependencies failed"
  fi
  printf '%s\n' "$want" >"$tmp/.kinfer-resolved"
  rm -rf "$LIBS"
  mv "$tmp" "$LIBS"
  exec 8>&-
}

# --- process helpers -----------------------------------------------------------

# is_our_broker PID: PID is alive and is a kafka.Kafka JVM running our config.
is_our_broker() {
  local pid=$1 cmd
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ -r /proc/$pid/cmdline ]] || return 1
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmd == *kafka.Kafka* && $cmd == *"$CONF"* ]]
}

# running_pid prints the pid of our broker for this port, clearing a stale pid
# file (dead process, or the pid now belongs to something else).
running_pid() {
  local pid
  if [[ -f $PIDFILE ]]; then
    pid=$(cat "$PIDFILE" 2>/dev/null || true)
    if is_our_broker "$pid"; then
      echo "$pid"
      return 0
    fi
    rm -f "$PIDFILE"
  fi
  # No (valid) pid file: a broker of ours may still hold the port, e.g. after
  # the cache dir was cleaned by hand. Adopt it.
  for pid in $(pgrep -f 'kafka\.Kafka' 2>/dev/null || true); do
    if is_our_broker "$pid"; then
      echo "$pid" >"$PIDFILE"
      echo "$pid"
      return 0
    fi
  done
  return 1
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

port_owner() {
  ss -ltnpH "sport = :$1" 2>/dev/null | sed -n 's/.*users:((\(.*\)))/\1/p' | head -1
}

# --- readiness probe -------------------------------------------------------------

# A TCP accept is not readiness: Kafka binds its listener before it has caught
# up with the metadata log. The probe asks the broker itself (Admin
# describeCluster + listTopics) with the kafka-clients jar we already have.
write_probe() {
  cat >"$RUN/Probe.java" <<'JAVA'
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;

public class Probe {
  public static void main(String[] args) throws Exception {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(Long.parseLong(args[1]));
    Properties p = new Properties();
    p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
    p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "3000");
    p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "5000");
    Exception last = null;
    try (Admin admin = Admin.create(p)) {
      while (System.nanoTime() < deadline) {
        try {
          var c = admin.describeCluster();
          int nodes = c.nodes().get(5, TimeUnit.SECONDS).size();
          String id = c.clusterId().get(5, TimeUnit.SECONDS);
          admin.listTopics().names().get(5, TimeUnit.SECONDS);
          if (nodes > 0) {
            System.out.println("ready: cluster " + id + ", " + nodes + " broker(s)");
            return;
          }
        } catch (Exception e) {
          last = e;
        }
        Thread.sleep(500);
      }
    }
    System.out.println("not ready: " + last);
    System.exit(1);
  }
}
JAVA
}

probe() { # probe TIMEOUT_SECONDS
  write_probe
  java -XX:TieredStopAtLevel=1 -cp "$LIBS/*" -Dlog4j2.configurationFile="$LOG4J_TOOLS" "$RUN/Probe.java" "$HOST:$PORT" "$1"
}

# --- start / stop ------------------------------------------------------------------

write_config() {
  mkdir -p "$RUN"
  cat >"$CONF" <<EOF
# Written by deploy/kafka/kafka.sh; regenerated on every start.
process.roles=broker,controller
node.id=$NODE_ID
# Kafka 4 dynamic quorum (KIP-853): the data dir is formatted --standalone, so
# the controller is bootstrapped from here, not from controller.quorum.voters.
controller.quorum.bootstrap.servers=$HOST:$CPORT
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CPORT
advertised.listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CPORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$DATA
num.partitions=6
auto.create.topics.enable=true
delete.topic.enable=true
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=6
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
log.retention.hours=24
log.segment.bytes=67108864
EOF
  if [[ -n ${KAFKA_EXTRA_PROPS:-} ]]; then
    printf '%s\n' "$KAFKA_EXTRA_PROPS" >>"$CONF"
  fi
  # Kafka 4 logs through SLF4J -> log4j2. Without a config log4j2 falls back to
  # ERROR-only console output and the log is useless for diagnosing a failed
  # start. Everything goes to stdout, which start redirects into $LOG.
  cat >"$LOG4J" <<'EOF'
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = out
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.zk.name = org.apache.zookeeper
logger.zk.level = WARN
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
EOF
  # The probe and StorageTool print their whole config at INFO; keep them quiet.
  sed 's/^rootLogger.level = INFO/rootLogger.level = WARN/' "$LOG4J" >"$LOG4J_TOOLS"
}

# wipe_data removes the data dir, refusing anything that does not look like a
# Kafka log dir we made (KAFKA_DATA is user input; rm -rf on it must be safe).
wipe_data() {
  [[ -e $DATA ]] || return 0
  if [[ -f $DATA/meta.properties || -f $DATA/.kinfer-kafka-data || -z $(ls -A "$DATA") ]]; then
    rm -rf "$DATA"
  else
    die "refusing to wipe $DATA: it is not empty and has no meta.properties; set KAFKA_DATA to a dedicated dir"
  fi
}

format_storage() {
  local cid
  # A cluster id is a base64url-encoded 16-byte UUID without padding.
  # One that starts with '-' would be read as an option: draw again.
  cid=-
  while [[ $cid == -* ]]; do
    cid=$(head -c16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
  done
  mkdir -p "$DATA"
  touch "$DATA/.kinfer-kafka-data"
  java -XX:TieredStopAtLevel=1 -cp "$LIBS/*" -Dlog4j2.configurationFile="$LOG4J_TOOLS" kafka.tools.StorageTool \
    format --config "$CONF" --cluster-id "$cid" --standalone --ignore-formatted >>"$LOG" 2>&1 ||
    { tail -n 40 "$LOG" >&2; die "formatting $DATA failed"; }
}

print_brokers() { echo "KINFER_TEST_BROKERS=$HOST:$PORT"; }

do_start() {
  command -v java >/dev/null || die "java not found: Kafka 4 needs Java 17+"
  fetch
  mkdir -p "$RUN"
  local pid
  if pid=$(running_pid); then
    log "broker already running (pid $pid) on $HOST:$PORT; reusing it"
    probe "$START_TIMEOUT" >&2 || die "running broker pid $pid does not answer; run: $0 stop"
    print_brokers
    return 0
  fi
  for p in "$PORT" "$CPORT"; do
    if port_open "$p"; then
      die "port $p on $HOST is taken by another process ($(port_owner "$p")); set KAFKA_PORT/KAFKA_CONTROLLER_PORT"
    fi
  done

  write_config
  : >"$LOG"
  if [[ ${KAFKA_KEEP_DATA:-0} != 1 ]]; then
    wipe_data
  fi
  if [[ ! -f $DATA/meta.properties ]]; then
    format_storage
  fi

  local heap=${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}
  # setsid: the broker must outlive the shell (or go test) that started it and
  # not get the terminal's SIGINT. Output goes to the log so no caller blocks
  # on an inherited pipe.
  # shellcheck disable=SC2086
  setsid java $heap -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$LOG4J" -Dkafka.logs.dir="$RUN" \
    -cp "$LIBS/*" kafka.Kafka "$CONF" >>"$LOG" 2>&1 </dev/null 8>&- 9>&- &
  pid=$!
  echo "$pid" >"$PIDFILE"
  echo "${KAFKA_STARTED_BY:-kafka.sh}" >"$STARTED_BY"

  local deadline=$((SECONDS + START_TIMEOUT))
  until port_open "$PORT"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PIDFILE"
      tail -n 60 "$LOG" >&2
      die "broker exited during start-up (log: $LOG)"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 60 "$LOG" >&2
      die "broker did not open $HOST:$PORT within ${START_TIMEOUT}s (log: $LOG)"
    fi
    sleep 0.3
  done
  local left=$((deadline - SECONDS))
  ((left < 5)) && left=5
  if ! probe "$left" >&2; then
    tail -n 60 "$LOG" >&2
    die "broker on $HOST:$PORT did not answer metadata within ${START_TIMEOUT}s (pid $pid still running; log: $LOG)"
  fi
  log "broker ready (pid $pid, data $DATA, log $LOG)"
  print_brokers
}

do_stop() {
  local pid
  if ! pid=$(running_pid); then
    log "no broker running on port $PORT"
    return 0
  fi
  log "stopping broker pid $pid"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      log "broker pid $pid ignored SIGTERM for ${STOP_TIMEOUT}s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
      break
    fi
    sleep 0.2
  done
  rm -f "$PIDFILE" "$STARTED_BY"
}

do_restart() {
  local by
  by=$(cat "$STARTED_BY" 2>/dev/null || echo "${KAFKA_STARTED_BY:-kafka.sh}")
  do_stop
  KAFKA_KEEP_DATA=1 KAFKA_STARTED_BY=$by do_start
}

do_status() {
  local pid
  if pid=$(running_pid); then
    echo "running pid=$pid brokers=$HOST:$PORT data=$DATA log=$LOG"
    return 0
  fi
  echo "not running (port $PORT)"
  return 3
}

# Serialize start/stop/restart for one port: parallel `go test` packages may
# all try to start the broker at once.
with_lock() {
  mkdir -p "$RUN"
  exec 9>"$RUN/.lock"
  flock -w $((START_TIMEOUT + STOP_TIMEOUT + 600)) 9 || die "timed out waiting for $RUN/.lock"
  "$@"
}

cmd=${1:-}
case $cmd in
  fetch) fetch ;;
  start) with_lock do_start ;;
  stop) with_lock do_stop ;;
  restart) with_lock do_restart ;;
  status) do_status ;;
  logs) tail -n "${2:-100}" "$LOG" ;;
  *)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
