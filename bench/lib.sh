# Shared by the side-by-side scripts in bench/ (sourced, not run): tools, the privgate
# binary, certificates, starting and stopping the proxies, reading a process's CPU time,
# context switches and memory from /proc, and the round bookkeeping that summarise.py turns
# into markdown tables.
#
# Every script runs on loopback only, with bounded durations and counts; each writes its raw
# outputs under bench/out/<script>/ and prints its tables on stdout.
# shellcheck shell=bash

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1

# Settings shared by every script (override with environment variables).
QUICK=${QUICK:-0}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
WORKERS=${WORKERS:-2}
CLK_TCK=$(getconf CLK_TCK)

# need COMMAND PACKAGE: installs a missing tool from the Debian archive.
need() {
  command -v "$1" >/dev/null 2>&1 && return
  echo "installing $2" >&2
  apt-get install -y -qq "$2" >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }
}

# privgate_binary: the binary under test. BIN=path takes a build as it is; without it the
# release build is made (the FHE feature is not on the proxy path; leaving it out keeps the
# build short) in CARGO_TARGET_DIR, or target/.
privgate_binary() {
  if [ -z "${BIN:-}" ]; then
    cargo build --release --locked -q --no-default-features >&2
    BIN=${CARGO_TARGET_DIR:-target}/release/privgate
  fi
  BIN=$(realpath "$BIN")
  [ -x "$BIN" ] || { echo "BIN=$BIN is not an executable" >&2; exit 1; }
  if [ -n "${BIN_BEFORE:-}" ]; then
    BIN_BEFORE=$(realpath "$BIN_BEFORE")
    [ -x "$BIN_BEFORE" ] || { echo "BIN_BEFORE=$BIN_BEFORE is not an executable" >&2; exit 1; }
  fi
}

# out_dir NAME: a fresh directory for this script's raw outputs; sets OUT.
out_dir() {
  OUT=$(realpath -m "bench/out/$1")
  rm -rf "$OUT"
  mkdir -p "$OUT"
}

# Every process started here is stopped on exit, whatever way the script ends.
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

# start NAME COMMAND...: runs COMMAND in the background, output in $OUT/NAME.log; sets PID.
start() {
  local name=$1
  shift
  "$@" >"$OUT/$name.log" 2>&1 &
  PID=$!
  pids+=("$PID")
}

# stop PID: stops one process started here (its slot in pids stays; kill is harmless twice).
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# port DEFAULT: a default port moved by PORT_OFFSET, so that two runs on one machine (two
# people, or two checkouts) can keep apart.
port() { echo $(($1 + ${PORT_OFFSET:-0})); }

# ports_free PORT...: fails the run if something already listens on one of them (another
# run): its answers would be measured instead of ours.
ports_free() {
  local p
  for p in "$@"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "port $p is in use (another benchmark run?); set PORT_OFFSET, e.g. PORT_OFFSET=1000" >&2
      exit 1
    fi
  done
}

# wait_port PORT [SECONDS]: until something accepts on 127.0.0.1:PORT.
wait_port() {
  local port=$1 tries=$((${2:-30} * 10))
  for _ in $(seq "$tries"); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on port $port; logs in $OUT" >&2
  exit 1
}

# dev_certs: one CA and an ECDSA P-256 server certificate for localhost, used by every proxy;
# sets CA (the CA's certificate, for curl and the Python clients).
dev_certs() {
  "$BIN" certs dev --out "$OUT/certs" >/dev/null
  export CA=$OUT/certs/ca.pem
}

# privgate_serve NAME BINARY CONFIG: starts `privgate serve` with WORKERS runtime threads and
# the request log turned down to warnings (nginx logs nothing either); sets PID.
privgate_serve() {
  start "$1" env TOKIO_WORKER_THREADS="$WORKERS" RUST_LOG=warn "$2" serve --config "$3"
}

# stream_config FILE PORT ADMIN_PORT UPSTREAM_URL [LISTENER_LINES]: a gateway with no policy
# and no field rules: `/customers` streamed, `/buffered` (prefix stripped) buffered and
# checked as JSON. Paths are relative to FILE's directory, where the certificates are.
stream_config() {
  cat >"$1" <<TOML
[[listener]]
name = "bench"
address = "127.0.0.1:$2"
cert = "certs/server.pem"
key = "certs/server.key.pem"
${5:-}

[admin]
address = "127.0.0.1:$3"

[upstream.core]
url = "$4"

[[route]]
name = "customers"
path_prefix = "/customers"
upstream = "core"

[[route]]
name = "customers-buffered"
path_prefix = "/buffered"
upstream = "core"
strip_prefix = true
body = "buffered"
TOML
}

# nginx_config DIR PORT UPSTREAM_HOST_PORT [HTTP_LINES] [LOCATIONS] [MAIN_LINES]: nginx as
# the equivalent TLS reverse proxy: same certificate, TLS 1.3 and 1.2, h2 and HTTP/1.1,
# WORKERS worker processes, a keep-alive pool to the upstream, no access log, the same
# forwarded headers privgate adds, no limit on requests per client connection.
nginx_config() {
  local dir=$1
  mkdir -p "$dir/logs"
  cat >"$dir/nginx.conf" <<NGINX
worker_processes $WORKERS;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
${6:-}
events { worker_connections 4096; }
http {
  access_log off;
  # nginx closes a client connection after 1,000 requests by default (h2load then stops
  # using it, wrk reconnects); privgate has no such limit.
  keepalive_requests 1000000;
  ${4:-}
  # Idle upstream connections kept per worker: privgate's pool keeps up to 1,024 (its
  # default pool_max_idle); at 64, 400 HTTP/2 streams in flight made nginx open new
  # upstream connections until the upstream's backlog overflowed (connect timeouts, 5xx).
  upstream core { server $3; keepalive 1024; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:$2 ssl http2;  # Debian 12's nginx 1.22 predates 'http2 on'
    ssl_certificate $OUT/certs/server.pem;
    ssl_certificate_key $OUT/certs/server.key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    client_max_body_size 1m;
    ${5:-}
    location / {
      proxy_pass http://core;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$remote_addr;
      proxy_set_header X-Forwarded-Proto https;
      proxy_set_header X-Request-Id \$request_id;
      proxy_connect_timeout 2s;
      proxy_read_timeout 30s;
    }
  }
}
NGINX
}

# start_nginx NAME DIR: runs nginx in the foreground of a background job; sets PID (the
# master).
start_nginx() { start "$1" nginx -p "$2" -c "$2/nginx.conf" -g 'daemon off;'; }

# served_by PID: the processes that do a proxy's work: nginx's workers (the master only
# supervises), or the privgate process itself (all its threads).
served_by() {
  local children
  children=$(ps -o pid= --ppid "$1" | tr -s ' \n' ' ')
  if [ "$(cat "/proc/$1/comm")" = nginx ] && [ -n "${children// /}" ]; then
    echo "$children"
  else
    echo "$1"
  fi
}

# counters PID...: "cpu_ticks context_switches" summed over the processes and all their
# threads: utime+stime from /proc/PID/stat (the whole thread group), voluntary and
# nonvoluntary switches from each thread's status (threads that exited meanwhile are not
# counted: a lower bound for a process whose threads come and go).
counters() {
  local p ticks=0 switches=0 t s
  for p in "$@"; do
    t=$(sed 's/^.*) //' "/proc/$p/stat" | awk '{ print $12 + $13 }')
    # A thread may exit between the glob and the read: not an error.
    s=$({ cat /proc/"$p"/task/*/status 2>/dev/null || true; } |
      awk '/^(non)?voluntary_ctxt_switches/ { n += $2 } END { print n + 0 }')
    ticks=$((ticks + t))
    switches=$((switches + s))
  done
  echo "$ticks $switches"
}

# rss_kib PID...: resident memory summed over the processes (nginx: master and workers;
# pages they share are counted in each).
rss_kib() {
  local p total=0 r
  for p in "$@"; do
    r=$(awk '/^VmRSS/ { print $2 }' "/proc/$p/status")
    total=$((total + r))
  done
  echo "$total"
}

# per_request BEFORE AFTER REQUESTS: "cpu_us_per_request switches_per_request" from two
# `counters` lines.
per_request() {
  local b_t b_s a_t a_s
  read -r b_t b_s <<<"$1"
  read -r a_t a_s <<<"$2"
  awk -v t=$((a_t - b_t)) -v s=$((a_s - b_s)) -v n="$3" -v hz="$CLK_TCK" \
    'BEGIN { if (n > 0) printf "%.1f %.2f", t * 1e6 / hz / n, s / n; else print "nan nan" }'
}

# to_ms: wrk's latency ("812.00us", "1.20ms", "2.01s") in milliseconds.
to_ms() {
  awk '{ v=$1; if (v ~ /us$/) { sub(/us$/,"",v); v=v/1000 } else if (v ~ /ms$/) { sub(/ms$/,"",v) } else if (v ~ /s$/) { sub(/s$/,"",v); v=v*1000 }; printf "%.2f", v }'
}

# seconds DURATION: "15s" or "15" as whole seconds.
seconds() { echo "${1%s}"; }

# results FILE COLUMN...: starts a results file (tab-separated: table, row, round, then the
# measured columns) that summarise.py reads.
results() {
  RESULTS=$1
  shift
  local IFS=$'\t'
  echo "table	row	round	$*" >"$RESULTS"
}

# record TABLE ROW ROUND VALUE...: one measured line.
record() {
  local IFS=$'\t'
  echo "$*" >>"$RESULTS"
}

# measure_wrk TABLE ROW ROUND PID URL [WRK_ARGS]: warms up, then measures CONNECTIONS
# keep-alive connections for DURATION with wrk while reading PID's CPU time and context
# switches; records requests/s, p50, p99, CPU us and switches per request. A request that
# takes longer than WRK_TIMEOUT (wrk's default, 2 s) counts as a socket error.
measure_wrk() {
  local table=$1 row=$2 round=$3 pid=$4 url=$5
  shift 5
  local raw procs before after requests rps p50 p99 cost errors
  raw="$OUT/$(echo "$table-$row-$round" | tr -c 'A-Za-z0-9._-' _).wrk"
  read -ra procs <<<"$(served_by "$pid")"
  local load=(wrk -t"$THREADS" -c"$CONNECTIONS" --timeout "${WRK_TIMEOUT:-2s}")
  "${load[@]}" -d"$(seconds "$WARMUP")s" "$@" "$url" >/dev/null
  before=$(counters "${procs[@]}")
  # PERF_DATA=file PERF_ROW="<row>": a perf profile (cpu-clock samples; PERF_ARGS for call
  # chains, docs/benchmarks.md) of that row's first round; it costs that round some
  # throughput, so profile in a run of its own (ROUNDS=1).
  local perf_pid=""
  if [ -n "${PERF_DATA:-}" ] && [ "$row" = "${PERF_ROW:-}" ] && [ "$round" = 1 ]; then
    # shellcheck disable=SC2086 # PERF_ARGS is a list of options
    perf record ${PERF_ARGS:--e cpu-clock -F 999} -o "$PERF_DATA" -p "$pid" -- sleep "$(seconds "$DURATION")" \
      >/dev/null 2>&1 &
    perf_pid=$!
  fi
  "${load[@]}" -d"$(seconds "$DURATION")s" --latency "$@" "$url" >"$raw"
  [ -z "$perf_pid" ] || wait "$perf_pid" || true
  after=$(counters "${procs[@]}")
  requests=$(awk '/requests in/ { print $1 }' "$raw")
  rps=$(awk '/^Requests\/sec/ { print $2 }' "$raw")
  p50=$(awk '$1=="50%" { print $2 }' "$raw" | to_ms)
  p99=$(awk '$1=="99%" { print $2 }' "$raw" | to_ms)
  cost=$(per_request "$before" "$after" "$requests")
  errors=$(awk '/Non-2xx|Socket errors/' "$raw")
  failures "$table, $row, round $round" "$(awk '/Non-2xx/ { print $NF }' "$raw")" "$requests" "$raw"
  [ -z "$errors" ] || echo "warning: $table, $row, round $round: $errors" >&2
  # shellcheck disable=SC2086 # cost is two columns
  record "$table" "$row" "$round" "$rps" "$p50" "$p99" $cost
}

# failures WHAT FAILED REQUESTS RAW: a round with failed or non-2xx requests measured an error
# path, not the proxy: more than one in 10,000 stops the script; fewer (an upstream's rare
# 5xx under load) are reported and the round is kept.
failures() {
  local what=$1 failed=${2:-0} requests=$3 raw=$4
  [ "$failed" -gt 0 ] || return 0
  if [ $((failed * 10000)) -gt "$requests" ]; then
    echo "$what: $failed of $requests requests failed or were not 2xx (raw: $raw)" >&2
    exit 1
  fi
  echo "warning: $what: $failed of $requests requests failed or were not 2xx; round kept (raw: $raw)" >&2
}

# start_demo NAME BINARY DIR PORT ADMIN_PORT UPSTREAM_PORT: `privgate demo`, for what it sets
# up in DIR (certificates, keyring, policies, demo tokens, its config) and for its sample
# core-banking upstream; returns once its gateway listens. Sets PID.
start_demo() {
  # The demo's identity provider on the upstream's port + 1000, so that two demos (a build
  # and BIN_BEFORE) do not both ask for its default port.
  start "$1" env TOKIO_WORKER_THREADS="$WORKERS" RUST_LOG=warn "$2" demo --dir "$3" \
    --port "$4" --admin-port "$5" --upstream-port "$6" --idp-port "$(($6 + 1000))"
  local demo=$PID
  wait_port "$6" 60
  wait_port "$4" 120
  PID=$demo
}

# protected_config DEMO_DIR FILE PORT ADMIN_PORT UPSTREAM_URL REPLICA: the demo's own
# configuration (policies, field rules, keyring, consent store, token issuer, audit) served
# by a separate `privgate serve` on PORT in front of UPSTREAM_URL. Measured alone, that
# process does only the gateway's work (the demo process also runs the sample upstream).
# Its audit chain is its own (REPLICA); FILE must be in DEMO_DIR (paths are relative).
protected_config() {
  local demo_dir=$1 file=$2 port=$3 admin=$4 upstream=$5 replica=$6 demo_port demo_admin demo_upstream
  demo_port=$(awk -F'[:"]' '/^address = "127.0.0.1:/ { print $3; exit }' "$demo_dir/privgate.toml")
  demo_admin=$(awk '/^\[admin\]/ { a = 1 } a && /^address/ { split($0, p, /[:"]/); print p[3]; exit }' "$demo_dir/privgate.toml")
  demo_upstream=$(awk -F'"' '/^\[upstream.core_banking\]/ { u = 1; next } u && /^url/ { print $2; exit }' "$demo_dir/privgate.toml")
  sed -e "s#127.0.0.1:$demo_port\"#127.0.0.1:$port\"#" \
    -e "s#127.0.0.1:$demo_admin\"#127.0.0.1:$admin\"#" \
    -e "s#$demo_upstream#$upstream#" \
    -e "s#^replica = .*#replica = \"$replica\"#" \
    -e "s#checkpoints.jsonl#$replica-checkpoints.jsonl#" \
    "$demo_dir/privgate.toml" >"$file"
  if ! grep -q "127.0.0.1:$port\"" "$file" || ! grep -q "$upstream" "$file"; then
    echo "protected_config: $demo_dir/privgate.toml no longer has the expected form" >&2
    exit 1
  fi
}

# onboard URL CERTS_DIR ID: a customer onboarded through a demo-configured gateway (a teller,
# client-b), so that the upstream stores its PII protected.
onboard() {
  local status
  status=$(curl -sS -o /dev/null -w '%{http_code}' --cacert "$2/ca.pem" \
    --cert "$2/client-b.pem" --key "$2/client-b.key.pem" \
    -X POST "$1/customers" -H 'content-type: application/json' \
    -d '{"id":"'"$3"'","name":"Jane Example","email":"jane@example.com","phone":"+44 20 7946 0000","national_id":"900-12-3456","date_of_birth":"1987-06-05","address":{"street":"1 High Street","city":"Leeds","postcode":"LS1 1AA","country":"GB"},"iban":"GB82WEST12345698765432","card_number":"4000001234567899"}')
  [ "$status" = 201 ] || [ "$status" = 200 ] || { echo "onboarding $3 at $1 answered $status" >&2; exit 1; }
}

# machine: one line on where this ran (the ratios depend on it).
machine() {
  echo "$(nproc) cores ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), load average $(cut -d' ' -f1-3 /proc/loadavg), $(nginx -v 2>&1 | sed 's#.*/##;s#^#nginx #'), $("$BIN" --version 2>/dev/null || echo privgate)"
}
