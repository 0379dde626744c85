/* SIP probe: the first line of a SIP message, request or status (RFC 3261 section 7.1,
 * 25.1). Only the line is parsed: it says SIP and carries what rules route on. */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "mux443/lib/probe_sip.h"

static const char version[] = "SIP/2.0";

/* RFC 3261 token characters. */
static bool is_token(uint8_t c)
{
    return isalnum(c) || (c && strchr("-.!%*_+`'~", c));
}

/* p[0..n) against the start of lit (case-insensitive): 1 equal, 0 a prefix of it so far,
 * -1 different. */
static int starts(const uint8_t *p, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    size_t k = n < l ? n : l;

    if (strncasecmp((const char *)p, lit, k) != 0)
        return -1;
    return n >= l ? 1 : 0;
}

/* The end of the first line: index of its LF (after CR), or 0 when not there yet. */
static size_t line_end(const uint8_t *p, size_t n, size_t from)
{
    for (size_t i = from; i < n; i++)
        if (p[i] == '\n')
            return i;
    return 0;
}

/* The Request-URI host of a sip:/sips: URI (text after the scheme, len bytes). */
static void uri_host(const uint8_t *u, size_t len, struct probe_out *out)
{
    size_t start = 0, end;

    for (size_t i = 0; i < len && u[i] != '?'; i++)
        if (u[i] == '@')
            start = i + 1;
    end = start;
    if (end < len && u[end] == '[') {
        while (end < len && u[end] != ']')
            end++;
        end += end < len; /* keep the ']' */
    } else {
        while (end < len && u[end] != ':' && u[end] != ';' && u[end] != '?')
            end++;
    }
    size_t hl = end - start;
    if (hl > PROBE_NAME_MAX) {
        hl = PROBE_NAME_MAX;
        out->host_cut = true;
    }
    memcpy(out->host, u + start, hl);
    out->host[hl] = '\0';
    out->host_len = (uint16_t)hl;
}

/* "SIP/2.0 200 Reason\r\n". */
static enum probe_result status_line(const uint8_t *p, size_t n, struct probe_out *out)
{
    int v = starts(p, n, version);

    if (v < 0)
        return PROBE_NOMATCH;
    if (v == 0 || n == sizeof(version) - 1)
        return PROBE_AGAIN;
    if (p[7] != ' ')
        return PROBE_NOMATCH;
    for (size_t i = 8; i < 11; i++) {
        if (i >= n)
            return PROBE_AGAIN;
        if (!isdigit(p[i]))
            return PROBE_NOMATCH;
    }
    if (n == 11)
        return PROBE_AGAIN;
    if (p[11] != ' ')
        return PROBE_NOMATCH;
    size_t lf = line_end(p, n, 12);
    if (!lf)
        return n >= PROBE_SIP_LINE_MAX ? PROBE_NOMATCH : PROBE_AGAIN;
    if (p[lf - 1] != '\r')
        return PROBE_NOMATCH;
    out->sip_response = true;
    out->consumed = lf + 1;
    return PROBE_MATCH;
}

/* "METHOD sip:user@host;params SIP/2.0\r\n". */
static enum probe_result request_line(const uint8_t *p, size_t n, struct probe_out *out)
{
    static const char *const schemes[] = {"sip:", "sips:", "tel:"};
    size_t i = 0, uri, s;

    while (i < n && is_token(p[i]))
        i++;
    if (i == n)
        return i > 32 ? PROBE_NOMATCH : PROBE_AGAIN;
    if (i == 0 || i > 32 || p[i] != ' ')
        return PROBE_NOMATCH;
    size_t ml = i < sizeof(out->method) ? i : sizeof(out->method) - 1;
    memcpy(out->method, p, ml);
    out->method[ml] = '\0';
    uri = ++i;

    /* The scheme decides early that "GET / HTTP/1.1" is not SIP. */
    bool again = false;
    for (s = 0; s < sizeof(schemes) / sizeof(schemes[0]); s++) {
        int r = starts(p + uri, n - uri, schemes[s]);
        if (r > 0)
            break;
        again |= r == 0;
    }
    if (s == sizeof(schemes) / sizeof(schemes[0]))
        return again ? PROBE_AGAIN : PROBE_NOMATCH;

    /* The URI: visible characters up to one SP; then the version and CRLF. */
    for (i = uri; i < n && p[i] > 0x20 && p[i] < 0x7f; i++)
        ;
    if (i == n)
        return n >= PROBE_SIP_LINE_MAX ? PROBE_NOMATCH : PROBE_AGAIN;
    if (p[i] != ' ')
        return PROBE_NOMATCH;
    size_t uri_end = i++;
    int v = starts(p + i, n - i, version);
    if (v <= 0)
        return v < 0 ? PROBE_NOMATCH : PROBE_AGAIN;
    i += sizeof(version) - 1;
    if (i + 2 > n)
        return (i == n || p[i] == '\r') ? PROBE_AGAIN : PROBE_NOMATCH;
    if (p[i] != '\r' || p[i + 1] != '\n')
        return PROBE_NOMATCH;
    if (s != 2) { /* tel: names no host */
        size_t off = uri + strlen(schemes[s]);
        uri_host(p + off, uri_end - off, out);
    }
    out->consumed = i + 2;
    return PROBE_MATCH;
}

enum probe_result probe_sip(const uint8_t *p, size_t n, struct probe_out *out)
{
    memset(out, 0, sizeof(*out));
    if (n == 0)
        return PROBE_AGAIN;

    enum probe_result st = status_line(p, n, out);
    if (st == PROBE_MATCH)
        goto match;
    memset(out, 0, sizeof(*out));
    enum probe_result rq = request_line(p, n, out);
    if (rq == PROBE_MATCH)
        goto match;
    memset(out, 0, sizeof(*out));
    if (st == PROBE_AGAIN || rq == PROBE_AGAIN)
        return PROBE_AGAIN;
    out->why = "not a SIP request or status line";
    return PROBE_NOMATCH;
match:
    out->cls = CLASS_SIP;
    return PROBE_MATCH;
}

enum probe_result probe_sip_step(struct probe_state *st, const uint8_t *p, size_t n,
                                 struct probe_out *out, size_t *need)
{
    (void)st;
    (void)need;
    PROBE_WORK(n < PROBE_SIP_LINE_MAX ? n : PROBE_SIP_LINE_MAX);
    return probe_sip(p, n, out);
}
