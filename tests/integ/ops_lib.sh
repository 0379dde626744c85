# shellcheck shell=bash
# Helpers shared by the production-operations cases (tests/integ/ops_*.sh), sourced
# after lib.sh. Not a case itself.
#   admin_get PORT PATH OUT        GET http://127.0.0.1:PORT/PATH into OUT; prints the status
#   metrics PORT OUT               /metrics into OUT (fails unless 200)
#   mval FILE SERIES               the value of SERIES (exact text: name{labels}) in FILE,
#                                  or "absent"
#   wait_metric PORT SERIES OP N [SECONDS]
#                                  polls /metrics until SERIES OP N (OP: -eq -ge -gt ...)
#   http_body PORT PATH [HOST]     GET through mux443 with curl; prints the body (or "")
#   cpu_ticks PID                  utime + stime of PID, in clock ticks

admin_get() {
    curl -s -o "$3" -w '%{http_code}' --max-time 5 "http://127.0.0.1:$1$2" || echo 000
}

metrics() {
    local code
    code=$(admin_get "$1" /metrics "$2")
    [[ $code == 200 ]] || fail "/metrics answered $code"
}

mval() {
    local v
    v=$(grep -F -- "$2 " "$1" | awk -v s="$2" '$1 == s { print $2; exit }')
    echo "${v:-absent}"
}

_cmp() { # A OP B, OP one of -eq -ne -lt -le -gt -ge
    case $2 in
    -eq) (($1 == $3)) ;;
    -ne) (($1 != $3)) ;;
    -lt) (($1 < $3)) ;;
    -le) (($1 <= $3)) ;;
    -gt) (($1 > $3)) ;;
    -ge) (($1 >= $3)) ;;
    *) fail "wait_metric: unknown operator $2" ;;
    esac
}

wait_metric() {
    local port=$1 series=$2 op=$3 n=$4 secs=${5:-15} deadline v
    deadline=$((SECONDS + secs))
    while :; do
        metrics "$port" "$T/wait_metric.prom"
        v=$(mval "$T/wait_metric.prom" "$series")
        if [[ $v != absent ]] && _cmp "${v%.*}" "$op" "$n"; then
            return 0
        fi
        ((SECONDS < deadline)) || fail "timed out waiting for $series $op $n (last: $v)"
        sleep 0.1
    done
}

http_body() {
    curl -s --max-time 5 ${3:+-H "Host: $3"} "http://127.0.0.1:$1$2" || true
}

cpu_ticks() {
    # Fields 14 and 15 of /proc/PID/stat; the command name (field 2) may hold spaces.
    local s
    s=$(cat "/proc/$1/stat")
    s=${s##*) }
    awk '{ print $12 + $13 }' <<<"$s"
}
