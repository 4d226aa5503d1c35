#!/usr/bin/env bash
# make bench: dockgate side by side with the direct socket, dockerd's own TLS port, nginx, HAProxy
# and stunnel, all with the same ECDSA P-256 server certificate, client CA and CRL, in front of one
# private dockerd; plus a minimal upstream to measure the gates' own cost without dockerd.
#
# Writes bench/results.json and docs/BENCHMARKS.md and prints a summary. Root, Debian, 127.0.0.1 only.
# Knobs (environment): REPS (3) STREAM_REPS (2) RAW_REPS (5) SECS (2, per load run) STREAM_MB (1024) IDLE_N (1000)
#   CRL_SIZES ("10 100000 1000000") SKIP ("" or words of: ping handshake policy stream idle runi crl mini)
#   QUICK=1 (a fast smoke run: 1 rep, small sizes) BENCH_DIR (/tmp/dgb) KEEP=1 (leave all running)
#   BENCH_ONLY ("" or words of the SKIP list): run only these scenarios, e.g. BENCH_ONLY=handshake
#   (about two minutes); the report then goes to BENCH_DIR, not to bench/results.json and
#   docs/BENCHMARKS.md, so a partial run never replaces the full one. BENCH_ONLY=policy (a few
#   minutes): keep-alive /_ping at 16 connections and container create+remove pairs through the
#   gate without a policy, with a `ci` role (create bodies inspected) and with an `admin` role
#   (allow = ["all"]), interleaved; POLICY_REPS (5), CREATE_CONNS (4).
#   DOCKGATE_OLD=/path/to/an/older/dockgate adds that binary (no policy) to the policy rows, the
#   16-client handshake row and the idle rows, so
#   two builds are compared side by side in one run (e.g. before and after a refactor).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
W=${BENCH_DIR:-/tmp/dgb}
if [ "${QUICK:-0}" = 1 ]; then
    : "${REPS:=1}" "${SECS:=1}" "${STREAM_MB:=128}" "${IDLE_N:=100}" "${CRL_SIZES:=10 100000}"
fi
REPS=${REPS:-3}; SECS=${SECS:-2}; STREAM_MB=${STREAM_MB:-1024}; IDLE_N=${IDLE_N:-1000}
# The 1 GiB streams through the docker CLI are the slowest part (docker cp runs at dockerd's gzip
# speed, ~50 MB/s, behind every TCP contender): two reps keep `make bench` under 20 minutes.
STREAM_REPS=${STREAM_REPS:-$((REPS < 2 ? REPS : 2))}
# The raw streams (no CLI, no dockerd) take about a second each, and their spread on this VM is
# wide (±20 % between runs minutes apart): five reps for a steadier median.
RAW_REPS=${RAW_REPS:-$((REPS < 2 ? REPS : 5))}
# The policy rows compare gates that may differ by a few per cent: five interleaved reps.
POLICY_REPS=${POLICY_REPS:-$((REPS < 2 ? REPS : 5))}
SKIP=${SKIP:-}
if [ -n "${BENCH_ONLY:-}" ]; then
    for scenario in ping handshake policy stream idle runi crl mini; do
        case " $BENCH_ONLY " in *" $scenario "*) ;; *) SKIP="$SKIP $scenario" ;; esac
    done
    # Without the crl scenario only the 10-entry CRL is used: no need to generate the big ones.
    case " $BENCH_ONLY " in *" crl "*) ;; *) : "${CRL_SIZES:=10}" ;; esac
fi
CRL_SIZES=${CRL_SIZES:-10 100000 1000000}
STREAM_BYTES=$((STREAM_MB * 1024 * 1024))

P_DOCKGATE=23761; P_DOCKERD=23762; P_NGINX=23763; P_HAPROXY=23764; P_STUNNEL=23765
P_DOCKGATE_CI=23766; P_DOCKGATE_ADMIN=23767; P_DOCKGATE_OLD=23768
P_DOCKGATE_MINI=23771; P_NGINX_MINI=23773; P_HAPROXY_MINI=23774
SOCK=$W/docker.sock; MINI=$W/mini.sock; PKI=$W/pki; CLIENT=$PKI/clients/alice
DGBENCH=$ROOT/bench/loadgen/target/release/dgbench
DOCKGATE=${DOCKGATE:-$ROOT/target/release/dockgate}
IMG=dgbench-busybox
RAW=$W/raw.jsonl
T0=$EPOCHREALTIME

log() { printf '[bench %5.0fs] %s\n' "$(echo "$EPOCHREALTIME - $T0" | bc)" "$*" >&2; }
skip() { case " $SKIP " in *" $1 "*) return 0;; esac; return 1; }

[ "$(id -u)" = 0 ] || { echo "make bench: run as root (it starts a private dockerd)" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ------------------------------------------------------------------------------------------------
# Packages and builds
need=""
for dep in dockerd:docker.io nginx:nginx haproxy:haproxy stunnel4:stunnel4 /bin/busybox:busybox-static \
           openssl:openssl jq:jq bc:bc python3:python3; do
    what=${dep%%:*}; pkg=${dep#*:}
    if [ "${what:0:1}" = / ]; then [ -x "$what" ] && continue; else command -v "$what" >/dev/null && continue; fi
    need="$need $pkg"
done
if [ -n "$need" ]; then
    log "installing:$need"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
fi
# The packages' own services are not used (and must not hold ports or the default socket).
for svc in nginx haproxy stunnel4; do systemctl stop "$svc" 2>/dev/null || true; done
command -v docker >/dev/null || { echo "make bench: the docker CLI is missing" >&2; exit 1; }

log "building dockgate and the load client (cargo build --release)"
(cd "$ROOT" && cargo build --release -q)
(cd "$ROOT/bench/loadgen" && cargo build --release -q)

# ------------------------------------------------------------------------------------------------
# Clean slate
cleanup() {
    [ "${KEEP:-0}" = 1 ] && return
    if [ -S "$SOCK" ] && [ -f "$W/dockerd.pid" ]; then
        timeout 20 docker -H "unix://$SOCK" rm -f bench-sink bench-idle >/dev/null 2>&1 || true
        kill "$(cat "$W/dockerd.pid")" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$(cat "$W/dockerd.pid")" 2>/dev/null || break; sleep 0.1; done
    fi
    for f in "$W"/*.pid; do
        [ -f "$f" ] || continue
        pid=$(cat "$f" 2>/dev/null || true)
        [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    done
    sleep 1
    for f in "$W"/*.pid; do
        [ -f "$f" ] || continue
        pid=$(cat "$f" 2>/dev/null || true)
        [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
        rm -f "$f"
    done
}
trap cleanup EXIT
cleanup
mkdir -p "$W/logs" "$ROOT/docs"
rm -f "$RAW"

# ------------------------------------------------------------------------------------------------
# PKI and CRLs: one CA, one server certificate (SAN 127.0.0.1), alice (valid) and mallory (revoked)
log "PKI and CRLs ($CRL_SIZES entries)"
rm -rf "$PKI"
bash "$ROOT/tests/demo/pki.sh" "$PKI" alice mallory >/dev/null 2>&1
bash "$ROOT/tests/demo/pki.sh" "$PKI" --revoke mallory >/dev/null 2>&1
cat "$PKI/server.pem" "$PKI/server-key.pem" > "$PKI/haproxy.pem"
# CRLs of N entries: mallory plus N-1 generated serials, signed by the same CA with openssl ca.
declare -A CRL CRL_GEN_S
for n in $CRL_SIZES; do
    t=$EPOCHREALTIME
    python3 - "$PKI/index.txt" "$PKI/index-$n.txt" "$n" <<'EOF'
import sys
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
lines = [l for l in open(src) if l.startswith("R")]
with open(dst, "w") as f:
    f.writelines(open(src).readlines())
    for i in range(max(0, n - len(lines))):
        f.write("R\t351231000000Z\t250101000000Z\t%032X\tunknown\t/CN=r%d\n" % ((0x4F << 120) + i * 7919, i))
EOF
    echo "unique_subject = no" > "$PKI/index-$n.txt.attr"
    sed "s|^database = index.txt|database = index-$n.txt|" "$PKI/openssl-ca.cnf" > "$PKI/ca-$n.cnf"
    (cd "$PKI" && openssl ca -config "ca-$n.cnf" -gencrl -keyfile ca-key.pem -cert ca.pem -out "crl-$n.pem" 2>/dev/null)
    CRL[$n]=$PKI/crl-$n.pem
    CRL_GEN_S[$n]=$(echo "$EPOCHREALTIME - $t" | bc)
done
MAIN_CRL=${CRL[10]:-$PKI/crl.pem}
cp "$PKI/ca.pem" "$CLIENT/ca.pem"

# ------------------------------------------------------------------------------------------------
# dockerd (one, private) with its own --tlsverify port, the test image and the minimal upstream
log "starting dockerd"
mkdir -p "$W/data" "$W/exec"
dockerd -H "unix://$SOCK" -H "tcp://127.0.0.1:$P_DOCKERD" --tlsverify --tlscacert "$PKI/ca.pem" \
    --tlscert "$PKI/server.pem" --tlskey "$PKI/server-key.pem" \
    --data-root "$W/data" --exec-root "$W/exec" --pidfile "$W/dockerd.pid.file" \
    --bridge=none --iptables=false >"$W/logs/dockerd.log" 2>&1 &
echo $! > "$W/dockerd.pid"
DOCKERD_PID=$(cat "$W/dockerd.pid")
for _ in $(seq 100); do [ -S "$SOCK" ] && docker -H "unix://$SOCK" version >/dev/null 2>&1 && break; sleep 0.2; done
docker -H "unix://$SOCK" version >/dev/null || { echo "dockerd did not start, see $W/logs/dockerd.log" >&2; exit 1; }
export DOCKER_CONFIG=$W/dockercfg; mkdir -p "$DOCKER_CONFIG"
D() { docker -H "unix://$SOCK" "$@"; }

if ! D image inspect "$IMG" >/dev/null 2>&1; then
    log "importing the busybox image"
    rm -rf "$W/rootfs"; mkdir -p "$W/rootfs/bin" "$W/rootfs/tmp"
    cp /bin/busybox "$W/rootfs/bin/busybox"
    for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$W/rootfs/bin/$a"; done
    tar -C "$W/rootfs" -c . | D import -c 'ENV PATH=/bin' - "$IMG" >/dev/null
fi
D rm -f bench-sink bench-idle >/dev/null 2>&1 || true
D run -d --name bench-sink "$IMG" sleep 1000000 >/dev/null
D run -d -i --name bench-idle "$IMG" cat >/dev/null
# Random content: the Go client asks for gzip and dockerd compresses archives, so zeros would not move.
skip stream || D exec bench-sink sh -c "head -c $STREAM_BYTES /dev/urandom > /big"

"$DGBENCH" upstream --listen "$MINI" >"$W/logs/mini.log" 2>&1 &
echo $! > "$W/mini.pid"

# ------------------------------------------------------------------------------------------------
# Contenders. start_X CRLFILE; every gate listens on 127.0.0.1 only.
# Every load comes from one client certificate (alice): the per-client limit (256 by default) is
# raised to the total one, or the idle rows would measure 256 sessions and 744 refusals.
start_dockgate() { # start_dockgate NAME PORT UPSTREAM CRL [more flags...]; binary: $GATE_BIN or $DOCKGATE
    local name=$1 port=$2 upstream=$3 crl=$4; shift 4
    RUST_LOG=info "${GATE_BIN:-$DOCKGATE}" --tlscacert "$PKI/ca.pem" --tlscert "$PKI/server.pem" \
        --tlskey "$PKI/server-key.pem" --crl "$crl" --reload-interval 0 --max-connections-per-client 4096 \
        --listen "127.0.0.1:$port" --upstream "unix://$upstream" "$@" >"$W/logs/$name.log" 2>&1 &
    echo $! > "$W/$name.pid"
}

start_nginx() { # start_nginx CRL
    mkdir -p "$W/nginx/tmp"
    cat > "$W/nginx/nginx.conf" <<EOF
user root;
worker_processes 2;
worker_rlimit_nofile 20000;
daemon off;
pid $W/nginx/nginx.pid;
error_log $W/logs/nginx-error.log warn;
events { worker_connections 8000; }
http {
    access_log $W/logs/nginx-access.log;
    keepalive_requests 100000000;
    client_body_temp_path $W/nginx/tmp/body; proxy_temp_path $W/nginx/tmp/proxy;
    fastcgi_temp_path $W/nginx/tmp/fcgi; uwsgi_temp_path $W/nginx/tmp/uwsgi; scgi_temp_path $W/nginx/tmp/scgi;
    map \$http_upgrade \$connection_upgrade { default upgrade; '' ''; }
    upstream docker { server unix:$SOCK; keepalive 128; keepalive_requests 100000000; }
    upstream mini { server unix:$MINI; keepalive 128; keepalive_requests 100000000; }
    ssl_certificate $PKI/server.pem;
    ssl_certificate_key $PKI/server-key.pem;
    ssl_client_certificate $PKI/ca.pem;
    ssl_verify_client on;
    ssl_crl $1;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache off;
    ssl_session_tickets off;
    client_max_body_size 0;
    proxy_http_version 1.1;
    proxy_set_header Upgrade \$http_upgrade;
    proxy_set_header Connection \$connection_upgrade;
    proxy_set_header Host \$host;
    proxy_buffering off;
    proxy_request_buffering off;
    proxy_read_timeout 24h;
    proxy_send_timeout 24h;
    server { listen 127.0.0.1:$P_NGINX ssl; location / { proxy_pass http://docker; } }
    server { listen 127.0.0.1:$P_NGINX_MINI ssl; location / { proxy_pass http://mini; } }
}
EOF
    nginx -p "$W/nginx" -c "$W/nginx/nginx.conf" >"$W/logs/nginx.out" 2>&1 &
    echo $! > "$W/nginx.pid"
}

start_haproxy() { # start_haproxy CRL
    cat > "$W/haproxy.cfg" <<EOF
global
    maxconn 8000
    nbthread 2
    ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets
    tune.ssl.cachesize 0
defaults
    mode http
    timeout connect 5s
    timeout client 1h
    timeout server 1h
    timeout tunnel 24h
    http-reuse always
frontend docker
    bind 127.0.0.1:$P_HAPROXY ssl crt $PKI/haproxy.pem ca-file $PKI/ca.pem crl-file $1 verify required
    default_backend docker
frontend mini
    bind 127.0.0.1:$P_HAPROXY_MINI ssl crt $PKI/haproxy.pem ca-file $PKI/ca.pem crl-file $1 verify required
    default_backend mini
backend docker
    server d unix@$SOCK
backend mini
    server m unix@$MINI
EOF
    haproxy -db -f "$W/haproxy.cfg" >"$W/logs/haproxy.log" 2>&1 &
    echo $! > "$W/haproxy.pid"
}

start_stunnel() { # start_stunnel CRL
    cat > "$W/stunnel.conf" <<EOF
foreground = yes
pid =
output = $W/logs/stunnel-out.log
[docker]
accept = 127.0.0.1:$P_STUNNEL
connect = $SOCK
cert = $PKI/server.pem
key = $PKI/server-key.pem
CAfile = $PKI/ca.pem
CRLfile = $1
verifyChain = yes
requireCert = yes
sslVersionMin = TLSv1.2
options = NO_TICKET
EOF
    stunnel4 "$W/stunnel.conf" >"$W/logs/stunnel.log" 2>&1 &
    echo $! > "$W/stunnel.pid"
}

stop() { # stop NAME
    local f=$W/$1.pid pid
    [ -f "$f" ] || return 0
    pid=$(cat "$f"); kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$f"
}

# Processes whose memory and CPU count as "the gate" of a contender.
pids_of() {
    case $1 in
        direct|dockerd-tls) echo "$DOCKERD_PID" ;;
        nginx|nginx-mini) local m; m=$(cat "$W/nginx.pid"); echo "$m $(pgrep -P "$m" | tr '\n' ' ')" ;;
        haproxy|haproxy-mini) cat "$W/haproxy.pid" ;;
        stunnel) cat "$W/stunnel.pid" ;;
        dockgate) cat "$W/dockgate.pid" ;;
        dockgate-mini|dockgate-ci|dockgate-admin|dockgate-old) cat "$W/$1.pid" ;;
        mini) cat "$W/mini.pid" ;;
    esac
}
cpu_ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo $t; }

target_of() {
    case $1 in
        direct) echo "unix://$SOCK" ;; mini) echo "unix://$MINI" ;;
        dockgate) echo "tcp://127.0.0.1:$P_DOCKGATE" ;; dockerd-tls) echo "tcp://127.0.0.1:$P_DOCKERD" ;;
        nginx) echo "tcp://127.0.0.1:$P_NGINX" ;; haproxy) echo "tcp://127.0.0.1:$P_HAPROXY" ;;
        stunnel) echo "tcp://127.0.0.1:$P_STUNNEL" ;; dockgate-mini) echo "tcp://127.0.0.1:$P_DOCKGATE_MINI" ;;
        nginx-mini) echo "tcp://127.0.0.1:$P_NGINX_MINI" ;; haproxy-mini) echo "tcp://127.0.0.1:$P_HAPROXY_MINI" ;;
        dockgate-ci) echo "tcp://127.0.0.1:$P_DOCKGATE_CI" ;; dockgate-admin) echo "tcp://127.0.0.1:$P_DOCKGATE_ADMIN" ;;
        dockgate-old) echo "tcp://127.0.0.1:$P_DOCKGATE_OLD" ;;
    esac
}
tls_of() { case $1 in direct|mini) ;; *) echo "--tls $CLIENT" ;; esac; }

# docker CLI through a contender
dk() { # dk CONTENDER docker-args...
    local c=$1; shift
    if [ "$c" = direct ]; then
        docker -H "unix://$SOCK" "$@"
    else
        DOCKER_HOST=$(target_of "$c") DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=$CLIENT docker "$@"
    fi
}

export -f dk target_of
export SOCK CLIENT MINI P_DOCKGATE P_DOCKGATE_CI P_DOCKGATE_ADMIN P_DOCKGATE_OLD P_DOCKERD P_NGINX P_HAPROXY P_STUNNEL P_DOCKGATE_MINI P_NGINX_MINI P_HAPROXY_MINI

rec() { # rec SCENARIO CONTENDER REP JSON [extra jq args]
    local s=$1 c=$2 r=$3 j=$4
    # loadavg1: the machine is shared; the report gives the range of the 1-minute load average.
    echo "$j" | jq -c --arg s "$s" --arg c "$c" --argjson r "$r" --argjson l "$(cut -d' ' -f1 /proc/loadavg)" \
        '. + {scenario:$s, contender:$c, rep:$r, loadavg1:$l}' >> "$RAW"
}

wait_ready() { # wait_ready CONTENDER -> prints ms, or fails
    "$DGBENCH" ready --target "$(target_of "$1")" $(tls_of "$1") --timeout "${2:-60}" | jq -r .ms
}

# DOCKGATE_OLD: an older build (no policy), started once, that joins the 16-client handshake row,
# the idle rows and the policy rows, so that two builds are measured side by side in one run.
OLD=""
start_old() { # sets OLD to the old build's contender name, or leaves it empty
    [ -n "${DOCKGATE_OLD:-}" ] && [ -z "$OLD" ] || return 0
    GATE_BIN=$DOCKGATE_OLD start_dockgate dockgate-old "$P_DOCKGATE_OLD" "$SOCK" "$MAIN_CRL"
    wait_ready dockgate-old >/dev/null || { echo "dockgate-old did not become ready; logs in $W/logs" >&2; exit 1; }
    OLD=dockgate-old
}

start_all() { # start_all CRL
    start_dockgate dockgate "$P_DOCKGATE" "$SOCK" "$1"
    start_dockgate dockgate-mini "$P_DOCKGATE_MINI" "$MINI" "$1"
    start_nginx "$1"; start_haproxy "$1"; start_stunnel "$1"
    for c in dockgate dockerd-tls nginx haproxy stunnel dockgate-mini nginx-mini haproxy-mini; do
        wait_ready "$c" >/dev/null || { echo "$c did not become ready; logs in $W/logs" >&2; exit 1; }
    done
}

CONTENDERS="direct dockgate dockerd-tls nginx haproxy stunnel"
MINI_CONTENDERS="mini dockgate-mini nginx-mini haproxy-mini"
log "starting the contenders (CRL: $(basename "$MAIN_CRL"))"
start_all "$MAIN_CRL"

# Check that revocation is enforced by every CRL-aware contender (mallory must be refused).
cp "$PKI/ca.pem" "$PKI/clients/mallory/ca.pem"
for c in dockgate nginx haproxy stunnel; do
    if "$DGBENCH" ready --target "$(target_of "$c")" --tls "$PKI/clients/mallory" --timeout 1 >/dev/null 2>&1; then
        rec revocation "$c" 0 '{"refused":false}'; log "WARNING: $c accepted the revoked certificate"
    else
        rec revocation "$c" 0 '{"refused":true}'
    fi
done

# ------------------------------------------------------------------------------------------------
# Scenarios. Reps are interleaved across contenders so that machine noise spreads evenly.
if ! skip ping; then
    log "keep-alive GET /_ping at 1/16/64 connections, ${SECS}s x $REPS"
    for r in $(seq "$REPS"); do
        for conns in 1 16 64; do
            for c in $CONTENDERS $(skip mini || echo "$MINI_CONTENDERS"); do
                # CPU per request of the gate and of dockerd: with 2 cores saturated, requests/s
                # is 2 cores divided by the sum of what client, gate and dockerd spend per request.
                pids=$(pids_of "$c"); g0=$(cpu_ticks $pids); d0=$(cpu_ticks "$DOCKERD_PID")
                out=$("$DGBENCH" ping --target "$(target_of "$c")" $(tls_of "$c") --conns "$conns" --secs "$SECS")
                g1=$(cpu_ticks $pids); d1=$(cpu_ticks "$DOCKERD_PID")
                rec "ping$conns" "$c" "$r" "$(echo "$out" | jq -c --argjson g "$((g1 - g0))" --argjson d "$((d1 - d0))" \
                    '. + (if .ok > 0 then {gate_us_per_req: ($g * 1e4 / .ok), dockerd_us_per_req: ($d * 1e4 / .ok)} else {} end)')"
            done
        done
    done
fi

if ! skip handshake; then
    log "new connection per request (handshakes/s) at 4 and 16 clients, ${SECS}s x $REPS"
    start_old
    for r in $(seq "$REPS"); do
        for c in $CONTENDERS $(skip mini || echo "$MINI_CONTENDERS"); do
            out=$("$DGBENCH" handshake --target "$(target_of "$c")" $(tls_of "$c") --conns 4 --secs "$SECS")
            rec handshake "$c" "$r" "$out"
        done
        # 16 clients: dockgate and dockerd's own TLS port (the same ECDSA handshake, without a
        # CRL) alternate, so that the ratio of the two is measured side by side.
        for c in $CONTENDERS $OLD; do
            pids=$(pids_of "$c"); g0=$(cpu_ticks $pids)
            out=$("$DGBENCH" handshake --target "$(target_of "$c")" $(tls_of "$c") --conns 16 --secs "$SECS")
            g1=$(cpu_ticks $pids)
            rec handshake16 "$c" "$r" "$(echo "$out" | jq -c --argjson g "$((g1 - g0))" \
                '. + (if .ok > 0 then {gate_us_per_req: ($g * 1e4 / .ok)} else {} end)')"
        done
    done
fi

if ! skip policy; then
    # The same gate three times in front of the same dockerd: without --policy (`dockgate`, the
    # gate of the other rows), with alice in a `ci` role whose container creates are inspected,
    # and with alice in an `admin` role (allow = ["all"], never inspected). The ci role is the
    # README's "CI runner without escalation", limited to what this benchmark does.
    cat > "$W/policy-ci.toml" <<'TOML'
mode = "enforce"
default_role = "none"
[[identity]]
cn = ["alice"]
role = "ci"
[role.ci]
allow = ["read", "logs", "containers", "exec", "images", "build", "volumes", "networks"]
deny = ["DELETE /images/*"]
[role.ci.containers]
privileged = false
host_namespaces = false
devices = false
cap_add = ["NET_BIND_SERVICE"]
security_opt = false
bind_mounts = ["/srv/ci-cache"]
run_as_root = true
images = ["*"]
TOML
    cat > "$W/policy-admin.toml" <<'TOML'
mode = "enforce"
default_role = "none"
[[identity]]
cn = ["alice"]
role = "admin"
[role.admin]
allow = ["all"]
TOML
    # What `docker create --name N -e FOO=bar IMG sleep 1` (docker CLI 28.2.2) sends, captured on
    # the wire (the name is in the query, left out here): the ci role checks it field by field.
    cat > "$W/create-body.json" <<JSON
{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":true,"AttachStderr":true,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":["FOO=bar"],"Cmd":["sleep","1"],"Image":"$IMG","Volumes":{},"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":{},"HostConfig":{"Binds":null,"ContainerIDFile":"","LogConfig":{"Type":"","Config":{}},"NetworkMode":"default","PortBindings":{},"RestartPolicy":{"Name":"no","MaximumRetryCount":0},"AutoRemove":false,"VolumeDriver":"","VolumesFrom":null,"ConsoleSize":[0,0],"CapAdd":null,"CapDrop":null,"CgroupnsMode":"","Dns":[],"DnsOptions":[],"DnsSearch":[],"ExtraHosts":null,"GroupAdd":null,"IpcMode":"","Cgroup":"","Links":null,"OomScoreAdj":0,"PidMode":"","Privileged":false,"PublishAllPorts":false,"ReadonlyRootfs":false,"SecurityOpt":null,"UTSMode":"","UsernsMode":"","ShmSize":0,"Isolation":"","CpuShares":0,"Memory":0,"NanoCpus":0,"CgroupParent":"","BlkioWeight":0,"BlkioWeightDevice":[],"BlkioDeviceReadBps":[],"BlkioDeviceWriteBps":[],"BlkioDeviceReadIOps":[],"BlkioDeviceWriteIOps":[],"CpuPeriod":0,"CpuQuota":0,"CpuRealtimePeriod":0,"CpuRealtimeRuntime":0,"CpusetCpus":"","CpusetMems":"","Devices":[],"DeviceCgroupRules":null,"DeviceRequests":null,"MemoryReservation":0,"MemorySwap":0,"MemorySwappiness":-1,"OomKillDisable":false,"PidsLimit":0,"Ulimits":[],"CpuCount":0,"CpuPercent":0,"IOMaximumIOps":0,"IOMaximumBandwidth":0,"MaskedPaths":null,"ReadonlyPaths":null},"NetworkingConfig":{"EndpointsConfig":{"default":{"IPAMConfig":null,"Links":null,"Aliases":null,"MacAddress":"","DriverOpts":null,"GwPriority":0,"NetworkID":"","EndpointID":"","Gateway":"","IPAddress":"","IPPrefixLen":0,"IPv6Gateway":"","GlobalIPv6Address":"","GlobalIPv6PrefixLen":0,"DNSNames":null}}}}
JSON
    start_dockgate dockgate-ci "$P_DOCKGATE_CI" "$SOCK" "$MAIN_CRL" --policy "$W/policy-ci.toml"
    start_dockgate dockgate-admin "$P_DOCKGATE_ADMIN" "$SOCK" "$MAIN_CRL" --policy "$W/policy-admin.toml"
    POLICY_CONTENDERS="dockgate dockgate-ci dockgate-admin"
    start_old
    POLICY_CONTENDERS="$POLICY_CONTENDERS $OLD"
    for c in $POLICY_CONTENDERS; do
        wait_ready "$c" >/dev/null || { echo "$c did not become ready; logs in $W/logs" >&2; exit 1; }
    done
    # The ci role must really decide (and pass) these creates: one pair through it, then its log.
    "$DGBENCH" create --target "$(target_of dockgate-ci)" --tls "$CLIENT" --conns 1 --secs 0.2 \
        --body "$W/create-body.json" | jq -e '.ok > 0 and .errors == 0' >/dev/null \
        || { echo "create+remove through the ci role failed; logs in $W/logs" >&2; exit 1; }
    grep -q 'role=ci' "$W/logs/dockgate-ci.log" || { echo "dockgate-ci logs no role=ci" >&2; exit 1; }
    log "policy: keep-alive /_ping at 16 conns, create+remove pairs at ${CREATE_CONNS:-4} conns; ${SECS}s x $POLICY_REPS: $POLICY_CONTENDERS"
    for r in $(seq "$POLICY_REPS"); do
        # Rotate the order every rep, so that no contender always runs first or last.
        set -- $POLICY_CONTENDERS
        for _ in $(seq $(((r - 1) % $#))); do set -- "${@:2}" "$1"; done
        for c in "$@"; do
            pids=$(pids_of "$c"); g0=$(cpu_ticks $pids); d0=$(cpu_ticks "$DOCKERD_PID")
            out=$("$DGBENCH" ping --target "$(target_of "$c")" $(tls_of "$c") --conns 16 --secs "$SECS")
            g1=$(cpu_ticks $pids); d1=$(cpu_ticks "$DOCKERD_PID")
            rec policy_ping16 "$c" "$r" "$(echo "$out" | jq -c --argjson g "$((g1 - g0))" --argjson d "$((d1 - d0))" \
                '. + (if .ok > 0 then {gate_us_per_req: ($g * 1e4 / .ok), dockerd_us_per_req: ($d * 1e4 / .ok)} else {} end)')"
        done
        for c in "$@"; do
            pids=$(pids_of "$c"); g0=$(cpu_ticks $pids); d0=$(cpu_ticks "$DOCKERD_PID")
            out=$("$DGBENCH" create --target "$(target_of "$c")" $(tls_of "$c") --conns "${CREATE_CONNS:-4}" \
                --secs "$SECS" --body "$W/create-body.json")
            g1=$(cpu_ticks $pids); d1=$(cpu_ticks "$DOCKERD_PID")
            rec policy_create "$c" "$r" "$(echo "$out" | jq -c --argjson g "$((g1 - g0))" --argjson d "$((d1 - d0))" \
                '. + (if .ok > 0 then {gate_us_per_req: ($g * 1e4 / .ok), dockerd_us_per_req: ($d * 1e4 / .ok)} else {} end)')"
        done
    done
fi

if ! skip runi; then
    log "echo hi | docker run -i --rm $IMG cat, x $REPS"
    for r in $(seq "$REPS"); do
        for c in $CONTENDERS; do
            t=$EPOCHREALTIME
            set +e
            got=$(echo hi | timeout 60 bash -c "dk $c run -i --rm $IMG cat" 2>"$W/logs/runi-$c.err")
            rc=$?
            set -e
            secs=$(echo "$EPOCHREALTIME - $t" | bc)
            if [ "$rc" = 0 ] && [ "$got" = hi ]; then
                rec runi "$c" "$r" "{\"ok\":true,\"secs\":$secs}"
            else
                why=$( (head -c 300 "$W/logs/runi-$c.err"; [ "$rc" = 124 ] && echo "timeout after 60s"; echo " (rc=$rc, output=${got:0:40})") | tr '\n' ' ')
                rec runi "$c" "$r" "$(jq -nc --arg w "$why" --argjson s "$secs" '{ok:false, secs:$s, reason:$w}')"
            fi
        done
    done
fi

stream_one() { # stream_one SCENARIO CONTENDER REP command...
    local s=$1 c=$2 r=$3; shift 3
    local pids t0 t1 g0 g1 d0 d1 rc secs
    pids=$(pids_of "$c")
    g0=$(cpu_ticks $pids); d0=$(cpu_ticks "$DOCKERD_PID"); t0=$EPOCHREALTIME
    set +e
    got=$(timeout "${STREAM_TIMEOUT:-180}" bash -c "$*" 2>"$W/logs/$s-$c.err")
    rc=$?
    set -e
    got=$(echo "$got" | tr -dc 0-9)
    # The command prints the byte count that arrived; a gate that drops the stream fails here.
    if [ "$rc" = 0 ] && [ "${got:-0}" -lt "$STREAM_BYTES" ]; then
        echo "only ${got:-0} of $STREAM_BYTES bytes arrived" >> "$W/logs/$s-$c.err"; rc=99
    fi
    t1=$EPOCHREALTIME; g1=$(cpu_ticks $pids); d1=$(cpu_ticks "$DOCKERD_PID")
    secs=$(echo "$t1 - $t0" | bc)
    if [ "$rc" = 0 ]; then
        rec "$s" "$c" "$r" "$(jq -nc --argjson secs "$secs" --argjson b "$STREAM_BYTES" \
            --argjson g "$((g1 - g0))" --argjson d "$((d1 - d0))" \
            '{ok:true, secs:$secs, bytes:$b, mb_s:($b/1e6/$secs), gate_cpu_s_per_gib:($g/100*1073741824/$b), dockerd_cpu_s_per_gib:($d/100*1073741824/$b)}')"
    else
        why=$( (head -c 300 "$W/logs/$s-$c.err"; [ "$rc" = 124 ] && echo "timeout after ${STREAM_TIMEOUT:-180}s"; echo " (rc=$rc)") | tr '\n' ' ')
        rec "$s" "$c" "$r" "$(jq -nc --arg w "$why" --argjson s "$secs" '{ok:false, secs:$s, reason:$w}')"
    fi
}

if ! skip stream; then
    log "streaming $STREAM_MB MiB: exec stdout, exec stdin, docker cp; x $STREAM_REPS"
    for r in $(seq "$STREAM_REPS"); do
        for c in $CONTENDERS; do
            stream_one stream_down "$c" "$r" "dk $c exec bench-sink head -c $STREAM_BYTES /dev/zero | wc -c"
            stream_one stream_up "$c" "$r" "head -c $STREAM_BYTES /dev/zero | dk $c exec -i bench-sink wc -c"
            stream_one cp_down "$c" "$r" "dk $c cp bench-sink:/big - | wc -c"
        done
    done
    # The same hijacked streams against the minimal upstream: no docker CLI, no dockerd, so
    # the gates' own throughput shows (dgbench is the TLS client on the same 2 cores).
    skip mini || log "raw streams of $STREAM_MB MiB via the minimal upstream; x $RAW_REPS"
    for r in $(skip mini || seq "$RAW_REPS"); do
        for c in $MINI_CONTENDERS; do
            STREAM_TIMEOUT=60 stream_one rawstream_down "$c" "$r" "$DGBENCH stream --target $(target_of "$c") $(tls_of "$c") --dir out --bytes $STREAM_BYTES"
            STREAM_TIMEOUT=60 stream_one rawstream_up "$c" "$r" "$DGBENCH stream --target $(target_of "$c") $(tls_of "$c") --dir in --bytes $STREAM_BYTES"
        done
    done
fi

if ! skip idle; then
    log "$IDLE_N idle hijacked sessions and $IDLE_N /events streams"
    start_old
    for c in $CONTENDERS $OLD; do
        pids=$(pids_of "$c" | tr ' ' ',' | sed 's/,*$//')
        out=$("$DGBENCH" idle --target "$(target_of "$c")" $(tls_of "$c") --n "$IDLE_N" --method POST --upgrade \
            --path "/containers/bench-idle/attach?stream=1&stdin=1&stdout=1&stderr=1" --pids "$pids" --settle 2)
        rec idle_attach "$c" 1 "$out"
        sleep 1
        out=$("$DGBENCH" idle --target "$(target_of "$c")" $(tls_of "$c") --n "$IDLE_N" --path "/events" --pids "$pids" --settle 2)
        rec idle_events "$c" 1 "$out"
        sleep 1
    done
fi

if ! skip crl; then
    log "CRL sizes: handshakes/s, load time, memory"
    stop dockgate; stop dockgate-mini; stop nginx; stop haproxy; stop stunnel
    for n in $CRL_SIZES; do
        for c in dockgate nginx haproxy stunnel; do
            case $c in
                dockgate) start_dockgate dockgate "$P_DOCKGATE" "$SOCK" "${CRL[$n]}" ;;
                nginx) start_nginx "${CRL[$n]}" ;; haproxy) start_haproxy "${CRL[$n]}" ;;
                stunnel) start_stunnel "${CRL[$n]}" ;;
            esac
            if ! ms=$(wait_ready "$c"); then
                rec crl "$c" 0 "$(jq -nc --argjson n "$n" '{ok:false, entries:$n, reason:"not ready within 120 s"}')"
                stop "$c"; continue
            fi
            mem=$("$DGBENCH" idle --target "$(target_of "$c")" --tls "$CLIENT" --n 0 --path /_ping \
                --pids "$(pids_of "$c" | tr ' ' ',' | sed 's/,*$//')" --settle 0)
            for r in $(seq "$REPS"); do
                out=$("$DGBENCH" handshake --target "$(target_of "$c")" --tls "$CLIENT" --conns 4 --secs "$SECS")
                rec crl "$c" "$r" "$(echo "$out" | jq -c --argjson n "$n" --argjson ms "$ms" --argjson m "$mem" \
                    --argjson g "${CRL_GEN_S[$n]}" \
                    '. + {entries:$n, ready_ms:$ms, rss_kib:$m.rss_kib, pss_kib:$m.pss_kib, crl_gen_s:$g}')"
            done
            stop "$c"
        done
    done
fi

# ------------------------------------------------------------------------------------------------
# Versions, machine, report
log "writing the report"
jq -n \
    --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    --arg kernel "$(uname -r)" --arg os "$(. /etc/os-release; echo "$PRETTY_NAME")" \
    --arg cpu "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')" \
    --argjson cores "$(nproc)" --argjson mem_mib "$(free -m | awk '/Mem:/{print $2}')" \
    --arg dockgate "$("$DOCKGATE" --version 2>&1 | head -1) (git $(cd "$ROOT" && git rev-parse --short HEAD)$(cd "$ROOT" && git diff --quiet -- src Cargo.toml || echo '+uncommitted src changes'))" \
    --arg dockerd "$(dockerd --version)" --arg docker_cli "$(docker --version)" \
    --arg nginx "$(nginx -v 2>&1) ($(nginx -V 2>&1 | grep -o 'built with OpenSSL [^ ]*'))" \
    --arg haproxy "$(haproxy -v | head -1)" \
    --arg stunnel "$(stunnel4 -version 2>&1 | grep -m1 '^stunnel')" \
    --arg openssl "$(openssl version)" \
    --arg rustc "$(rustc --version)" \
    --argjson reps "$REPS" --argjson stream_reps "$STREAM_REPS" --argjson raw_reps "$RAW_REPS" --argjson secs "$SECS" --argjson stream_mb "$STREAM_MB" --argjson idle_n "$IDLE_N" \
    --arg elapsed "$(echo "$EPOCHREALTIME - $T0" | bc)" --arg loadavg "$(cut -d' ' -f1-3 /proc/loadavg)" \
    '{date:$date, machine:{os:$os, kernel:$kernel, cpu:$cpu, cores:$cores, mem_mib:$mem_mib},
      versions:{dockgate:$dockgate, dockerd:$dockerd, docker_cli:$docker_cli, nginx:$nginx, haproxy:$haproxy,
                stunnel:$stunnel, openssl:$openssl, rustc:$rustc},
      settings:{reps:$reps, stream_reps:$stream_reps, raw_reps:$raw_reps, secs_per_load_run:$secs, stream_mib:$stream_mb, idle_sessions:$idle_n},
      elapsed_s:($elapsed|tonumber), loadavg_at_end:$loadavg}' > "$W/meta.json"
for n in $CRL_SIZES; do
    jq -nc --argjson n "$n" --argjson b "$(stat -c %s "${CRL[$n]}")" --argjson g "${CRL_GEN_S[$n]}" \
        '{scenario:"crl_file", entries:$n, bytes:$b, gen_s:$g}' >> "$RAW"
done
if [ -n "${BENCH_ONLY:-}" ]; then
    python3 "$ROOT/bench/report.py" "$W/meta.json" "$RAW" "$W/results.json" "$W/BENCHMARKS.md"
    log "partial run (BENCH_ONLY=$BENCH_ONLY): report in $W/BENCHMARKS.md, the repository's is unchanged"
else
    python3 "$ROOT/bench/report.py" "$W/meta.json" "$RAW" "$ROOT/bench/results.json" "$ROOT/docs/BENCHMARKS.md"
fi
log "done in $(echo "$EPOCHREALTIME - $T0" | bc | cut -d. -f1) s; raw data and logs in $W"
