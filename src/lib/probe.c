/* Probe dispatcher (every probe over the same bytes), class names, and the ALPN helpers
 * that routing and logging use on a probe's result. */
#include <string.h>

#include "mux443/lib/probe.h"
#include "mux443/lib/probe_mqtt.h"
#include "mux443/lib/probe_sip.h"
#include "mux443/lib/probe_ssh.h"

typedef enum probe_result (*probe_fn)(const uint8_t *p, size_t n, struct probe_out *out);

/* The classes' first bytes do not overlap (TLS 0x16 or >= 0x80, HTTP 'A'..'Z', STUN and
 * ICE-TCP < 0x40 with the cookie at different offsets), so at most one probe matches
 * and the order only decides whose work is skipped. */
/* SIP and SSH start with upper-case letters like HTTP: the SIP version "SIP/2.0" (not
 * "HTTP/1.x") and the sip:/sips:/tel: Request-URI, and "SSH-" (no HTTP or SIP token
 * is followed by '-' then a line end) tell them apart; each says NOMATCH on the others'
 * lines. MQTT's CONNECT starts 0x10 like a STUN/ICE-TCP length, but never has the STUN
 * cookie at offset 4 or 6. The first four entries' whys are reported by nomatch_why. */
static const probe_fn probes[] = {probe_tls, probe_http, probe_stun, probe_ice_tcp,
                                  probe_sip, probe_mqtt, probe_ssh};

static const char *const class_names[CLASS_COUNT] = {
    [CLASS_TLS] = "tls",         [CLASS_HTTP] = "http",       [CLASS_WEBSOCKET] = "websocket",
    [CLASS_STUN] = "stun",       [CLASS_ICE_TCP] = "ice-tcp", [CLASS_SIP] = "sip",
    [CLASS_MQTT] = "mqtt",       [CLASS_SSH] = "ssh",         [CLASS_UNKNOWN] = "unknown",
    [CLASS_TIMEOUT] = "timeout",
};

/* On NOMATCH, report the reason of the probe the first bytes pointed at, so that the log
 * says "bad TLS record length" rather than "not an HTTP method". */
static const char *nomatch_why(const uint8_t *p, size_t n, const char *const whys[])
{
    if (p[0] == 0x16 || (p[0] & 0x80))
        return whys[0];
    if (p[0] >= 'A' && p[0] <= 'Z')
        return whys[1];
    if ((p[0] & 0xc0) == 0) {
        if (n >= 6 && p[4] == 0x21 && p[5] == 0x12)
            return whys[2];
        if (n >= 8 && p[6] == 0x21 && p[7] == 0x12)
            return whys[3];
        return "no STUN magic cookie at offset 4 or 6";
    }
    return "first byte starts no known protocol";
}

void probe_state_init(struct probe_state *st)
{
    st->unused = 0;
}

enum probe_result probe_detect(struct probe_state *st, const uint8_t *p, size_t n,
                               struct probe_out *out)
{
    (void)st;
    const char *whys[sizeof(probes) / sizeof(probes[0])];
    bool again = false;

    for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
        enum probe_result r = probes[i](p, n, out);

        if (r == PROBE_MATCH)
            return r;
        if (r == PROBE_AGAIN)
            again = true;
        whys[i] = out->why;
    }
    memset(out, 0, sizeof(*out));
    if (again)
        return PROBE_AGAIN;
    out->cls = CLASS_UNKNOWN;
    out->why = nomatch_why(p, n, whys); /* n > 0: every probe answers AGAIN on n == 0 */
    return PROBE_NOMATCH;
}

const char *probe_class_name(enum mux_class cls)
{
    if ((unsigned)cls < CLASS_COUNT && class_names[cls] != NULL)
        return class_names[cls];
    return "none";
}

enum mux_class probe_class_from_name(const char *name)
{
    if (name == NULL)
        return CLASS_NONE;
    for (unsigned i = 0; i < CLASS_COUNT; i++) {
        if (class_names[i] != NULL && strcmp(class_names[i], name) == 0)
            return (enum mux_class)i;
    }
    return CLASS_NONE;
}

bool probe_alpn_offers(const struct probe_out *out, const char *proto, size_t len)
{
    size_t pos = 0, total = out->alpn_len;

    if (total > PROBE_ALPN_MAX)
        return false;
    while (pos < total) {
        size_t l = out->alpn[pos];

        if (l > total - pos - 1)
            return false; /* not produced by probe_tls: do not trust it */
        if (l == len && memcmp(out->alpn + pos + 1, proto, len) == 0)
            return true;
        pos += 1 + l;
    }
    return false;
}

char *probe_alpn_format(const struct probe_out *out, char *dst, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    size_t pos = 0, w = 0, total = out->alpn_len;

    if (cap == 0)
        return dst;
    if (total > PROBE_ALPN_MAX)
        total = PROBE_ALPN_MAX;
    while (pos < total) {
        size_t l = out->alpn[pos++];

        if (l > total - pos)
            l = total - pos;
        if (w > 0) {
            if (w + 1 >= cap)
                break;
            dst[w++] = ',';
        }
        for (size_t i = 0; i < l; i++) {
            uint8_t c = out->alpn[pos + i];
            /* ',' and '\' are escaped too, so the output reads back unambiguously. */
            bool plain = c >= 0x20 && c < 0x7f && c != ',' && c != '\\';

            if (plain && w + 1 < cap) {
                dst[w++] = (char)c;
            } else if (!plain && w + 4 < cap) {
                dst[w++] = '\\';
                dst[w++] = 'x';
                dst[w++] = hex[c >> 4];
                dst[w++] = hex[c & 15];
            } else {
                dst[w] = '\0';
                return dst;
            }
        }
        pos += l;
    }
    dst[w] = '\0';
    return dst;
}
