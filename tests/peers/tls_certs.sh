# Test PKI for mux443's TLS integration cases (sourced by tests/integ/tls_*.sh, after
# lib.sh). Everything is made with the openssl command line in a directory of the
# test's own temp dir; nothing is cached between runs.
#
#   tls_ca DIR [NAME]            root CA: DIR/NAME.crt, DIR/NAME.key (ECDSA P-256)
#   tls_intermediate DIR NAME CA an intermediate CA signed by CA: DIR/NAME.crt/.key
#   tls_leaf DIR NAME ALG CA CN [DNS...]
#                                a server certificate for CN (+ SANs: a name that is an
#                                IPv4/IPv6 address becomes an IP SAN, anything else a DNS
#                                SAN; CN alone when none given), ALG rsa|ec, signed by CA, valid 1 day back
#                                to 2 days ahead: DIR/NAME.crt, DIR/NAME.key
#   tls_leaf_dates DIR NAME CA START END CN [DNS...]
#                                the same with explicit validity (YYYYMMDDHHMMSSZ), made
#                                with `openssl ca` (expired or not-yet-valid certs)
# Certificates carry serverAuth, so `openssl s_client -verify_return_error -CAfile`,
# curl --cacert and Python's ssl module accept them.

_tls_key() { # ALG OUT
    case $1 in
    rsa) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$2" 2>/dev/null ;;
    ec) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$2" 2>/dev/null ;;
    *)
        echo "tls_certs: unknown key algorithm '$1'" >&2
        return 1
        ;;
    esac
}

_tls_leaf_ext() { # OUT CN [DNS...]
    local out=$1 cn=$2 san="" n
    shift 2
    for n in "$@"; do
        if [[ $n =~ ^[0-9.]+$ || $n == *:* ]]; then san+="${san:+,}IP:$n"; else san+="${san:+,}DNS:$n"; fi
    done
    {
        echo "basicConstraints = critical, CA:FALSE"
        echo "keyUsage = critical, digitalSignature, keyEncipherment"
        echo "extendedKeyUsage = serverAuth"
        echo "subjectKeyIdentifier = hash"
        echo "authorityKeyIdentifier = keyid"
        [[ -n $san ]] && echo "subjectAltName = $san"
    } >"$out"
    : "$cn"
}

tls_ca() {
    local dir=$1 name=${2:-ca}
    mkdir -p "$dir"
    _tls_key ec "$dir/$name.key"
    openssl req -x509 -new -key "$dir/$name.key" -sha256 -days 3 -subj "/CN=mux443 test $name" \
        -addext "basicConstraints = critical, CA:TRUE" \
        -addext "keyUsage = critical, keyCertSign, cRLSign" \
        -out "$dir/$name.crt" 2>/dev/null
}

tls_intermediate() {
    local dir=$1 name=$2 ca=$3
    _tls_key ec "$dir/$name.key"
    openssl req -new -key "$dir/$name.key" -subj "/CN=mux443 test $name" \
        -out "$dir/$name.csr" 2>/dev/null
    printf '%s\n' "basicConstraints = critical, CA:TRUE, pathlen:0" \
        "keyUsage = critical, keyCertSign, cRLSign" "subjectKeyIdentifier = hash" \
        "authorityKeyIdentifier = keyid" >"$dir/$name.ext"
    openssl x509 -req -in "$dir/$name.csr" -CA "$dir/$ca.crt" -CAkey "$dir/$ca.key" \
        -CAcreateserial -sha256 -days 2 -extfile "$dir/$name.ext" -out "$dir/$name.crt" 2>/dev/null
}

tls_leaf() {
    local dir=$1 name=$2 alg=$3 ca=$4 cn=$5
    shift 5
    _tls_key "$alg" "$dir/$name.key"
    openssl req -new -key "$dir/$name.key" -subj "/CN=$cn" -out "$dir/$name.csr" 2>/dev/null
    _tls_leaf_ext "$dir/$name.ext" "$cn" "$@"
    openssl x509 -req -in "$dir/$name.csr" -CA "$dir/$ca.crt" -CAkey "$dir/$ca.key" \
        -CAcreateserial -sha256 -days 2 -extfile "$dir/$name.ext" -out "$dir/$name.crt" 2>/dev/null
}

tls_leaf_dates() {
    local dir=$1 name=$2 ca=$3 start=$4 end=$5 cn=$6 db
    shift 6
    db=$dir/$ca.db
    if [[ ! -d $db ]]; then
        mkdir -p "$db"
        : >"$db/index.txt"
        echo 1000 >"$db/serial"
        cat >"$db/ca.cnf" <<EOF
[ca]
default_ca = testca
[testca]
dir = $db
database = \$dir/index.txt
new_certs_dir = \$dir
serial = \$dir/serial
default_md = sha256
policy = anything
unique_subject = no
email_in_dn = no
[anything]
commonName = supplied
EOF
    fi
    _tls_key ec "$dir/$name.key"
    openssl req -new -key "$dir/$name.key" -subj "/CN=$cn" -out "$dir/$name.csr" 2>/dev/null
    _tls_leaf_ext "$dir/$name.ext" "$cn" "$@"
    openssl ca -batch -notext -config "$db/ca.cnf" -cert "$dir/$ca.crt" -keyfile "$dir/$ca.key" \
        -startdate "$start" -enddate "$end" -extfile "$dir/$name.ext" \
        -in "$dir/$name.csr" -out "$dir/$name.crt" 2>"$dir/$name.ca.log"
}
