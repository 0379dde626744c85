# Turns results.txt ("REP SCEN PEER key=value ...") into markdown tables: medians with
# min-max over the repetitions, and ratios to the best peer (HAProxy, nginx, sslh, hitch,
# stunnel: not mux443, not the physical limits `direct` and `openssl`, not a peer that
# lost connections in the scenario). Portable awk.

function add(s, p, k, v) {
    key = s SUBSEP p SUBSEP k
    n[key]++
    val[key, n[key]] = v
    if (!((s, p) in seenp)) { seenp[s, p] = 1; order[s] = order[s] " " p }
}
function sortv(key,    i, j, t, c) {
    c = n[key]
    for (i = 1; i <= c; i++) sv[i] = val[key, i] + 0
    for (i = 2; i <= c; i++) { t = sv[i]; for (j = i - 1; j >= 1 && sv[j] > t; j--) sv[j + 1] = sv[j]; sv[j + 1] = t }
    return c
}
function med(s, p, k,    c, key) {
    key = s SUBSEP p SUBSEP k
    if (!(key in n)) return ""
    c = sortv(key)
    return (c % 2) ? sv[(c + 1) / 2] : (sv[c / 2] + sv[c / 2 + 1]) / 2
}
function fmt(x) {
    if (x == "") return "–"
    if (x >= 100 || x <= -100) return sprintf("%.0f", x)
    if (x >= 10 || x <= -10) return sprintf("%.1f", x)
    return sprintf("%.2f", x)
}
function cell(s, p, k,    c, key, m) {
    key = s SUBSEP p SUBSEP k
    if (!(key in n)) return "–"
    m = med(s, p, k)
    c = sortv(key)
    if (c == 1) return fmt(m)
    return fmt(m) " (" fmt(sv[1]) "–" fmt(sv[c]) ")"
}
function ispeer(p) { return p == "haproxy" || p == "nginx" || p == "sslh" || p == "hitch" || p == "stunnel" }
# 1 if a peer lost connections in any repetition of scenario s (errors, or a run that
# failed): such a peer is not a candidate for the best peer (issue 14's rule).
function lossy(s, p,    key, i) {
    if (failed[s, p]) return 1
    key = s SUBSEP p SUBSEP "err"
    if (!(key in n)) return 0
    for (i = 1; i <= n[key]; i++) if (val[key, i] + 0 > 0) return 1
    return 0
}
# best peer's median for key k among the peers without lost connections; hi=1: higher
# is better
function best(s, k, hi,    i, np, ps, b, m, bp) {
    np = split(order[s], ps, " ")
    b = ""; bp = ""
    for (i = 1; i <= np; i++) {
        if (!ispeer(ps[i]) || lossy(s, ps[i])) continue
        m = med(s, ps[i], k)
        if (m == "" || m + 0 <= 0) continue
        if (b == "" || (hi && m + 0 > b + 0) || (!hi && m + 0 < b + 0)) { b = m; bp = ps[i] }
    }
    bestname = bp
    return b
}
function ratio(s, p, k, hi,    b, m) {
    b = best(s, k, hi)
    m = med(s, p, k)
    if (b == "" || m == "" || b + 0 == 0) return "–"
    return sprintf("%.2f", m / b)
}
# one table: columns given as "key:title:hi" (hi = 1, 0; r = also a ratio column)
function table(s, title, cols,    nc, cs, i, np, ps, f, line, hdr, sep) {
    if (!(s in order)) return
    print "### " title
    print ""
    nc = split(cols, cs, ";")
    hdr = "| proxy |"; sep = "|---|"
    for (i = 1; i <= nc; i++) {
        split(cs[i], f, ":")
        hdr = hdr " " f[2] " |"; sep = sep "---|"
        if (f[4] == "r") { best(s, f[1], f[3]); hdr = hdr " × best peer (" bestname ") |"; sep = sep "---|" }
    }
    print hdr; print sep
    np = split(order[s], ps, " ")
    for (i = 1; i <= np; i++) {
        line = "| " ps[i] (failed[s, ps[i]] ? " (" failed[s, ps[i]] " failed)" : "") " |"
        for (j = 1; j <= nc; j++) {
            split(cs[j], f, ":")
            line = line " " cell(s, ps[i], f[1]) " |"
            if (f[4] == "r") line = line " " ratio(s, ps[i], f[1], f[3]) " |"
        }
        print line
    }
    print ""
}
{
    s = $2; p = $3
    for (i = 4; i <= NF; i++) {
        eq = index($i, "=")
        if (!eq) continue
        k = substr($i, 1, eq - 1); v = substr($i, eq + 1)
        sub(/%$/, "", v)
        if (k == "failed" && NF == 4) { failed[s, p]++; if (!((s, p) in seenp)) { seenp[s, p] = 1; order[s] = order[s] " " p }; continue }
        add(s, p, k, v)
        if (k == "mbps") add(s, p, "gbps", v / 1000)
        if (k == "proxy_us_per" && (s == "S3" || s == "S9t") && v > 0) add(s, p, "cap", 1e6 / v)
        if (k == "bytes_per_conn") add(s, p, "kib", v / 1024)
    }
}
END {
    table("S1", "S1 TLS passthrough bulk (ClientHello + SNI, then bytes over 4 connections)",
          "mbps:MB/s:1:r;proxy_s_per_gb:proxy CPU s/GB:0:r;machine_s_per_gb:machine CPU s/GB:0:r;gen_core:generator core %:0;other_cpu:other CPU %:0;err:errors:0")
    table("S2", "S2 short connections with detection (ClientHello + SNI, 1 KiB reply, close; 64 concurrent)",
          "rate:conn/s:1:r;p99_us:p99 µs:0;proxy_us_per:proxy CPU µs/conn:0:r;machine_us_per:machine CPU µs/conn:0:r;gen_core:generator core %:0;proxy_core:proxy core %:0;other_cpu:other CPU %:0;err:errors:0")
    table("S3", "S3 TLS 1.3 termination, ECDSA P-256, no resumption (handshake + 64-byte request/reply)",
          "rate:handshakes/s:1:r;proxy_us_per:proxy CPU µs/handshake:0:r;machine_us_per:machine CPU µs/handshake:0:r;cap:handshakes/s per core (10⁶/CPU µs):1:r;gen_core:generator core %:0;proxy_core:proxy core %:0;other_cpu:other CPU %:0;err:errors:0")
    table("S4", "S4 bulk through terminated TLS (4 connections, client → sink)",
          "mbps:MB/s:1:r;proxy_s_per_gb:proxy CPU s/GB:0:r;machine_s_per_gb:machine CPU s/GB:0:r;gen_core:generator core %:0;proxy_core:proxy core %:0;other_cpu:other CPU %:0;err:errors:0")
    table("S5p", "S5 memory per idle connection, TLS passthrough (process tree RSS)",
          "bytes_per_conn:bytes/conn:0:r;up:connections:1")
    table("S5t", "S5 memory per idle connection, terminated TLS (process tree RSS)",
          "bytes_per_conn:bytes/conn:0:r;up:connections:1")
    table("S3r", "S3r as S3 with a binary plain text no probe recognises (the generic terminate-and-forward path)",
          "rate:handshakes/s:1:r;proxy_us_per:proxy CPU µs/handshake:0:r;gen_core:generator core %:0;proxy_core:proxy core %:0;other_cpu:other CPU %:0;err:errors:0")
    table("S4r", "S4r as S4 with a binary plain text (generic path)",
          "mbps:MB/s:1:r;proxy_s_per_gb:proxy CPU s/GB:0:r;gen_core:generator core %:0;proxy_core:proxy core %:0;other_cpu:other CPU %:0;err:errors:0")
    table("S5r", "S5r as S5t with a binary plain text (generic path)",
          "bytes_per_conn:bytes/conn:0:r;up:connections:1")
    table("S6", "S6 latency, 64-byte ping-pong through passthrough (one connection)",
          "p50_us:p50 µs:0;p99_us:p99 µs:0:r;p999_us:p99.9 µs:0;proxy_us_per:proxy CPU µs/ping-pong:0;machine_us_per:machine CPU µs/ping-pong:0;other_cpu:other CPU %:0")
    if ("S6" in order && med("S6", "direct", "p50_us") != "") {
        np = split(order["S6"], ps, " ")
        print "Added latency (minus direct): " 
        for (i = 1; i <= np; i++) if (ps[i] != "direct")
            printf("%s p50 +%.1f µs, p99 +%.1f µs; ", ps[i], med("S6", ps[i], "p50_us") - med("S6", "direct", "p50_us"),
                   med("S6", ps[i], "p99_us") - med("S6", "direct", "p99_us"))
        print ""; print ""
    }
    if (med("S6", "mux443k", "p50_us") != "" && med("S6", "direct-xcore", "p50_us") != "")
        printf("Kernel relay: mux443k p50 %.1f µs, direct-xcore %.1f µs (target: below direct-xcore), mux443 (user space) %s µs.\n\n",
               med("S6", "mux443k", "p50_us"), med("S6", "direct-xcore", "p50_us"), fmt(med("S6", "mux443", "p50_us")))
    table("S7", "S7 STUN/TURN-over-TCP detection (Binding request, response, close; 64 concurrent)",
          "rate:conn/s:1:r;p99_us:p99 µs:0;proxy_us_per:proxy CPU µs/conn:0:r;machine_us_per:machine CPU µs/conn:0:r;gen_core:generator core %:0;proxy_core:proxy core %:0;other_cpu:other CPU %:0;err:errors:0")
    table("S8", "S8 ICE-TCP detection + ufrag routing (RFC 4571 Binding request, two ufrags, two backends)",
          "rate:conn/s:1:r;p99_us:p99 µs:0;proxy_us_per:proxy CPU µs/conn:0:r;machine_us_per:machine CPU µs/conn:0:r;badroute:misrouted:0;gen_core:generator core %:0;proxy_core:proxy core %:0;other_cpu:other CPU %:0;err:errors:0")
    table("S11", "S11 UDP relay: 200-byte datagrams over 1,000 flows, one in flight per flow (closed loop)",
          "rate:datagrams/s:1;per_core:datagrams per proxy CPU second:1:r;proxy_us_per:proxy CPU µs/datagram:0:r;machine_us_per:machine CPU µs/datagram:0:r;p50_us:p50 µs:0;p99_us:p99 µs:0;gen_core:generator core %:0;proxy_core:proxy core %:0;other_cpu:other CPU %:0")
    table("S11p", "S11 paced: each flow sends its next datagram 100 ms after the answer (20,000 datagrams/s)",
          "p50_us:p50 µs:0:r;p99_us:p99 µs:0:r;machine_us_per:machine CPU µs/datagram:0:r;resent:resent:0;other_cpu:other CPU %:0")
    table("S9", "S9 mux443 two workers (cores 0+1) vs one (core 0): S2 workload",
          "rate:conn/s:1;proxy_us_per:proxy CPU µs/conn:0;machine_us_per:machine CPU µs/conn:0;gen_core:generator core %:0;proxy_core:proxy cores %:0;other_cpu:other CPU %:0")
    table("S9t", "S9 mux443 two workers vs one: S3 workload (TLS handshakes)",
          "rate:handshakes/s:1;proxy_us_per:proxy CPU µs/handshake:0;machine_us_per:machine CPU µs/handshake:0;gen_core:generator core %:0;proxy_core:proxy cores %:0;other_cpu:other CPU %:0")
    table("S10h", "S10 trickled detection: 24 KiB HTTP request head, at once vs one byte per send()",
          "once_us_per_kib:at once, proxy CPU µs/KiB:0;trickled_us_per_kib:trickled, µs/KiB:0;ratio:trickled / at once:0;trickled_us_per_seg:trickled, µs/send:0;growth:µs/KiB, full / quarter size:0;other_cpu:other CPU %:0;err:errors:0")
    table("S10c", "S10 trickled detection: 2000-byte ClientHello (Chromium size), at once vs one byte per send()",
          "once_us_per_kib:at once, proxy CPU µs/KiB:0:r;trickled_us_per_kib:trickled, µs/KiB:0:r;ratio:trickled / at once:0;trickled_us_per_seg:trickled, µs/send:0;growth:µs/KiB, full / quarter size:0;other_cpu:other CPU %:0;err:errors:0")
    if (med("S9", "mux443", "rate") > 0 && med("S9", "mux443w2", "rate") != "")
        printf("S9 scaling: short connections %.2fx, handshakes %.2fx (two workers / one).\n\n",
               med("S9", "mux443w2", "rate") / med("S9", "mux443", "rate"),
               med("S9t", "mux443", "rate") > 0 ? med("S9t", "mux443w2", "rate") / med("S9t", "mux443", "rate") : 0)
}
