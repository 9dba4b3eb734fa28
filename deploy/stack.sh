#!/usr/bin/env bash
# Local stack without Docker: Kafka (KRaft, jars from Maven Central), a private
# PostgreSQL cluster, the schema/topics one-shots and the four services.
# All state lives in <repo>/.stack (git-ignored); everything listens on 127.0.0.1.
#
#   deploy/stack.sh install
#   deploy/stack.sh up     [--owner NAME] [COMPONENT|infra|services ...]
#   deploy/stack.sh down   [--owner NAME] [COMPONENT|infra|services ...]
#   deploy/stack.sh restart [--owner NAME] COMPONENT...
#   deploy/stack.sh status
#   deploy/stack.sh logs   [COMPONENT]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# CTE_STACK_DIR puts a second, independent stack's state elsewhere (the chaos tests restart
# their own broker and database); the Kafka jars stay shared so Maven runs once.
STACK="${CTE_STACK_DIR:-$ROOT/.stack}"
RUN_DIR="$STACK/run"
LOG_DIR="$STACK/logs"
KAFKA_DIR="$STACK/kafka"
KAFKA_LIBS="$ROOT/.stack/kafka/libs"
PG_DIR="$STACK/pg"
PG_DATA="$PG_DIR/data"
PG_SOCK="$PG_DIR/run"
VENV_BIN="$ROOT/.venv/bin"
POM="$ROOT/deploy/kafka/pom.xml"

COMPONENTS=(kafka postgres migrate topics ingest-api rule-engine rule-engine-2 netskope-sink ager fake-tenant)
INFRA=(kafka postgres migrate topics)
SERVICES=(ingest-api rule-engine rule-engine-2 netskope-sink ager fake-tenant)
# Long-running ones (migrate/topics are one-shots and have no process to track).
PROCESSES=(kafka postgres ingest-api rule-engine rule-engine-2 netskope-sink ager fake-tenant)

KAFKA_READY_TIMEOUT=90
HTTP_READY_TIMEOUT=60
STOP_TIMEOUT=20
# How long `up` keeps at bringing back Kafka or PostgreSQL after an unclean stop (a SIGKILL, a crash):
# waiting for the old processes to go, retrying the start, PostgreSQL's crash recovery included.
RECOVERY_TIMEOUT=${CTE_STACK_RECOVERY_TIMEOUT_SECONDS:-180}
# How long the backends of a killed postmaster may take to exit before they are sent SIGKILL: one running a
# long query only notices its postmaster is gone when the query ends.
EXIT_WAIT=${CTE_STACK_EXIT_WAIT_SECONDS:-20}

log() { printf '%s\n' "$*"; }
die() { printf 'stack.sh: %s\n' "$*" >&2; exit 1; }
is_root() { [[ $(id -u) -eq 0 ]]; }

usage() {
    cat <<EOF
usage: deploy/stack.sh install
       deploy/stack.sh up   [--owner NAME] [COMPONENT...]
       deploy/stack.sh down [--owner NAME] [COMPONENT...]
       deploy/stack.sh restart [--owner NAME] COMPONENT...
       deploy/stack.sh status
       deploy/stack.sh logs [COMPONENT]
components: ${COMPONENTS[*]}
groups:     infra (= ${INFRA[*]}), services (= ${SERVICES[*]})
EOF
}

# ---------------------------------------------------------------- environment

load_env() {
    # Values given on the command line / inherited environment beat the file, so
    # `CTE_KAFKA_PORT=19092 deploy/stack.sh up` works without editing .env.
    local -A keep=()
    local name file=""
    for name in $(compgen -e); do
        [[ $name == CTE_* ]] && keep[$name]=${!name}
    done
    if [[ -f $ROOT/.env ]]; then
        file="$ROOT/.env"
    elif [[ -f $ROOT/.env.example ]]; then
        file="$ROOT/.env.example"
    fi
    if [[ -n $file ]]; then
        set -a
        # shellcheck source=/dev/null
        . "$file"
        set +a
    fi
    for name in "${!keep[@]}"; do
        export "$name=${keep[$name]}"
    done

    # Defaults in case neither file exists or a line was removed from .env.
    export CTE_KAFKA_PORT="${CTE_KAFKA_PORT:-9092}"
    export CTE_KAFKA_CONTROLLER_PORT="${CTE_KAFKA_CONTROLLER_PORT:-9093}"
    # The port clients are told to reconnect to; another one when a proxy stands in front of the broker.
    export CTE_KAFKA_ADVERTISED_PORT="${CTE_KAFKA_ADVERTISED_PORT:-$CTE_KAFKA_PORT}"
    export CTE_PG_PORT="${CTE_PG_PORT:-5433}"
    export CTE_DB_NAME="${CTE_DB_NAME:-cte}"
    export CTE_API_PORT="${CTE_API_PORT:-8000}"
    export CTE_RULE_ENGINE_METRICS_PORT="${CTE_RULE_ENGINE_METRICS_PORT:-9101}"
    export CTE_SINK_METRICS_PORT="${CTE_SINK_METRICS_PORT:-9102}"
    export CTE_AGER_METRICS_PORT="${CTE_AGER_METRICS_PORT:-9103}"
    # Members of the rule-engine's consumer group: two where there are two cores or more (a member waits
    # on PostgreSQL and Kafka for about a third of its batch, and the second works meanwhile; see
    # docs/OPERATIONS.md), else one. The second serves its metrics on a port of its own, by default the
    # one after the ager's (9104 with the defaults above).
    local cores
    cores=$(nproc 2>/dev/null || echo 1)
    export CTE_RULE_ENGINES="${CTE_RULE_ENGINES:-$((cores >= 2 ? 2 : 1))}"
    export CTE_RULE_ENGINE_2_METRICS_PORT="${CTE_RULE_ENGINE_2_METRICS_PORT:-$((CTE_RULE_ENGINE_METRICS_PORT + 3))}"
    export CTE_FAKE_TENANT_PORT="${CTE_FAKE_TENANT_PORT:-8900}"
    export CTE_KAFKA_BOOTSTRAP="${CTE_KAFKA_BOOTSTRAP:-127.0.0.1:$CTE_KAFKA_PORT}"
    export CTE_DATABASE_URL="${CTE_DATABASE_URL:-postgresql://postgres@127.0.0.1:$CTE_PG_PORT/$CTE_DB_NAME}"

    # The name is interpolated into SQL (CREATE DATABASE), so keep it to a plain identifier.
    [[ $CTE_DB_NAME =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "CTE_DB_NAME must be a plain identifier, got '$CTE_DB_NAME'"
    [[ $CTE_RULE_ENGINES == [12] ]] || die "CTE_RULE_ENGINES must be 1 or 2, got '$CTE_RULE_ENGINES'"
}

# ---------------------------------------------------------------- helpers

pid_file() { printf '%s/%s.pid' "$RUN_DIR" "$1"; }
start_file() { printf '%s/%s.started' "$RUN_DIR" "$1"; }
owner_file() { printf '%s/%s.owner' "$RUN_DIR" "$1"; }
log_file() { printf '%s/%s.log' "$LOG_DIR" "$1"; }

# Kernel start time of a process (field 22 of /proc/PID/stat, in clock ticks since boot).
# pid + start time identifies a process for good: a stale pid file whose pid was
# reused by an unrelated process is detected, and a command that execs is not lost.
proc_starttime() {
    local stat fields
    # cat, not $(<...): a failed $(<file) aborts the whole script under set -e.
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    # Field 2 (comm) may contain spaces; everything after its closing ") " splits cleanly.
    read -r -a fields <<<"${stat##*) }"
    printf '%s' "${fields[19]}"
}

# A process that exists and is not a zombie (killed, waiting for its parent to reap it): kill -0
# succeeds on a zombie, which holds no port, file lock or shared memory any more.
proc_live() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    [[ ${stat##*) } != [ZX]* ]]
}

# Prints the pid of a running component, or fails.
running_pid() {
    local comp=$1 pid started
    if [[ $comp == postgres ]]; then
        # postmaster.pid is authoritative (PostgreSQL checks it the same way itself);
        # run/postgres.pid is only a copy for status.
        [[ -r $PG_DATA/postmaster.pid ]] || return 1
        pid=$(head -n 1 "$PG_DATA/postmaster.pid" 2>/dev/null) || return 1
        [[ $pid =~ ^[0-9]+$ ]] && proc_live "$pid" || return 1
        grep -qa postgres "/proc/$pid/cmdline" 2>/dev/null || return 1
    else
        pid=$(cat "$(pid_file "$comp")" 2>/dev/null) || return 1
        [[ $pid =~ ^[0-9]+$ ]] && proc_live "$pid" || return 1
        started=$(cat "$(start_file "$comp")" 2>/dev/null) || return 1
        [[ $(proc_starttime "$pid") == "$started" ]] || return 1
    fi
    printf '%s' "$pid"
}

port_in_use() {
    # bash's /dev/tcp: succeeds only if something accepts on the port.
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

show_log_tail() {
    local file=$1 n=${2:-50}
    if [[ -f $file ]]; then
        printf -- '---- last %s lines of %s ----\n' "$n" "${file#"$ROOT"/}" >&2
        tail -n "$n" "$file" >&2
        printf -- '----\n' >&2
    fi
}

set_owner() { printf '%s\n' "$2" >"$(owner_file "$1")"; }
clear_state() { rm -f "$(pid_file "$1")" "$(start_file "$1")" "$(owner_file "$1")"; }

# start_process NAME PORT CMD [ARGS...]
# Starts CMD detached in its own session (so stop_process can signal the whole
# process group), output appended to .stack/logs/NAME.log, pid in .stack/run/NAME.pid.
start_process() {
    local name=$1 port=$2
    shift 2
    local pidf log pid i
    pidf=$(pid_file "$name")
    log=$(log_file "$name")
    if [[ -n $port ]] && port_in_use "$port"; then
        die "$name: port $port on 127.0.0.1 is already taken by another process"
    fi
    rm -f "$pidf" "$(start_file "$name")"
    printf '==== %s starting %s ====\n' "$(date -Is)" "$name" >>"$log"
    # The child writes its own pid and then execs, so the pid file holds the real
    # process even if setsid had to fork (it does when already a group leader).
    # 9>&-: the daemon must not inherit the stack.sh lock, or it would hold it forever.
    # shellcheck disable=SC2016  # $$ and $@ are for the child shell
    setsid nohup bash -c 'echo $$ >"$0"; exec "$@"' "$pidf" "$@" >>"$log" 2>&1 </dev/null 9>&- &
    for ((i = 0; i < 50; i++)); do
        [[ -s $pidf ]] && break
        sleep 0.1
    done
    [[ -s $pidf ]] || die "$name: did not start (no pid file)"
    pid=$(<"$pidf")
    proc_starttime "$pid" >"$(start_file "$name")" ||
        { show_log_tail "$log"; clear_state "$name"; die "$name: exited immediately"; }
    log "$name: started (pid $pid)"
}

# stop_process NAME: SIGTERM to the process group, up to STOP_TIMEOUT s, then SIGKILL.
stop_process() {
    local name=$1 pid pgid target i t0=$SECONDS
    if ! pid=$(running_pid "$name"); then
        clear_state "$name"
        log "$name: not running"
        return 0
    fi
    pgid=$(ps -o pgid= -p "$pid" | tr -d ' ')
    # Only signal the group if we own it (started via setsid, so pgid == pid).
    if [[ $pgid == "$pid" ]]; then target="-$pid"; else target="$pid"; fi
    kill -TERM -- "$target" 2>/dev/null || true
    for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
        kill -0 -- "$target" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 -- "$target" 2>/dev/null; then
        log "$name: still alive after ${STOP_TIMEOUT}s, sending SIGKILL"
        kill -KILL -- "$target" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            kill -0 -- "$target" 2>/dev/null || break
            sleep 0.1
        done
    fi
    clear_state "$name"
    log "$name: stopped ($((SECONDS - t0))s)"
}

# wait_http NAME URL: poll until URL answers 2xx; on failure show the log, stop NAME, exit 1.
wait_http() {
    local name=$1 url=$2 deadline
    deadline=$((SECONDS + HTTP_READY_TIMEOUT))
    while ((SECONDS < deadline)); do
        if curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; then
            log "$name: ready ($url)"
            return 0
        fi
        if ! running_pid "$name" >/dev/null; then
            show_log_tail "$(log_file "$name")"
            clear_state "$name"
            die "$name: exited during startup"
        fi
        sleep 0.5
    done
    show_log_tail "$(log_file "$name")"
    stop_process "$name" >/dev/null
    die "$name: not ready after ${HTTP_READY_TIMEOUT}s ($url)"
}

# ---------------------------------------------------------------- install

pg_bindir() {
    local candidates=() c
    shopt -s nullglob
    candidates=(/usr/lib/postgresql/*/bin/initdb)
    shopt -u nullglob
    ((${#candidates[@]})) || return 1
    c=$(printf '%s\n' "${candidates[@]}" | sort -V | tail -n 1)
    dirname "$c"
}

install_python() {
    local uv=(uv)
    if ! command -v uv >/dev/null 2>&1; then
        log "install: uv not found, installing it with pip"
        python3 -m pip install --quiet uv || die "could not install uv (try: pipx install uv)"
        # pip may put the script outside PATH (e.g. ~/.local/bin); the module always works.
        command -v uv >/dev/null 2>&1 || uv=(python3 -m uv)
    fi
    (cd "$ROOT" && "${uv[@]}" sync --all-packages --frozen --quiet)
}

install_postgres() {
    pg_bindir >/dev/null && return 0
    is_root || die "PostgreSQL server binaries not found; run as root or: sudo apt-get install -y postgresql"
    log "install: installing Debian's postgresql package"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql
    pg_bindir >/dev/null || die "postgresql installed but no /usr/lib/postgresql/*/bin/initdb found"
}

# Prometheus and promtool: the observability tests validate rules and dashboards with the real ones.
install_prometheus() {
    command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 && return 0
    is_root || die "prometheus/promtool not found; run as root or: sudo apt-get install -y prometheus"
    log "install: installing Debian's prometheus package"
    apt-get update -qq
    # No recommends: node-exporter, smartmontools and the like are not wanted here.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus
}

# Debian's Chromium: the browser tests drive it through Playwright (Playwright's own browser download
# is not used, so nothing is fetched at test time).
install_chromium() {
    command -v chromium >/dev/null 2>&1 && return 0
    is_root || die "chromium not found; run as root or: sudo apt-get install -y chromium"
    log "install: installing Debian's chromium package"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium
}

# The web console (console/): npm ci from the committed lockfile, then the Vite build the ingest-api serves
# at "/". Needs Node.js 20+ and npm; the services themselves never need node.
install_console() {
    local dir="$ROOT/console" stamp="$ROOT/console/node_modules/.lock-sha256" sum
    command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 ||
        die "Node.js (20 or later) and npm are needed to build the web console (Debian: apt-get install -y nodejs npm)"
    local major
    major=$(node -p 'process.versions.node.split(".")[0]')
    ((major >= 20)) || die "Node.js $(node -v) is too old to build the web console: 20 or later is needed"
    sum=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
    if [[ ! -f $stamp || $(<"$stamp") != "$sum" ]]; then
        log "install: installing the web console's npm packages"
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) >>"$(log_file install)" 2>&1 ||
            { show_log_tail "$(log_file install)"; die "install: npm ci failed in console/"; }
        printf '%s\n' "$sum" >"$stamp"
    fi
    (cd "$dir" && npm run --silent build) >>"$(log_file install)" 2>&1 ||
        { show_log_tail "$(log_file install)"; die "install: the web console's build failed"; }
}

install_kafka() {
    local libs="$KAFKA_LIBS" stamp="$KAFKA_LIBS.sha256" sum tmp
    sum=$(sha256sum "$POM" | cut -d' ' -f1)
    if [[ -f $stamp && $(<"$stamp") == "$sum" ]] && compgen -G "$libs/kafka_2.13-*.jar" >/dev/null; then
        return 0
    fi
    command -v mvn >/dev/null 2>&1 || die "Maven (mvn) is needed to fetch the Kafka jars"
    log "install: fetching Kafka jars with Maven (first time: ~1 min)"
    mkdir -p "$(dirname "$libs")"
    # Download into a scratch folder and swap, so a failed fetch never leaves a half set
    # and jars of an older version never linger next to the new ones.
    tmp="$libs.tmp"
    rm -rf "$tmp"
    # Output goes to a log: even with -q -B, Maven 3.8 prints stray ANSI resets.
    mvn -q -B org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
        -DoutputDirectory="$tmp" -DincludeScope=runtime -f "$POM" >>"$(log_file install)" 2>&1 ||
        { show_log_tail "$(log_file install)"; die "install: Maven could not fetch the Kafka jars"; }
    rm -rf "$libs"
    mv "$tmp" "$libs"
    printf '%s\n' "$sum" >"$stamp"
}

cmd_install() {
    mkdir -p "$RUN_DIR" "$LOG_DIR"
    install_python
    install_postgres
    install_prometheus
    install_chromium
    install_kafka
    install_console
}

# ---------------------------------------------------------------- kafka

# Small, shared 2-core machine: modest heap, G1 with few GC threads, capped direct memory. The heap
# starts at its maximum, as Kafka's own advice has it: growing from a smaller start, a fresh broker
# ran G1's concurrent cycles through the benchmark's first 100,000 indicators (bench/notes.md).
KAFKA_JAVA=(java -Xms512m -Xmx512m -XX:+UseG1GC -XX:ParallelGCThreads=2 -XX:ConcGCThreads=1
    -XX:MaxDirectMemorySize=256m -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true
    -Dlog4j2.configurationFile="$ROOT/deploy/kafka/log4j2.properties"
    -cp "$KAFKA_LIBS/*")

render_kafka_config() {
    local tpl out
    tpl=$(<"$ROOT/deploy/kafka/server.properties.in")
    out=${tpl//@KAFKA_PORT@/$CTE_KAFKA_PORT}
    out=${out//@KAFKA_ADVERTISED_PORT@/$CTE_KAFKA_ADVERTISED_PORT}
    out=${out//@CONTROLLER_PORT@/$CTE_KAFKA_CONTROLLER_PORT}
    out=${out//@DATA_DIR@/$KAFKA_DIR/data}
    if grep -v '^#' <<<"$out" | grep -qE '@[A-Z_]+@'; then
        die "unfilled placeholder in deploy/kafka/server.properties.in"
    fi
    printf '%s\n' "$out" >"$KAFKA_DIR/server.properties"
}

# kafka_ready PID SECONDS: a metadata round trip within SECONDS; fails at once if PID exits.
kafka_ready() {
    # A TCP connect succeeds before the broker has joined its own quorum; a metadata
    # round trip through the same client library the services use is the real test.
    local pid=$1 timeout=$2
    "$VENV_BIN/python" -c '
import asyncio, logging, sys, time
from aiokafka.admin import AIOKafkaAdminClient

logging.disable(logging.CRITICAL)  # connection refused while booting is expected
bootstrap, pid, deadline = sys.argv[1], int(sys.argv[2]), time.monotonic() + float(sys.argv[3])

async def attempt():
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        await admin.start()
        await admin.list_topics()
    finally:
        await admin.close()

def alive():
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(") ")[2][:1] not in ("Z", "X")  # a zombie is dead
    except OSError:
        return False

while time.monotonic() < deadline:
    if not alive():
        sys.exit("broker process exited")
    try:
        asyncio.run(asyncio.wait_for(attempt(), 10))
        sys.exit(0)
    except Exception:
        time.sleep(0.5)
sys.exit("timed out")
' "127.0.0.1:$CTE_KAFKA_PORT" "$pid" "$timeout"
}

# Seconds left before DEADLINE (at least 1).
remaining() { local r=$(($1 - SECONDS)); ((r > 0)) || r=1; printf '%s' "$r"; }

# wait_ports_free DEADLINE PORT...: until nothing accepts on any PORT, or DEADLINE; fails if one is still taken.
wait_ports_free() {
    local deadline=$1 port busy
    shift
    while :; do
        busy=""
        for port in "$@"; do port_in_use "$port" && busy=$port && break; done
        [[ -z $busy ]] && return 0
        ((SECONDS < deadline)) || { printf '%s' "$busy"; return 1; }
        sleep 0.2
    done
}

# kafka_clear_unclean_stop DEADLINE: after a SIGKILL or a crash the pid file is still there (a clean stop
# removes it) and the broker it names is gone (running_pid saw to that: a broker still exiting counts as
# running until it is dead). Waits for its ports to be released, so the new broker finds them free.
kafka_clear_unclean_stop() {
    local deadline=$1 old t0=$SECONDS busy
    old=$(cat "$(pid_file kafka)" 2>/dev/null) || return 0
    NOTES+=("found the pid file of broker $old, which is gone")
    if ! busy=$(wait_ports_free "$deadline" "$CTE_KAFKA_PORT" "$CTE_KAFKA_CONTROLLER_PORT"); then
        die "kafka: port $busy on 127.0.0.1 is still taken by another process after $((SECONDS - t0))s"
    fi
    ((SECONDS - t0 > 0)) && NOTES+=("waited $((SECONDS - t0))s for its ports to be released")
    clear_state kafka
}

# The notes of a recovery, on one line.
notes_line() { local msg; msg=$(printf '%s; ' "${NOTES[@]}"); printf '%s' "${msg%; }"; }

up_kafka() {
    local pid t0=$SECONDS deadline=$((SECONDS + RECOVERY_TIMEOUT)) attempt=0 log_size
    NOTES=()
    command -v java >/dev/null 2>&1 || die "kafka: java not found (Kafka 4 needs Java 17+)"
    while :; do
        if pid=$(running_pid kafka); then
            # Running is not enough: one just killed may still be exiting, one just started still booting.
            if kafka_ready "$pid" "$KAFKA_READY_TIMEOUT" 2>/dev/null; then
                break
            fi
            running_pid kafka >/dev/null ||
                { NOTES+=("broker pid $pid exited before it was ready"); continue; }
            show_log_tail "$(log_file kafka)"
            die "kafka: running (pid $pid) but not ready within ${KAFKA_READY_TIMEOUT}s"
        fi
        kafka_clear_unclean_stop "$deadline"
        ((attempt > 0 && SECONDS >= deadline)) &&
            { show_log_tail "$(log_file kafka)"; die "kafka: no broker ready within ${RECOVERY_TIMEOUT}s ($(notes_line))"; }
        attempt=$((attempt + 1))
        ((attempt > 1)) && sleep 1
        mkdir -p "$KAFKA_DIR/data"
        render_kafka_config
        if [[ ! -s $KAFKA_DIR/cluster.id ]] || [[ $(<"$KAFKA_DIR/cluster.id") == -* ]]; then
            # URL-safe base64 of 16 random bytes, no padding: what `kafka-storage random-uuid` prints. Like
            # Kafka's own, never one starting with "-", which the storage tool would read as an option.
            local cluster_id=-
            while [[ $cluster_id == -* ]]; do
                cluster_id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
            done
            printf '%s' "$cluster_id" >"$KAFKA_DIR/cluster.id"
        fi
        # Formatting costs a JVM start; only needed once per data dir.
        if [[ ! -f $KAFKA_DIR/data/meta.properties ]]; then
            "${KAFKA_JAVA[@]}" kafka.tools.StorageTool format --standalone -t "$(<"$KAFKA_DIR/cluster.id")" \
                -c "$KAFKA_DIR/server.properties" --ignore-formatted >>"$(log_file kafka)" 2>&1 ||
                { show_log_tail "$(log_file kafka)"; die "kafka: storage format failed"; }
        fi
        port_in_use "$CTE_KAFKA_CONTROLLER_PORT" &&
            die "kafka: controller port $CTE_KAFKA_CONTROLLER_PORT on 127.0.0.1 is already taken by another process"
        log_size=$(stat -c %s "$(log_file kafka)" 2>/dev/null || echo 0)
        start_process kafka "$CTE_KAFKA_PORT" "${KAFKA_JAVA[@]}" kafka.Kafka "$KAFKA_DIR/server.properties"
        set_owner kafka "$OWNER"
        pid=$(<"$(pid_file kafka)")
        if kafka_ready "$pid" "$KAFKA_READY_TIMEOUT"; then
            break
        fi
        if running_pid kafka >/dev/null; then
            show_log_tail "$(log_file kafka)"
            stop_process kafka >/dev/null
            die "kafka: not ready (waited up to ${KAFKA_READY_TIMEOUT}s for an admin client to list topics)"
        fi
        # It exited while starting (a lock or a port the old one still held): try again until the deadline.
        NOTES+=("start $attempt exited: $(first_error "$(log_file kafka)" "$log_size" 'ERROR|Exception')")
        clear_state kafka
    done
    if ((${#NOTES[@]})); then
        log "kafka: recovered after an unclean stop: $(notes_line); started on attempt $attempt"
    fi
    if ((attempt == 0)); then
        log "kafka: already running (pid $pid)"
    else
        log "kafka: ready on 127.0.0.1:$CTE_KAFKA_PORT ($((SECONDS - t0))s)"
    fi
}

# first_error FILE OFFSET PATTERN: the first line past OFFSET bytes of FILE matching PATTERN, shortened.
first_error() {
    tail -c +"$(($2 + 1))" "$1" 2>/dev/null | grep -m 1 -E "$3" | cut -c 1-200 || true
}

# ---------------------------------------------------------------- postgres

# Runs a PostgreSQL server binary as the postgres OS user when we are root
# (initdb and postgres refuse to run as root).
as_pg() {
    if is_root; then
        (cd "$PG_DIR" && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

pg_prepare_dirs() {
    mkdir -p "$PG_DIR" "$PG_SOCK" "$LOG_DIR"
    touch "$(log_file postgres)"
    is_root || return 0
    id postgres >/dev/null 2>&1 || die "the 'postgres' OS user does not exist (install Debian's postgresql package)"
    if [[ $(stat -c %U "$PG_DIR") != postgres || $(stat -c %U "$PG_SOCK") != postgres ]]; then
        chown -R postgres:postgres "$PG_DIR"
    fi
    chown postgres:postgres "$(log_file postgres)"
    # postgres must be able to traverse every folder above its data dir; fix the ones we own.
    local d=$PG_DIR
    while [[ $d != "$ROOT" && $d != / ]]; do
        d=$(dirname "$d")
        runuser -u postgres -- test -x "$d" || chmod o+x "$d"
    done
    runuser -u postgres -- test -x "$PG_DIR" ||
        die "user postgres cannot reach $PG_DIR (a folder above $ROOT is not traversable: chmod o+x it)"
}

# Memory the cluster may plan for, in MB: the machine's, or the cgroup's limit when lower.
pg_memory_mb() {
    local mem limit
    mem=$(awk '/^MemTotal:/ { print int($2 / 1024) }' /proc/meminfo)
    limit=$(cat /sys/fs/cgroup/memory.max 2>/dev/null || true)
    if [[ $limit =~ ^[0-9]+$ ]] && ((limit / 1048576 < mem)); then mem=$((limit / 1048576)); fi
    printf '%s' "$mem"
}

clamp() { local v=$1; ((v < $2)) && v=$2; ((v > $3)) && v=$3; printf '%s' "$v"; }

# Server settings for this workload, given on the command line at every start (postgresql.conf is never
# edited), so a cluster created before a change picks them up on its next start. Each has a CTE_PG_*
# override (.env.example). The read model is about 1.4 GB with its indexes at 1,000,000 indicators:
# shared buffers of a quarter of memory, at most 2 GB, hold it on a typical machine without starving the
# services. Checkpoints every 15 min or 4 GB of WAL instead of 5 min or 1 GB: fewer full-page images
# after each one, which lz4 compresses cheaply. Durability is untouched (fsync, synchronous_commit).
pg_tuning_opts() {
    local mem name value opts=""
    mem=$(pg_memory_mb)
    local -A settings=(
        [shared_buffers]="${CTE_PG_SHARED_BUFFERS:-$(clamp $((mem / 4)) 128 2048)MB}"
        [effective_cache_size]="${CTE_PG_EFFECTIVE_CACHE_SIZE:-$(clamp $((mem / 2)) 256 16384)MB}"
        [work_mem]="${CTE_PG_WORK_MEM:-$(clamp $((mem / 512)) 4 32)MB}"
        [maintenance_work_mem]="${CTE_PG_MAINTENANCE_WORK_MEM:-$(clamp $((mem / 32)) 64 512)MB}"
        [max_wal_size]="${CTE_PG_MAX_WAL_SIZE:-4GB}"
        [min_wal_size]="${CTE_PG_MIN_WAL_SIZE:-1GB}"
        [checkpoint_timeout]="${CTE_PG_CHECKPOINT_TIMEOUT:-15min}"
        [checkpoint_completion_target]=0.9
        [wal_compression]="${CTE_PG_WAL_COMPRESSION:-lz4}"
    )
    for name in "${!settings[@]}"; do
        value=${settings[$name]}
        # The options go through /bin/sh (pg_ctl -o): plain sizes, durations and words only.
        [[ $value =~ ^[A-Za-z0-9.]+$ ]] || die "postgres: $name must be a plain value, got '$value'"
        opts+=" -c $name=$value"
    done
    printf '%s' "$opts"
}

# Live processes of this cluster: the postmaster and every backend it forked work in its data directory.
pg_cluster_pids() {
    local d
    for d in /proc/[0-9]*; do
        [[ $d/cwd -ef $PG_DATA ]] && proc_live "${d#/proc/}" && printf '%s\n' "${d#/proc/}"
    done
    return 0
}

# pg_clear_unclean_stop DEADLINE: after a SIGKILL of the postmaster (or a crash) its postmaster.pid is
# still there and its backends may still be running: each exits only when it next notices the postmaster
# is gone. A start meanwhile is refused ("pre-existing shared memory block is still in use", or "lock file
# already exists" while the old pid is a zombie or was reused). Waits for every process of the old cluster
# to exit (SIGKILL to the ones left after EXIT_WAIT: their postmaster is dead, crash recovery follows
# either way), then removes the lock files, stale once nothing uses the data directory. Appends to NOTES.
pg_clear_unclean_stop() {
    local deadline=$1 old left t0=$SECONDS
    ((deadline > SECONDS + EXIT_WAIT)) && deadline=$((SECONDS + EXIT_WAIT))
    [[ -f $PG_DATA/postmaster.pid ]] || return 0
    old=$(head -n 1 "$PG_DATA/postmaster.pid" 2>/dev/null || true)
    NOTES+=("found the postmaster.pid of postmaster ${old:-?}, which is gone")
    left=$(pg_cluster_pids)
    if [[ -n $left ]]; then
        NOTES+=("$(wc -w <<<"$left") of its processes still running")
        while [[ -n $left ]] && ((SECONDS < deadline)); do
            sleep 0.2
            left=$(pg_cluster_pids)
        done
        if [[ -n $left ]]; then
            # shellcheck disable=SC2086  # one pid per word
            kill -KILL $left 2>/dev/null || true
            NOTES+=("sent SIGKILL to $(wc -w <<<"$left") left after $((SECONDS - t0))s")
            sleep 1
            [[ -z $(pg_cluster_pids) ]] || die "postgres: processes of the old cluster survive SIGKILL: $(pg_cluster_pids | xargs)"
        else
            NOTES+=("waited $((SECONDS - t0))s for them to exit")
        fi
    fi
    rm -f "$PG_DATA/postmaster.pid" "$PG_SOCK/.s.PGSQL.$CTE_PG_PORT.lock"
    NOTES+=("removed its stale lock files")
}

# pg_start DEADLINE: one start; its first FATAL line is appended to NOTES when it fails.
pg_start() {
    local deadline=$1 bin tuning opts log_size
    bin=$(pg_bindir)
    # Single quotes: pg_ctl hands -o to /bin/sh, so paths with spaces must be quoted there.
    tuning=$(pg_tuning_opts)
    opts="-p $CTE_PG_PORT -k '$PG_SOCK' -c listen_addresses=127.0.0.1$tuning"
    if [[ ${CTE_PG_STAT_STATEMENTS:-0} == 1 ]]; then
        # Per-statement execution times for profiling (bench/run.py reads them when present); off by
        # default: it costs a little on every statement.
        opts+=" -c shared_preload_libraries=pg_stat_statements"
    fi
    if [[ ${CTE_PG_FAST:-0} == 1 ]]; then
        # Throwaway test data only: a crash can lose or corrupt committed data.
        opts+=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        log "postgres: CTE_PG_FAST=1, durability is OFF"
    fi
    log_size=$(stat -c %s "$(log_file postgres)" 2>/dev/null || echo 0)
    # -t: crash recovery after an unclean stop replays the WAL written since the last checkpoint.
    # 9>&-: the postmaster must not inherit the stack.sh lock.
    if as_pg "$bin/pg_ctl" -D "$PG_DATA" -l "$(log_file postgres)" -w -t "$(remaining "$deadline")" start \
        -o "$opts" >/dev/null 9>&-; then
        return 0
    fi
    NOTES+=("a start was refused: $(first_error "$(log_file postgres)" "$log_size" 'FATAL|PANIC')")
    return 1
}

up_postgres() {
    local bin pid t0=$SECONDS deadline=$((SECONDS + RECOVERY_TIMEOUT)) attempt=0
    NOTES=()
    bin=$(pg_bindir) || die "PostgreSQL binaries not found; run: deploy/stack.sh install"
    while :; do
        if pid=$(running_pid postgres); then
            # One just killed may still look alive for a moment: it must also answer.
            if "$bin/pg_isready" -q -h 127.0.0.1 -p "$CTE_PG_PORT" -t 1; then break; fi
            if ((SECONDS >= deadline)); then
                show_log_tail "$(log_file postgres)"
                die "postgres: running (pid $pid) but not accepting connections"
            fi
            sleep 0.2
            continue
        fi
        ((attempt > 0 && SECONDS >= deadline)) &&
            { show_log_tail "$(log_file postgres)"; die "postgres: not started within ${RECOVERY_TIMEOUT}s ($(notes_line))"; }
        port_in_use "$CTE_PG_PORT" && die "postgres: port $CTE_PG_PORT on 127.0.0.1 is already taken by another process"
        pg_prepare_dirs
        if [[ ! -f $PG_DATA/PG_VERSION ]]; then
            as_pg "$bin/initdb" -D "$PG_DATA" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >>"$(log_file postgres)" 2>&1 ||
                { show_log_tail "$(log_file postgres)"; die "postgres: initdb failed"; }
        fi
        pg_clear_unclean_stop "$deadline"
        ((attempt > 0)) && sleep 0.5
        attempt=$((attempt + 1))
        # A refused start is retried (the loop sees the postmaster running, or clears what refused it).
        pg_start "$deadline" || true
    done
    if ((attempt)); then
        pid=$(running_pid postgres) || die "postgres: started but postmaster.pid is missing"
        set_owner postgres "$OWNER"
        if ((${#NOTES[@]})); then
            log "postgres: recovered after an unclean stop: $(notes_line); started on attempt $attempt (pid $pid)"
        else
            log "postgres: started (pid $pid)"
        fi
    else
        log "postgres: already running (pid $pid)"
    fi
    printf '%s\n' "$pid" >"$(pid_file postgres)"
    "$bin/pg_isready" -q -h 127.0.0.1 -p "$CTE_PG_PORT" -t 30 || die "postgres: not accepting connections"
    local psql=("$bin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$CTE_PG_PORT" -U postgres -d postgres)
    if [[ -z $("${psql[@]}" -tAc "SELECT 1 FROM pg_database WHERE datname = '$CTE_DB_NAME'") ]]; then
        "${psql[@]}" -c "CREATE DATABASE \"$CTE_DB_NAME\""
        log "postgres: created database $CTE_DB_NAME"
    fi
    log "postgres: ready on 127.0.0.1:$CTE_PG_PORT ($((SECONDS - t0))s)"
}

down_postgres() {
    local bin pid
    if ! pid=$(running_pid postgres); then
        clear_state postgres
        log "postgres: not running"
        return 0
    fi
    bin=$(pg_bindir) || die "PostgreSQL binaries not found"
    # fast = roll back open transactions and shut down cleanly (a checkpoint, no recovery on next start).
    if ! as_pg "$bin/pg_ctl" -D "$PG_DATA" -m fast -w -t "$STOP_TIMEOUT" stop >/dev/null; then
        log "postgres: fast shutdown timed out, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    clear_state postgres
    log "postgres: stopped"
}

# ---------------------------------------------------------------- one-shots

run_oneshot() {
    local name=$1 hint=$2
    shift 2
    [[ -x $1 ]] || die "$name: $1 not found (run: deploy/stack.sh install)"
    log "$name: running ${*#"$ROOT"/}"
    printf '==== %s %s ====\n' "$(date -Is)" "$name" >>"$(log_file "$name")"
    if ! "$@" 2>&1 | tee -a "$(log_file "$name")"; then
        die "$name: failed ($hint)"
    fi
    log "$name: done"
}

# ---------------------------------------------------------------- services

service_url() {
    case $1 in
        ingest-api) printf 'http://127.0.0.1:%s/healthz' "$CTE_API_PORT" ;;
        rule-engine) printf 'http://127.0.0.1:%s/metrics' "$CTE_RULE_ENGINE_METRICS_PORT" ;;
        rule-engine-2) printf 'http://127.0.0.1:%s/metrics' "$CTE_RULE_ENGINE_2_METRICS_PORT" ;;
        netskope-sink) printf 'http://127.0.0.1:%s/metrics' "$CTE_SINK_METRICS_PORT" ;;
        ager) printf 'http://127.0.0.1:%s/metrics' "$CTE_AGER_METRICS_PORT" ;;
        fake-tenant) printf 'http://127.0.0.1:%s/_sim/state' "$CTE_FAKE_TENANT_PORT" ;;
    esac
}

up_service() {
    local name=$1 cmd="$VENV_BIN/cte-$1" url port pid
    local run=("$cmd")
    if pid=$(running_pid "$name"); then
        log "$name: already running (pid $pid)"
        return 0
    fi
    if [[ $name == rule-engine-2 ]]; then
        ((CTE_RULE_ENGINES >= 2)) || { log "rule-engine-2: not started (CTE_RULE_ENGINES=$CTE_RULE_ENGINES)"; return 0; }
        # The rule-engine's second member: the same program and settings, its metrics on a port of its own.
        cmd="$VENV_BIN/cte-rule-engine"
        run=(env "CTE_RULE_ENGINE_METRICS_PORT=$CTE_RULE_ENGINE_2_METRICS_PORT" "$cmd")
    fi
    if [[ ! -x $cmd ]]; then
        # fake-tenant is optional (it may not be written yet); the real services are not.
        [[ $name == fake-tenant ]] && { log "fake-tenant: not installed, skipped"; return 0; }
        die "$name: $cmd not found (run: deploy/stack.sh install)"
    fi
    url=$(service_url "$name")
    port=${url#http://127.0.0.1:}
    port=${port%%/*}
    start_process "$name" "$port" "${run[@]}"
    set_owner "$name" "$OWNER"
    wait_http "$name" "$url"
}

print_summary() {
    local tenant="http://127.0.0.1:$CTE_FAKE_TENANT_PORT"
    running_pid fake-tenant >/dev/null || tenant+="  (not running)"
    cat <<EOF

Local stack:
  web console    http://127.0.0.1:$CTE_API_PORT/   (sign in as \$CTE_BOOTSTRAP_ADMIN_USERNAME, admin by default)
  API            http://127.0.0.1:$CTE_API_PORT/api
  API docs       http://127.0.0.1:$CTE_API_PORT/api/docs
  OpenAPI        http://127.0.0.1:$CTE_API_PORT/api/openapi.json
  metrics        API          http://127.0.0.1:$CTE_API_PORT/metrics
                 rule-engine  http://127.0.0.1:$CTE_RULE_ENGINE_METRICS_PORT/metrics$(
    running_pid rule-engine-2 >/dev/null && printf '  http://127.0.0.1:%s/metrics (second member)' "$CTE_RULE_ENGINE_2_METRICS_PORT")
                 sink         http://127.0.0.1:$CTE_SINK_METRICS_PORT/metrics
                 ager         http://127.0.0.1:$CTE_AGER_METRICS_PORT/metrics
  fake tenant    $tenant
  Kafka          $CTE_KAFKA_BOOTSTRAP
  PostgreSQL     $CTE_DATABASE_URL
  logs           deploy/stack.sh logs [COMPONENT]   (files in .stack/logs)
EOF
}

# ---------------------------------------------------------------- commands

# Expands groups, rejects unknown names and returns the selection in canonical
# (dependency) order, whatever order it was given in.
SELECTED=()
select_components() {
    local -A want=()
    local a c
    for a in "$@"; do
        case $a in
            infra) for c in "${INFRA[@]}"; do want[$c]=1; done ;;
            services) for c in "${SERVICES[@]}"; do want[$c]=1; done ;;
            *)
                [[ " ${COMPONENTS[*]} " == *" $a "* ]] || { usage >&2; die "unknown component '$a'"; }
                want[$a]=1
                ;;
        esac
    done
    # The rule-engine is all of its members: up, down and restart of it take the second one too.
    if [[ -n ${want[rule-engine]:-} ]]; then want[rule-engine-2]=1; fi
    SELECTED=()
    for c in "${COMPONENTS[@]}"; do
        if (($# == 0)) || [[ -n ${want[$c]:-} ]]; then SELECTED+=("$c"); fi
    done
}

OWNER=""
ARGS=()
parse_args() {
    OWNER=""
    ARGS=()
    while (($#)); do
        case $1 in
            --owner) (($# >= 2)) || die "--owner needs a name"; OWNER=$2; shift 2 ;;
            --owner=*) OWNER=${1#--owner=}; shift ;;
            -h | --help) usage; exit 0 ;;
            -*) usage >&2; die "unknown option '$1'" ;;
            *) ARGS+=("$1"); shift ;;
        esac
    done
}

# up/down take a lock so concurrent invocations (parallel test runs, two terminals)
# do not both start the same component.
take_lock() {
    mkdir -p "$RUN_DIR" "$LOG_DIR"
    exec 9>"$RUN_DIR/stack.lock"
    if ! flock -n 9; then
        log "waiting for another stack.sh up/down to finish..."
        flock -w 300 9 || die "another stack.sh up/down is still running (lock: .stack/run/stack.lock)"
    fi
}

cmd_up() {
    parse_args "$@"
    [[ -n $OWNER ]] || OWNER=up
    select_components "${ARGS[@]}"
    take_lock
    cmd_install
    local c any_service=0
    for c in "${SELECTED[@]}"; do
        case $c in
            kafka) up_kafka ;;
            postgres) up_postgres ;;
            migrate) run_oneshot migrate "is postgres up? deploy/stack.sh up postgres" "$VENV_BIN/cte-migrate" ;;
            topics) run_oneshot topics "is kafka up? deploy/stack.sh up kafka" "$VENV_BIN/cte-topics" create ;;
            *) up_service "$c"; any_service=1 ;;
        esac
    done
    ((any_service)) && print_summary
    return 0
}

cmd_down() {
    parse_args "$@"
    select_components "${ARGS[@]}"
    take_lock
    local i c owner
    for ((i = ${#SELECTED[@]} - 1; i >= 0; i--)); do
        c=${SELECTED[i]}
        [[ $c == migrate || $c == topics ]] && continue
        if [[ -n $OWNER ]]; then
            owner=$(cat "$(owner_file "$c")" 2>/dev/null || true)
            if [[ $owner != "$OWNER" ]]; then
                running_pid "$c" >/dev/null && log "$c: owned by '${owner:-?}', not '$OWNER'; left running"
                continue
            fi
        fi
        case $c in
            postgres) down_postgres ;;
            *) stop_process "$c" ;;
        esac
    done
}

# restart: down, then up, of the components named (a broker or database restart under load).
cmd_restart() {
    parse_args "$@"
    ((${#ARGS[@]})) || { usage >&2; die "restart needs at least one component"; }
    local owner=()
    if [[ -n $OWNER ]]; then owner=(--owner "$OWNER"); fi
    # Separate invocations: each takes and releases the lock itself.
    "$ROOT/deploy/stack.sh" down "${owner[@]}" "${ARGS[@]}"
    "$ROOT/deploy/stack.sh" up "${owner[@]}" "${ARGS[@]}"
}

component_address() {
    case $1 in
        kafka) printf '127.0.0.1:%s (controller :%s)' "$CTE_KAFKA_PORT" "$CTE_KAFKA_CONTROLLER_PORT" ;;
        postgres) printf '127.0.0.1:%s/%s' "$CTE_PG_PORT" "$CTE_DB_NAME" ;;
        *) service_url "$1" ;;
    esac
}

cmd_status() {
    local c pid state owner
    printf '%-14s %-5s %-8s %-8s %s\n' COMPONENT STATE PID OWNER ADDRESS
    for c in "${PROCESSES[@]}"; do
        if pid=$(running_pid "$c"); then
            state=up
            owner=$(cat "$(owner_file "$c")" 2>/dev/null || true)
        else
            state=down pid=- owner=""
        fi
        printf '%-14s %-5s %-8s %-8s %s\n' "$c" "$state" "$pid" "${owner:--}" "$(component_address "$c")"
    done
}

cmd_logs() {
    (($# <= 1)) || die "logs takes at most one component"
    local files=() f
    if (($# == 1)); then
        select_components "$1"
        (( ${#SELECTED[@]} == 1 )) || die "logs takes one component, not a group"
        f=$(log_file "$1")
        [[ -f $f ]] || die "no log yet for $1 ($f)"
        if [[ -t 1 ]]; then
            exec tail -n 100 -F "$f"
        fi
        files=("$f")
    else
        shopt -s nullglob
        files=("$LOG_DIR"/*.log)
        shopt -u nullglob
        ((${#files[@]})) || { log "no logs yet in ${LOG_DIR#"$ROOT"/}"; return 0; }
    fi
    for f in "${files[@]}"; do
        printf '==> %s <==\n' "${f#"$ROOT"/}"
        tail -n 200 "$f"
    done
}

main() {
    local cmd=${1:-}
    (($#)) && shift
    load_env
    case $cmd in
        install) cmd_install ;;
        up) cmd_up "$@" ;;
        down) cmd_down "$@" ;;
        restart) cmd_restart "$@" ;;
        status) cmd_status ;;
        logs) cmd_logs "$@" ;;
        -h | --help | help) usage ;;
        "") usage >&2; exit 2 ;;
        *) usage >&2; die "unknown command '$cmd'" ;;
    esac
}

main "$@"
