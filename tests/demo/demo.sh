#!/usr/bin/env bash
# `make demo`: a throwaway CA made with `dockgate ca`, Docker behind dockgate on 127.0.0.1:2376,
# one client that gets in through an imported docker context and one revoked client that does
# not. Leaves the gate running for you to try; `make demo-stop` (or this script with `stop`)
# ends it. (tests/demo/pki.sh does the same PKI with openssl, as the README's openssl section.)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
demo=${DOCKGATE_DEMO_DIR:-/tmp/dockgate-demo}
gate_bin=${DOCKGATE_BIN:-$root/target/release/dockgate}
listen=127.0.0.1:2376

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

stop() {
    for pidfile in "$demo/dockgate.pid" "$demo/dockerd.pid"; do
        if [ -f "$pidfile" ]; then
            kill "$(cat "$pidfile")" 2>/dev/null || true
            rm -f "$pidfile"
        fi
    done
}

if [ "${1:-}" = stop ]; then stop; echo "demo stopped"; exit 0; fi

stop
rm -rf "$demo/pki" "$demo/ca" "$demo/clients" "$demo/docker-config"
mkdir -p "$demo/clients"
ca() { "$gate_bin" ca "$@" | sed 's/^/   /'; }

say "1. A CA with dockgate ca: CA, server certificate, empty CRL"
ca init "$demo/ca" --server-name localhost --server-ip 127.0.0.1 --ca-name "dockgate demo CA"
say "   clients alice (with a docker context) and mallory"
ca issue "$demo/ca" alice --out "$demo/clients/alice" --context "$listen"
ca issue "$demo/ca" mallory --out "$demo/clients/mallory"
say "   ...and mallory is revoked: a new CRL"
ca revoke "$demo/ca" mallory --reason keyCompromise
ca list "$demo/ca"
openssl crl -in "$demo/ca/crl.pem" -noout -text | grep -A4 'Serial Number' | sed 's/^/   /'

say "2. A Docker engine to protect"
if docker -H unix:///var/run/docker.sock version >/dev/null 2>&1; then
    upstream=unix:///var/run/docker.sock
    echo "   using the running daemon at $upstream"
else
    if ! command -v dockerd >/dev/null; then
        echo "   installing docker.io (dockerd) from Debian"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
    fi
    mkdir -p "$demo/docker"
    upstream=unix://$demo/docker/docker.sock
    dockerd -H "$upstream" --data-root "$demo/docker/data" --exec-root "$demo/docker/exec" \
        --pidfile "$demo/docker/pid" --bridge=none --iptables=false >"$demo/dockerd.log" 2>&1 &
    echo $! > "$demo/dockerd.pid"
    for _ in $(seq 60); do docker -H "$upstream" version >/dev/null 2>&1 && break; sleep 1; done
    docker -H "$upstream" version >/dev/null || { echo "dockerd did not start, see $demo/dockerd.log"; exit 1; }
    echo "   started a private dockerd at $upstream (log: $demo/dockerd.log)"
fi

say "3. dockgate on $listen in front of it"
pki=$demo/ca
"$gate_bin" --tlscacert "$pki/ca.pem" --tlscert "$pki/server.pem" --tlskey "$pki/server-key.pem" \
    --crl "$pki/crl.pem" --listen "$listen" --upstream "$upstream" >"$demo/dockgate.log" 2>&1 &
echo $! > "$demo/dockgate.pid"
for _ in $(seq 50); do grep -q "listening on" "$demo/dockgate.log" && break; sleep 0.1; done
sed 's/^/   /' "$demo/dockgate.log"

client() { # client NAME docker-args...: DOCKER_CERT_PATH, the classic way
    local name=$1; shift
    DOCKER_HOST=tcp://$listen DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=$demo/clients/$name \
        DOCKER_CONFIG=$demo/docker-config timeout 30 docker "$@"
}
context_docker() { env -u DOCKER_HOST DOCKER_CONFIG=$demo/docker-config timeout 30 docker "$@"; }

say "4. alice (valid certificate) imports her context: docker --context dockgate-demo version"
context_docker context import dockgate-demo "$demo/clients/alice.dockercontext"
context_docker --context dockgate-demo version

say "5. mallory (revoked certificate): docker version"
if client mallory version >"$demo/mallory.out" 2>&1; then
    echo "   UNEXPECTED: mallory got in"; exit 1
fi
tail -n 1 "$demo/mallory.out" | sed 's/^/   docker: /'
echo "   gate log:"
grep "handshake refused" "$demo/dockgate.log" | tail -n 1 | sed 's/^/   /'

say "dockgate is running (pid $(cat "$demo/dockgate.pid"), log $demo/dockgate.log). Use it as alice:"
cat <<EXPORTS
export DOCKER_CONFIG=$demo/docker-config      # holds the imported context
docker --context dockgate-demo ps
EXPORTS
echo "or without a context:"
cat <<EXPORTS
export DOCKER_HOST=tcp://$listen
export DOCKER_TLS_VERIFY=1
export DOCKER_CERT_PATH=$demo/clients/alice
EXPORTS
echo
echo "Revoke her and watch the gate cut her off: $gate_bin ca revoke $pki alice"
echo
echo "Stop the demo with: make demo-stop"
