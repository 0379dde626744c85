#!/bin/bash
# Container HEALTHCHECK for mux443: GET /healthz on the admin listener must answer
# 200. Uses bash's /dev/tcp, so the slim image needs no curl or wget.
# The admin address comes from $MUX443_ADMIN, else from `admin =` in the [mux443]
# section of $MUX443_CONFIG (default /etc/mux443/mux443.ini). Exit 0 healthy, 1 not.
set -u
conf=${MUX443_CONFIG:-/etc/mux443/mux443.ini}
addr=${MUX443_ADMIN:-}
if [[ -z $addr && -r $conf ]]; then
    section=""
    while IFS= read -r line || [[ -n $line ]]; do
        line=${line%%[;#]*}                      # comments (admin values hold neither)
        line=${line#"${line%%[![:space:]]*}"}    # leading blanks
        line=${line%"${line##*[![:space:]]}"}    # trailing blanks
        if [[ $line == \[*\] ]]; then
            section=${line:1:${#line}-2}
        elif [[ $section == mux443 && $line =~ ^admin[[:space:]]*=[[:space:]]*(.+)$ ]]; then
            addr=${BASH_REMATCH[1]}
        fi
    done <"$conf"
fi
if [[ -z $addr ]]; then
    echo "healthcheck: no admin listener: set admin = 127.0.0.1:9443 in [mux443] of $conf (or MUX443_ADMIN)" >&2
    exit 1
fi
host=${addr%:*}
port=${addr##*:}
host=${host#[}
host=${host%]}
[[ $host == 0.0.0.0 ]] && host=127.0.0.1
[[ $host == :: ]] && host=::1

# /dev/tcp has no timeout of its own; HEALTHCHECK --timeout kills us as well.
if ! exec 3<>"/dev/tcp/$host/$port"; then
    echo "healthcheck: cannot connect to the admin listener $addr" >&2
    exit 1
fi
printf 'GET /healthz HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
status=""
IFS= read -r -t 4 status <&3 || true
exec 3<&-
status=${status%$'\r'}
if [[ $status =~ ^HTTP/1\.[01]\ 200($|\ ) ]]; then
    exit 0
fi
echo "healthcheck: GET /healthz on $addr: ${status:-no answer}" >&2
exit 1
