#!/usr/bin/env bash
# Creates a throwaway PKI with openssl, the way an operator would:
#   ca.pem / ca-key.pem          the client (and here also server) CA
#   server.pem / server-key.pem  the gate's certificate (SANs: 127.0.0.1, localhost)
#   clients/<name>/{ca,cert,key}.pem   DOCKER_CERT_PATH directories for the docker CLI
#   crl.pem                      the CA's revocation list
# Usage: pki.sh DIR [client names...]; then revoke with: pki.sh DIR --revoke NAME
set -euo pipefail

dir=$1; shift
mkdir -p "$dir"
cd "$dir"

ca_config() {
    cat > openssl-ca.cnf <<'CNF'
[ ca ]
default_ca = dockgate_ca
[ dockgate_ca ]
database = index.txt
crlnumber = crlnumber
default_md = sha256
default_crl_days = 30
[ client ]
extendedKeyUsage = clientAuth
keyUsage = critical, digitalSignature
[ server ]
extendedKeyUsage = serverAuth
keyUsage = critical, digitalSignature
subjectAltName = IP:127.0.0.1, DNS:localhost
CNF
}

new_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

issue() { # issue NAME EXTENSION KEYFILE CERTFILE
    openssl req -new -key "$3" -subj "/CN=$1" -out "$1.csr"
    openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 30 \
        -extfile openssl-ca.cnf -extensions "$2" -out "$4" 2>/dev/null
    rm -f "$1.csr"
    # Record it in the CA database so that it can be revoked later.
    local serial expiry
    serial=$(openssl x509 -in "$4" -noout -serial | cut -d= -f2)
    expiry=$(openssl x509 -in "$4" -noout -enddate | cut -d= -f2)
    printf 'V\t%s\t\t%s\tunknown\t/CN=%s\n' "$(date -u -d "$expiry" +%y%m%d%H%M%SZ)" "$serial" "$1" >> index.txt
}

make_crl() { openssl ca -config openssl-ca.cnf -gencrl -keyfile ca-key.pem -cert ca.pem -out crl.pem 2>/dev/null; }

if [ "${1:-}" = "--revoke" ]; then
    openssl ca -config openssl-ca.cnf -keyfile ca-key.pem -cert ca.pem \
        -revoke "clients/$2/cert.pem" 2>/dev/null
    make_crl
    exit 0
fi

ca_config
: > index.txt
echo 1000 > crlnumber
new_key ca-key.pem
openssl req -x509 -new -key ca-key.pem -subj "/CN=dockgate demo CA" -days 365 -out ca.pem \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
new_key server-key.pem
issue "$(hostname)-dockgate" server server-key.pem server.pem
for name in "$@"; do
    mkdir -p "clients/$name"
    new_key "clients/$name/key.pem"
    issue "$name" client "clients/$name/key.pem" "clients/$name/cert.pem"
    cp ca.pem "clients/$name/ca.pem"
done
make_crl
