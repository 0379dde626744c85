/* What every probe shares: the ALPN helpers that routing and logging use on a probe's
 * result. */
#include <string.h>

#include "mux443/lib/probe.h"

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
