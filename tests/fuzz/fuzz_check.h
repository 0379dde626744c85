/* Shared checks for the probe fuzz targets: invariants of a probe result, determinism,
 * prefix consistency (a prefix never MATCHes with different fields), and incremental
 * detection against the one-shot answer (differential). */
#ifndef MUX443_FUZZ_CHECK_H
#define MUX443_FUZZ_CHECK_H

#include <stdlib.h>
#include <string.h>

#include "mux443/lib/classify.h"
#include "mux443/lib/probe.h"
#include "mux443/lib/probe_http.h"
#include "mux443/lib/probe_stun.h"
#include "mux443/lib/probe_tls.h"

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

/* How the differential check cuts an input into reads. An input that starts with 0xff
 * carries its cut: 0xff, a byte whose low 4 bits + 1 say how many read sizes follow,
 * those sizes (0: a read that brings no new byte), then the bytes to feed. Any other
 * input is fed whole, cut by the low 4 bits of its first 8 bytes in turn, so that the
 * captured vectors, as seeds, are already cut several ways. Reads are at least 1/256 of
 * the input and at most 1024 calls are made, to bound the one-shot comparisons. */
struct fuzz_cut {
    const uint8_t *sizes; /* read sizes, cycled */
    size_t count;
    unsigned mask;    /* applied to each size */
    const uint8_t *p; /* the bytes to feed */
    size_t n;
};

static inline void fuzz_cut_of(const uint8_t *data, size_t size, struct fuzz_cut *c)
{
    c->p = data;
    c->n = size;
    c->sizes = data;
    c->count = size < 8 ? size : 8;
    c->mask = 0x0f;
    if (size >= 2 && data[0] == 0xff && size >= 2 + (size_t)(data[1] & 0x0f) + 1) {
        c->count = (size_t)(data[1] & 0x0f) + 1;
        c->sizes = data + 2;
        c->mask = 0xff;
        c->p = data + 2 + c->count;
        c->n = size - 2 - c->count;
    }
}

/* probe_detect on a fresh state, in one call: the reference for every cut. */
static inline enum probe_result fuzz_detect_once(const uint8_t *p, size_t n, struct probe_out *out)
{
    struct probe_state st;

    probe_state_init(&st);
    return probe_detect(&st, p, n, out);
}

/* Feeds the input, cut as fuzz_cut_of says, into one incremental state: probe_detect's
 * (id < 0, once = fuzz_detect_once) or probe `id` as the dispatcher runs it (once = its
 * stateless function). Each call is over a fresh exact-size copy of the bytes so far (the
 * buffer moves). Every answer must equal the one-shot answer on the same bytes, whole
 * output included; after a NOMATCH, calls must answer NOMATCH with the first reason. */
static inline void fuzz_check_incremental(fuzz_probe_fn once, int id, const uint8_t *data,
                                          size_t size)
{
    static struct probe_out inc, ref;
    static struct probe_state st;
    struct fuzz_cut cut;
    enum probe_result prev = PROBE_AGAIN;
    const char *refused = NULL;
    size_t k = 0, i = 0, calls = 0, floor;

    fuzz_cut_of(data, size, &cut);
    floor = cut.n / 256;
    probe_state_init(&st);
    do {
        size_t step = cut.count ? (cut.sizes[i++ % cut.count] & cut.mask) : cut.n;
        enum probe_result ri, ro;
        uint8_t *copy;

        if (step != 0 && step < floor)
            step = floor;
        if (++calls >= 1024)
            step = cut.n;
        k = step > cut.n - k ? cut.n : k + step;
        copy = malloc(k ? k : 1);
        if (copy == NULL)
            return;
        if (k > 0)
            memcpy(copy, cut.p, k);
        if (id < 0) {
            ri = probe_detect(&st, copy, k, &inc);
        } else {
            ri = probe_run(&st, (enum probe_id)id, copy, k, &inc);
            if (ri != PROBE_MATCH) {
                memset(&inc, 0, sizeof(inc));
                if (ri == PROBE_NOMATCH)
                    inc.why = st.slot[id].why;
            }
        }
        fuzz_check_out(ri, &inc, k);
        ro = once(copy, k, &ref);
        FUZZ_CHECK(ri == ro);
        if (prev != PROBE_NOMATCH && ro != PROBE_AGAIN)
            FUZZ_CHECK(memcmp(&inc, &ref, sizeof(inc)) == 0);
        if (prev == PROBE_NOMATCH)
            FUZZ_CHECK(inc.why == refused);
        if (ri == PROBE_NOMATCH && prev != PROBE_NOMATCH)
            refused = inc.why;
        prev = ri;
        free(copy);
    } while (k < cut.n);
}

#endif
