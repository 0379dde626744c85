/* Shared checks for the probe fuzz targets: invariants of a probe result, determinism,
 * and prefix consistency (a prefix never MATCHes with different fields). */
#ifndef MUX443_FUZZ_CHECK_H
#define MUX443_FUZZ_CHECK_H

#include <stdlib.h>
#include <string.h>

#include "mux443/lib/probe.h"

typedef enum probe_result (*fuzz_probe_fn)(const uint8_t *p, size_t n, struct probe_out *out);

/* abort() rather than assert(): checks must survive NDEBUG builds. */
#define FUZZ_CHECK(c)                                                                              \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

static inline void fuzz_check_out(enum probe_result r, const struct probe_out *o, size_t n)
{
    FUZZ_CHECK(r == PROBE_AGAIN || r == PROBE_MATCH || r == PROBE_NOMATCH);
    if (r != PROBE_MATCH)
        return;
    FUZZ_CHECK(o->cls > CLASS_NONE && o->cls < CLASS_UNKNOWN);
    FUZZ_CHECK(o->consumed > 0);
    FUZZ_CHECK(o->cls == CLASS_STUN || o->consumed <= n);
    FUZZ_CHECK(o->sni_len <= PROBE_NAME_MAX && o->sni[o->sni_len] == '\0');
    FUZZ_CHECK(strlen(o->sni) == o->sni_len);
    FUZZ_CHECK(o->alpn_len <= PROBE_ALPN_MAX);
    for (size_t pos = 0; pos < o->alpn_len; pos += 1u + o->alpn[pos])
        FUZZ_CHECK(o->alpn[pos] > 0 && pos + 1u + o->alpn[pos] <= o->alpn_len);
    FUZZ_CHECK(o->host_len <= PROBE_NAME_MAX && o->host[o->host_len] == '\0');
    FUZZ_CHECK(o->path_len <= PROBE_PATH_MAX && o->path[o->path_len] == '\0');
    FUZZ_CHECK(o->ufrag_len <= PROBE_UFRAG_MAX && o->ufrag[o->ufrag_len] == '\0');
    FUZZ_CHECK(o->cufrag_len <= PROBE_UFRAG_MAX && o->cufrag[o->cufrag_len] == '\0');
    FUZZ_CHECK(memchr(o->method, '\0', sizeof(o->method)) != NULL);
}

static inline void fuzz_check_probe(fuzz_probe_fn fn, const uint8_t *data, size_t size)
{
    static struct probe_out a, b;
    enum probe_result ra, rb;
    uint8_t *copy = malloc(size ? size : 1);
    char alpn[4 * PROBE_ALPN_MAX + 1];

    if (copy == NULL)
        return;
    memcpy(copy, data, size);
    ra = fn(copy, size, &a);
    fuzz_check_out(ra, &a, size);
    rb = fn(copy, size, &b);
    FUZZ_CHECK(ra == rb && a.cls == b.cls && a.consumed == b.consumed);
    if (ra == PROBE_MATCH) {
        probe_alpn_format(&a, alpn, sizeof(alpn));
        FUZZ_CHECK(strlen(alpn) < sizeof(alpn));
        /* A MATCH's unit ends at consumed: probing just that unit matches the same way. */
        if (a.consumed < size) {
            rb = fn(copy, a.consumed, &b);
            FUZZ_CHECK(rb == PROBE_MATCH && b.cls == a.cls && b.sni_len == a.sni_len &&
                       b.ufrag_len == a.ufrag_len && b.alpn_len == a.alpn_len);
        }
    }
    free(copy);
}

#endif
