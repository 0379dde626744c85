/* Helpers shared by the unit tests: vector loading, TLS record re-framing, and the
 * sanity checks run on every probe result. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mux443/lib/classify.h"
#include "mux443/lib/probe_http.h"
#include "mux443/lib/probe_mqtt.h"
#include "mux443/lib/probe_sip.h"
#include "mux443/lib/probe_ssh.h"
#include "mux443/lib/probe_stun.h"
#include "mux443/lib/probe_tls.h"
#include "test_util.h"

#ifndef MUX443_VECTORS_DIR
#define MUX443_VECTORS_DIR "tests/vectors"
#endif

uint8_t *tu_load(const char *name, size_t *len)
{
    const char *dir = getenv("MUX443_VECTORS");
    char path[4096];
    FILE *f;
    uint8_t *buf;
    long size;

    if (dir == NULL || dir[0] == '\0')
        dir = MUX443_VECTORS_DIR;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot open vector %s", path);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    size = ftell(f);
    assert_true(size > 0);
    rewind(f);
    buf = malloc((size_t)size);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    *len = (size_t)size;
    return buf;
}

enum probe_result tu_detect_once(const uint8_t *p, size_t n, struct probe_out *out)
{
    struct probe_state st;

    probe_state_init(&st);
    return probe_detect(&st, p, n, out);
}

/* An incremental state for a one-shot function: the dispatcher's, or one probe's. */
struct inc {
    int id; /* enum probe_id, or -1 for probe_detect */
    struct probe_state st;
};

static void inc_init(struct inc *c, tu_probe_fn fn)
{
    static const struct {
        tu_probe_fn fn;
        enum probe_id id;
    } fns[] = {{probe_tls, PROBE_ID_TLS},   {probe_http, PROBE_ID_HTTP},
               {probe_stun, PROBE_ID_STUN}, {probe_ice_tcp, PROBE_ID_ICE_TCP},
               {probe_sip, PROBE_ID_SIP},   {probe_mqtt, PROBE_ID_MQTT},
               {probe_ssh, PROBE_ID_SSH}};

    probe_state_init(&c->st);
    c->id = -1;
    for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
        if (fns[i].fn == fn)
            c->id = (int)fns[i].id;
    }
    if (c->id < 0 && fn != tu_detect_once)
        fail_msg("no incremental form for this probe function");
}

/* One call, with out shaped like the one-shot function's. */
static enum probe_result inc_call(struct inc *c, const uint8_t *p, size_t n, struct probe_out *out)
{
    enum probe_result r;

    if (c->id < 0)
        return probe_detect(&c->st, p, n, out);
    r = probe_run(&c->st, (enum probe_id)c->id, p, n, out);
    if (r != PROBE_MATCH) {
        memset(out, 0, sizeof(*out));
        if (r == PROBE_NOMATCH)
            out->why = c->st.slot[c->id].why;
    }
    return r;
}

static bool same_why(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* The incremental answer `inc` after k of n bytes against the one-shot answer `once`. */
static void check_same(enum probe_result ro, const struct probe_out *once, enum probe_result ri,
                       const struct probe_out *inc, bool why_too, size_t k, size_t n)
{
    if (ri != ro)
        fail_msg("after %zu of %zu bytes: incremental %d (%s), one-shot %d (%s)", k, n, (int)ri,
                 inc->why ? inc->why : "-", (int)ro, once->why ? once->why : "-");
    if (ro == PROBE_MATCH && (!tu_same_fields(inc, once) || inc->consumed != once->consumed))
        fail_msg("after %zu of %zu bytes: MATCH fields differ (consumed %zu vs %zu)", k, n,
                 inc->consumed, once->consumed);
    if (why_too && ro != PROBE_AGAIN && !same_why(inc->why, once->why))
        fail_msg("after %zu of %zu bytes: reason '%s' vs one-shot '%s'", k, n,
                 inc->why ? inc->why : "-", once->why ? once->why : "-");
}

enum probe_result tu_run(tu_probe_fn fn, const uint8_t *p, size_t n, struct probe_out *out)
{
    static struct probe_out io;
    struct inc c;
    uint8_t *copy = malloc(n ? n : 1);
    enum probe_result r, ri = PROBE_AGAIN, prev = PROBE_AGAIN;
    size_t k = 0, a = 1, b = 1;

    assert_non_null(copy);
    if (n > 0)
        memcpy(copy, p, n);
    r = fn(copy, n, out);
    /* The same bytes in reads of 1, 1, 2, 3, 5, 8, ... bytes: few calls, varied cuts. */
    inc_init(&c, fn);
    do {
        k = a > n - k ? n : k + a;
        b += a;
        a = b - a;
        prev = ri;
        ri = inc_call(&c, copy, k, &io);
    } while (k < n);
    check_same(r, out, ri, &io, prev != PROBE_NOMATCH, n, n);
    free(copy);
    return r;
}

enum probe_result tu_feed(tu_probe_fn fn, const uint8_t *p, size_t n, const size_t *sizes,
                          size_t count, struct probe_out *out)
{
    static struct probe_out once;
    struct inc c;
    enum probe_result r = PROBE_AGAIN, prev;
    size_t k = 0, i = 0, total = 0;
    const char *refused = NULL; /* the reason given with the first NOMATCH */

    for (size_t j = 0; j < count; j++)
        total += sizes[j];
    assert_true(total > 0);
    inc_init(&c, fn);
    do {
        size_t step = sizes[i++ % count];
        uint8_t *copy;
        enum probe_result ro;

        k = step > n - k ? n : k + step;
        copy = malloc(k ? k : 1);
        assert_non_null(copy);
        if (k > 0)
            memcpy(copy, p, k);
        prev = r;
        r = inc_call(&c, copy, k, out);
        tu_check_sane(r, out, k);
        ro = fn(copy, k, &once);
        check_same(ro, &once, r, out, prev != PROBE_NOMATCH, k, n);
        if (prev == PROBE_NOMATCH && !same_why(out->why, refused))
            fail_msg("after %zu of %zu bytes: a later NOMATCH changed its reason", k, n);
        if (r == PROBE_NOMATCH && prev != PROBE_NOMATCH)
            refused = out->why;
        free(copy);
    } while (k < n);
    return r;
}

void tu_check_splits(tu_probe_fn fn, const uint8_t *p, size_t n)
{
    static const size_t one[] = {1}, seven[] = {7}, hundred[] = {100}, mixed[] = {1, 0, 3, 64},
                        big[] = {2048};
    static const struct {
        const size_t *sizes;
        size_t count;
    } patterns[] = {{one, 1}, {seven, 1}, {hundred, 1}, {mixed, 4}, {big, 1}};
    static struct probe_out out;

    for (size_t i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++)
        tu_feed(fn, p, n, patterns[i].sizes, patterns[i].count, &out);
}

void tu_check_sane(enum probe_result r, const struct probe_out *out, size_t n)
{
    assert_true(r == PROBE_AGAIN || r == PROBE_MATCH || r == PROBE_NOMATCH);
    if (r != PROBE_MATCH)
        return;
    assert_true(out->cls > CLASS_NONE && out->cls < CLASS_COUNT);
    assert_true(out->consumed > 0);
    if (out->cls != CLASS_STUN) /* STUN matches on its header, before the body is in */
        assert_true(out->consumed <= n);
    assert_true(out->sni_len <= PROBE_NAME_MAX);
    assert_int_equal(out->sni[out->sni_len], '\0');
    assert_int_equal(strlen(out->sni), out->sni_len); /* NUL in SNI is refused */
    assert_true(out->alpn_len <= PROBE_ALPN_MAX);
    for (size_t pos = 0; pos < out->alpn_len; pos += 1u + out->alpn[pos]) {
        assert_true(out->alpn[pos] > 0);
        assert_true(pos + 1u + out->alpn[pos] <= out->alpn_len);
    }
    assert_true(out->host_len <= PROBE_NAME_MAX);
    assert_int_equal(out->host[out->host_len], '\0');
    assert_true(out->path_len <= PROBE_PATH_MAX);
    assert_int_equal(out->path[out->path_len], '\0');
    assert_true(out->ufrag_len <= PROBE_UFRAG_MAX);
    assert_int_equal(out->ufrag[out->ufrag_len], '\0');
    assert_true(out->cufrag_len <= PROBE_UFRAG_MAX);
    assert_int_equal(out->cufrag[out->cufrag_len], '\0');
    assert_true(memchr(out->method, '\0', sizeof(out->method)) != NULL);
    assert_true(out->ws_protocol_len <= PROBE_NAME_MAX);
    assert_int_equal(out->ws_protocol[out->ws_protocol_len], '\0');
    assert_true(out->mqtt_client_len <= PROBE_NAME_MAX);
    assert_int_equal(out->mqtt_client[out->mqtt_client_len], '\0');
    if (out->cls == CLASS_MQTT)
        assert_true(out->mqtt_level >= 3 && out->mqtt_level <= 5);
    if (out->cls == CLASS_HTTP || out->cls == CLASS_WEBSOCKET)
        assert_true(out->method[0] != '\0');
    if (out->cls == CLASS_ICE_TCP && out->ufrag_len == 0)
        assert_non_null(out->why);
}

bool tu_same_fields(const struct probe_out *a, const struct probe_out *b)
{
    return a->cls == b->cls && a->tls_sslv2 == b->tls_sslv2 && a->tls_version == b->tls_version &&
           a->sni_len == b->sni_len && memcmp(a->sni, b->sni, a->sni_len) == 0 &&
           a->alpn_len == b->alpn_len && memcmp(a->alpn, b->alpn, a->alpn_len) == 0 &&
           a->alpn_cut == b->alpn_cut && strcmp(a->method, b->method) == 0 &&
           a->host_len == b->host_len && memcmp(a->host, b->host, a->host_len) == 0 &&
           a->path_len == b->path_len && memcmp(a->path, b->path, a->path_len) == 0 &&
           a->stun_type == b->stun_type && a->ufrag_len == b->ufrag_len &&
           memcmp(a->ufrag, b->ufrag, a->ufrag_len) == 0 && a->cufrag_len == b->cufrag_len &&
           memcmp(a->cufrag, b->cufrag, a->cufrag_len) == 0;
}

void tu_check_prefixes(tu_probe_fn fn, const uint8_t *p, size_t n, size_t early,
                       enum probe_result want, struct probe_out *full)
{
    static struct probe_out out;
    enum probe_result r;

    r = tu_run(fn, p, n, full);
    assert_int_equal(r, want);
    tu_check_sane(r, full, n);
    for (size_t k = 0; k < n; k++) {
        r = tu_run(fn, p, k, &out);
        tu_check_sane(r, &out, k);
        if (early != 0 && k >= early && r == PROBE_MATCH) {
            assert_true(tu_same_fields(&out, full));
            assert_int_equal(out.consumed, full->consumed);
            continue;
        }
        if (r != PROBE_AGAIN)
            fail_msg("prefix of %zu/%zu bytes: result %d (%s), want AGAIN", k, n, (int)r,
                     out.why ? out.why : "-");
    }
    tu_check_splits(fn, p, n);
}

size_t tu_tls_payload(const uint8_t *p, size_t n, uint8_t *hs, size_t cap)
{
    size_t pos = 0, len = 0;

    while (pos + 5 <= n) {
        size_t rl = (size_t)p[pos + 3] << 8 | p[pos + 4];

        assert_true(pos + 5 + rl <= n && len + rl <= cap);
        memcpy(hs + len, p + pos + 5, rl);
        len += rl;
        pos += 5 + rl;
    }
    assert_int_equal(pos, n);
    return len;
}

size_t tu_tls_records(const uint8_t *hs, size_t hs_len, size_t chunk, uint8_t *out, size_t cap)
{
    size_t w = 0;

    for (size_t pos = 0; pos < hs_len; pos += chunk) {
        size_t l = hs_len - pos < chunk ? hs_len - pos : chunk;

        if (w + 5 + l > cap)
            return 0;
        out[w++] = 0x16;
        out[w++] = 0x03;
        out[w++] = 0x01;
        out[w++] = (uint8_t)(l >> 8);
        out[w++] = (uint8_t)l;
        memcpy(out + w, hs + pos, l);
        w += l;
    }
    return w;
}

size_t tu_client_hello(const uint8_t *exts, size_t exts_len, uint8_t *hs, size_t cap)
{
    size_t w = 4, body;

    assert_true(cap >= 4 + 2 + 32 + 1 + 4 + 2 + 2 + exts_len);
    hs[w++] = 0x03; /* legacy_version TLS 1.2 */
    hs[w++] = 0x03;
    for (int i = 0; i < 32; i++)
        hs[w++] = (uint8_t)(0xa0 + i); /* random */
    hs[w++] = 0;                       /* session_id */
    hs[w++] = 0;                       /* cipher_suites: one */
    hs[w++] = 2;
    hs[w++] = 0x13;
    hs[w++] = 0x01;
    hs[w++] = 1; /* compression: null */
    hs[w++] = 0;
    if (exts != NULL) {
        hs[w++] = (uint8_t)(exts_len >> 8);
        hs[w++] = (uint8_t)exts_len;
        memcpy(hs + w, exts, exts_len);
        w += exts_len;
    }
    body = w - 4;
    hs[0] = 1;
    hs[1] = (uint8_t)(body >> 16);
    hs[2] = (uint8_t)(body >> 8);
    hs[3] = (uint8_t)body;
    return w;
}

uint64_t tu_rand(uint64_t *state)
{
    uint64_t x = *state;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545f4914f6cdd1dULL;
}
