/* PROXY protocol v1/v2 (HAProxy proxy-protocol.txt): strict parsing of an inbound
 * header from a trusted load balancer, and building the header sent to backends. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "mux443/lib/proxy_proto.h"

static const uint8_t v2_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                   0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

#define V2_HEADER 16
/* Bound on a whole v2 header (TLVs included). The format allows 64 KiB; real load
 * balancers send well under 1 KiB (AWS, GCP, HAProxy with SSL TLVs), and a bound keeps
 * a hostile or broken peer from making us buffer that much before detection. */
#define V2_MAX 4096

static const char v1_prefix[] = "PROXY ";

static void set_v4(struct sockaddr_storage *ss, const uint8_t addr[4], uint16_t port)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;

    memset(ss, 0, sizeof(*ss));
    sin->sin_family = AF_INET;
    memcpy(&sin->sin_addr, addr, 4);
    sin->sin_port = htons(port);
}

static void set_v6(struct sockaddr_storage *ss, const uint8_t addr[16], uint16_t port)
{
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

    memset(ss, 0, sizeof(*ss));
    sin6->sin6_family = AF_INET6;
    memcpy(&sin6->sin6_addr, addr, 16);
    sin6->sin6_port = htons(port);
}

/* Decimal 0..65535, no sign, no leading zero (the spec's format, and what HAProxy sends). */
static bool parse_port(const char *s, size_t len, uint16_t *port)
{
    unsigned v = 0;

    if (len == 0 || len > 5 || (len > 1 && s[0] == '0'))
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > 65535)
        return false;
    *port = (uint16_t)v;
    return true;
}

static bool parse_addr(int family, const char *s, size_t len, uint8_t *addr)
{
    char tmp[INET6_ADDRSTRLEN];

    if (len == 0 || len >= sizeof(tmp))
        return false;
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    return inet_pton(family, tmp, addr) == 1;
}

/* "PROXY TCP4 1.2.3.4 5.6.7.8 1234 443\r\n": exactly single spaces, nothing else. */
static enum probe_result parse_v1(const uint8_t *p, size_t n, struct proxy_info *out,
                                  const char **why)
{
    const char *line = (const char *)p, *f[5];
    size_t flen[5], end = 0, nf = 0, start;
    int family;
    uint8_t src[16], dst[16];
    uint16_t sport, dport;

    for (size_t i = 0; i < n && i < sizeof(v1_prefix) - 1; i++) {
        if (p[i] != (uint8_t)v1_prefix[i]) {
            *why = "not a PROXY protocol header";
            return PROBE_NOMATCH;
        }
    }
    for (; end < n && end < PROXY_V1_MAX && p[end] != '\r'; end++) {
        if (p[end] == '\n' || p[end] == '\0') {
            *why = "PROXY v1: control byte in the header line";
            return PROBE_NOMATCH;
        }
    }
    if (end + 2 > PROXY_V1_MAX) { /* the line would be end + CR + LF bytes */
        *why = "PROXY v1: line longer than 107 bytes";
        return PROBE_NOMATCH;
    }
    if (end + 1 >= n) {
        out->need = n + 1; /* each byte may end the line, or break it */
        return PROBE_AGAIN;
    }
    if (p[end + 1] != '\n') {
        *why = "PROXY v1: CR not followed by LF";
        return PROBE_NOMATCH;
    }

    start = sizeof(v1_prefix) - 1;
    for (size_t i = start; i <= end; i++) {
        if (i == end || line[i] == ' ') {
            if (nf == 5 || i == start) {
                *why = "PROXY v1: bad field layout";
                return PROBE_NOMATCH;
            }
            f[nf] = line + start;
            flen[nf++] = i - start;
            start = i + 1;
            /* UNKNOWN may be followed by anything (the spec says to ignore it). */
            if (nf == 1 && flen[0] == 7 && memcmp(f[0], "UNKNOWN", 7) == 0)
                break;
        }
    }
    memset(out, 0, sizeof(*out));
    out->hdr_len = end + 2;
    if (flen[0] == 7 && memcmp(f[0], "UNKNOWN", 7) == 0) {
        out->local = 1;
        return PROBE_MATCH;
    }
    if (flen[0] == 4 && memcmp(f[0], "TCP4", 4) == 0)
        family = AF_INET;
    else if (flen[0] == 4 && memcmp(f[0], "TCP6", 4) == 0)
        family = AF_INET6;
    else {
        *why = "PROXY v1: unknown protocol";
        return PROBE_NOMATCH;
    }
    if (nf != 5) {
        *why = "PROXY v1: bad field layout";
        return PROBE_NOMATCH;
    }
    if (!parse_addr(family, f[1], flen[1], src) || !parse_addr(family, f[2], flen[2], dst)) {
        *why = "PROXY v1: bad address";
        return PROBE_NOMATCH;
    }
    if (!parse_port(f[3], flen[3], &sport) || !parse_port(f[4], flen[4], &dport)) {
        *why = "PROXY v1: bad port";
        return PROBE_NOMATCH;
    }
    if (family == AF_INET) {
        set_v4(&out->src, src, sport);
        set_v4(&out->dst, dst, dport);
    } else {
        set_v6(&out->src, src, sport);
        set_v6(&out->dst, dst, dport);
    }
    return PROBE_MATCH;
}

static enum probe_result parse_v2(const uint8_t *p, size_t n, struct proxy_info *out,
                                  const char **why)
{
    size_t len, addr_len, pos;
    unsigned cmd, fam;

    for (size_t i = 0; i < n && i < sizeof(v2_sig); i++) {
        if (p[i] != v2_sig[i]) {
            *why = "not a PROXY protocol header";
            return PROBE_NOMATCH;
        }
    }
    if (n > 12 && p[12] != 0x20 && p[12] != 0x21) {
        *why = "PROXY v2: bad version or command";
        return PROBE_NOMATCH;
    }
    if (n < V2_HEADER) {
        out->need = n + 1; /* the signature and version are checked byte by byte */
        return PROBE_AGAIN;
    }
    cmd = p[12] & 0x0f;
    fam = p[13];
    len = (size_t)p[14] << 8 | p[15];
    switch (fam) {
    case 0x00: /* UNSPEC */
        addr_len = 0;
        break;
    case 0x11: /* TCP over IPv4 */
    case 0x12: /* UDP over IPv4 */
        addr_len = 12;
        break;
    case 0x21: /* TCP over IPv6 */
    case 0x22: /* UDP over IPv6 */
        addr_len = 36;
        break;
    case 0x31: /* UNIX stream */
    case 0x32: /* UNIX datagram */
        addr_len = 216;
        break;
    default:
        *why = "PROXY v2: bad address family";
        return PROBE_NOMATCH;
    }
    if (V2_HEADER + len > V2_MAX) {
        *why = "PROXY v2: header longer than 4096 bytes";
        return PROBE_NOMATCH;
    }
    /* A LOCAL header's address block is to be ignored, but still cannot overrun it. */
    if (len < addr_len) {
        *why = "PROXY v2: address block longer than the header";
        return PROBE_NOMATCH;
    }
    if (n < V2_HEADER + len) {
        out->need = V2_HEADER + len; /* nothing more is checked before the whole header */
        return PROBE_AGAIN;
    }
    /* TLVs (type, 16-bit length, value) fill the rest exactly. */
    for (pos = V2_HEADER + addr_len; pos < V2_HEADER + len;) {
        size_t tlen;

        if (V2_HEADER + len - pos < 3) {
            *why = "PROXY v2: truncated TLV";
            return PROBE_NOMATCH;
        }
        tlen = (size_t)p[pos + 1] << 8 | p[pos + 2];
        if (tlen > V2_HEADER + len - pos - 3) {
            *why = "PROXY v2: TLV overruns the header";
            return PROBE_NOMATCH;
        }
        pos += 3 + tlen;
    }

    memset(out, 0, sizeof(*out));
    out->hdr_len = V2_HEADER + len;
    /* LOCAL (health checks), UNSPEC, UDP and UNIX: keep the socket's own addresses. */
    if (cmd == 0 || (fam != 0x11 && fam != 0x21)) {
        out->local = 1;
        return PROBE_MATCH;
    }
    if (fam == 0x11) {
        set_v4(&out->src, p + 16, (uint16_t)(p[24] << 8 | p[25]));
        set_v4(&out->dst, p + 20, (uint16_t)(p[26] << 8 | p[27]));
    } else {
        set_v6(&out->src, p + 16, (uint16_t)(p[48] << 8 | p[49]));
        set_v6(&out->dst, p + 32, (uint16_t)(p[50] << 8 | p[51]));
    }
    return PROBE_MATCH;
}

enum probe_result proxy_parse(const uint8_t *p, size_t n, struct proxy_info *out, const char **why)
{
    const char *dummy;

    if (why == NULL)
        why = &dummy;
    *why = NULL;
    if (n == 0) {
        out->need = 1;
        return PROBE_AGAIN;
    }
    if (p[0] == 'P')
        return parse_v1(p, n, out, why);
    if (p[0] == 0x0d)
        return parse_v2(p, n, out, why);
    *why = "not a PROXY protocol header";
    return PROBE_NOMATCH;
}

/* Family, address bytes and port of a TCP endpoint; v4-mapped IPv6 becomes IPv4 so that a
 * dual-stack listener's clients are described the way an IPv4 backend expects. */
struct endpoint {
    int family; /* AF_INET, AF_INET6, or 0 when not expressible */
    uint8_t addr[16];
    uint16_t port;
};

static void endpoint_of(const struct sockaddr *sa, struct endpoint *ep)
{
    memset(ep, 0, sizeof(*ep));
    if (sa == NULL)
        return;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

        ep->family = AF_INET;
        memcpy(ep->addr, &sin->sin_addr, 4);
        ep->port = ntohs(sin->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
            ep->family = AF_INET;
            memcpy(ep->addr, sin6->sin6_addr.s6_addr + 12, 4);
        } else {
            ep->family = AF_INET6;
            memcpy(ep->addr, &sin6->sin6_addr, 16);
        }
        ep->port = ntohs(sin6->sin6_port);
    }
}

static size_t build_v1(uint8_t *buf, size_t cap, const struct endpoint *s, const struct endpoint *d,
                       bool ok)
{
    char line[PROXY_V1_MAX + 1], sa[INET6_ADDRSTRLEN], da[INET6_ADDRSTRLEN];
    int len;

    if (!ok) {
        len = snprintf(line, sizeof(line), "PROXY UNKNOWN\r\n");
    } else {
        inet_ntop(s->family, s->addr, sa, sizeof(sa));
        inet_ntop(d->family, d->addr, da, sizeof(da));
        len = snprintf(line, sizeof(line), "PROXY %s %s %s %u %u\r\n",
                       s->family == AF_INET ? "TCP4" : "TCP6", sa, da, (unsigned)s->port,
                       (unsigned)d->port);
    }
    if (len < 0 || (size_t)len >= sizeof(line) || (size_t)len > cap)
        return 0;
    memcpy(buf, line, (size_t)len);
    return (size_t)len;
}

static size_t build_v2(uint8_t *buf, size_t cap, const struct endpoint *s, const struct endpoint *d,
                       bool ok)
{
    size_t alen = !ok ? 0 : s->family == AF_INET ? 12 : 36, a = ok ? alen / 2 - 2 : 0;

    if (cap < V2_HEADER + alen)
        return 0;
    memcpy(buf, v2_sig, sizeof(v2_sig));
    buf[12] = ok ? 0x21 : 0x20;
    buf[13] = !ok ? 0x00 : s->family == AF_INET ? 0x11 : 0x21;
    buf[14] = 0;
    buf[15] = (uint8_t)alen;
    if (ok) {
        /* src addr, dst addr, src port, dst port; a = address size */
        memcpy(buf + V2_HEADER, s->addr, a);
        memcpy(buf + V2_HEADER + a, d->addr, a);
        buf[V2_HEADER + 2 * a] = (uint8_t)(s->port >> 8);
        buf[V2_HEADER + 2 * a + 1] = (uint8_t)s->port;
        buf[V2_HEADER + 2 * a + 2] = (uint8_t)(d->port >> 8);
        buf[V2_HEADER + 2 * a + 3] = (uint8_t)d->port;
    }
    return V2_HEADER + alen;
}

size_t proxy_build(uint8_t *buf, size_t cap, int version, const struct sockaddr *src,
                   const struct sockaddr *dst)
{
    struct endpoint s, d;
    bool ok;

    endpoint_of(src, &s);
    endpoint_of(dst, &d);
    ok = s.family != 0 && s.family == d.family;
    if (version == 1)
        return build_v1(buf, cap, &s, &d, ok);
    if (version == 2)
        return build_v2(buf, cap, &s, &d, ok);
    return 0; /* no such version: nothing written */
}

enum probe_result proxy_signature(const uint8_t *p, size_t n)
{
    static const uint8_t v1[] = "PROXY ", v2[] = "\r\n\r\n\0\r\nQUIT\n";
    const uint8_t *sigs[2] = {v1, v2};
    const size_t lens[2] = {sizeof(v1) - 1, sizeof(v2) - 1};
    enum probe_result r = PROBE_NOMATCH;

    for (int i = 0; i < 2; i++) {
        size_t m = n < lens[i] ? n : lens[i];
        if (memcmp(p, sigs[i], m) == 0)
            return m == lens[i] ? PROBE_MATCH : PROBE_AGAIN;
    }
    return r;
}
