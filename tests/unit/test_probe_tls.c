/* Unit tests for probe_tls: captured ClientHellos (whole, split at every byte, re-framed
 * into many records), corrupted input, and hand-built edge cases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mux443/lib/probe_tls.h"
#include "test_util.h"

struct tls_vector {
    const char *file;
    const char *sni;
    const char *alpn; /* probe_alpn_format output */
    uint16_t version;
};

static const struct tls_vector vectors[] = {
    {"chromium-clienthello-sni.bin", "sni.test", "h2,http/1.1", 0x0304},
    {"chromium-clienthello-turns.bin", "turn.test", "", 0x0304},
    {"curl-clienthello.bin", "sni.test", "h2,http/1.1", 0x0304},
    {"openssl-s_client-clienthello.bin", "sni.test", "", 0x0304},
};
#define N_VECTORS (sizeof(vectors) / sizeof(vectors[0]))

static struct probe_out out, out2;

static void check_fields(const struct tls_vector *v, const struct probe_out *o)
{
    char alpn[512];

    assert_int_equal(o->cls, CLASS_TLS);
    assert_false(o->tls_sslv2);
    assert_int_equal(o->tls_version, v->version);
    assert_string_equal(o->sni, v->sni);
    assert_int_equal(o->sni_len, strlen(v->sni));
    assert_string_equal(probe_alpn_format(o, alpn, sizeof(alpn)), v->alpn);
    assert_false(o->alpn_cut);
}

static void test_vectors(void **state)
{
    for (size_t i = 0; i < N_VECTORS; i++) {
        size_t n;
        uint8_t *p = tu_load(vectors[i].file, &n);

        assert_int_equal(tu_run(probe_tls, p, n, &out), PROBE_MATCH);
        check_fields(&vectors[i], &out);
        assert_int_equal(out.consumed, n);
        /* Bytes after the hello (e.g. early data) do not change the result. */
        {
            uint8_t *more = malloc(n + 10);

            memcpy(more, p, n);
            memset(more + n, 0x17, 10);
            assert_int_equal(tu_run(probe_tls, more, n + 10, &out2), PROBE_MATCH);
            assert_int_equal(out2.consumed, n);
            free(more);
        }
        free(p);
    }
}

static void test_vectors_every_split(void **state)
{
    for (size_t i = 0; i < N_VECTORS; i++) {
        size_t n;
        uint8_t *p = tu_load(vectors[i].file, &n);

        tu_check_prefixes(probe_tls, p, n, 0, PROBE_MATCH, &out);
        check_fields(&vectors[i], &out);
        free(p);
    }
}

/* The same handshake message carried by records of 1, 7, 100, 512 and 16384 bytes. */
static void test_vectors_rerecorded(void **state)
{
    static const size_t chunks[] = {1, 7, 100, 512, 16384};
    static uint8_t hs[20000], rec[20000 * 6];

    for (size_t i = 0; i < N_VECTORS; i++) {
        size_t n, hs_len;
        uint8_t *p = tu_load(vectors[i].file, &n);

        hs_len = tu_tls_payload(p, n, hs, sizeof(hs));
        for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
            size_t rn = tu_tls_records(hs, hs_len, chunks[c], rec, sizeof(rec));

            assert_true(rn > 0);
            tu_check_prefixes(probe_tls, rec, rn, 0, PROBE_MATCH, &out);
            check_fields(&vectors[i], &out);
            assert_int_equal(out.consumed, rn);
        }
        free(p);
    }
}

static void check_corrupt(const uint8_t *p, size_t n)
{
    enum probe_result r = tu_run(probe_tls, p, n, &out);

    tu_check_sane(r, &out, n);
    if (r == PROBE_MATCH)
        assert_int_equal(out.cls, CLASS_TLS);
}

/* Every byte of the small hellos flipped in turn; random damage to the big ones. */
static void test_corruption(void **state)
{
    static const uint8_t masks[] = {0x01, 0x80, 0xff, 0x10};
    uint64_t seed = 0x6d757834343321ULL;

    for (size_t i = 0; i < N_VECTORS; i++) {
        size_t n;
        uint8_t *p = tu_load(vectors[i].file, &n);
        uint8_t *q = malloc(n);

        if (n < 1000) {
            for (size_t k = 0; k < n; k++) {
                for (size_t m = 0; m < sizeof(masks); m++) {
                    memcpy(q, p, n);
                    q[k] ^= masks[m];
                    check_corrupt(q, n);
                }
            }
        }
        for (int iter = 0; iter < 3000; iter++) {
            int flips = 1 + (int)(tu_rand(&seed) % 8);

            memcpy(q, p, n);
            for (int f = 0; f < flips; f++)
                q[tu_rand(&seed) % n] = (uint8_t)tu_rand(&seed);
            check_corrupt(q, n);
            check_corrupt(q, (size_t)(tu_rand(&seed) % n));
        }
        free(q);
        free(p);
    }
}

/* --- synthetic hellos --- */

static size_t ext(uint8_t *w, unsigned type, const uint8_t *data, size_t len)
{
    w[0] = (uint8_t)(type >> 8);
    w[1] = (uint8_t)type;
    w[2] = (uint8_t)(len >> 8);
    w[3] = (uint8_t)len;
    memcpy(w + 4, data, len);
    return 4 + len;
}

static size_t sni_ext(uint8_t *w, unsigned name_type, const char *name, size_t len)
{
    uint8_t d[1024];

    d[0] = (uint8_t)((len + 3) >> 8);
    d[1] = (uint8_t)(len + 3);
    d[2] = (uint8_t)name_type;
    d[3] = (uint8_t)(len >> 8);
    d[4] = (uint8_t)len;
    memcpy(d + 5, name, len);
    return ext(w, 0x0000, d, len + 5);
}

static enum probe_result run_hello(const uint8_t *exts, size_t exts_len, size_t chunk)
{
    static uint8_t hs[20000], rec[30000];
    size_t hl = tu_client_hello(exts, exts_len, hs, sizeof(hs));
    size_t rn = tu_tls_records(hs, hl, chunk, rec, sizeof(rec));

    assert_true(rn > 0);
    return tu_run(probe_tls, rec, rn, &out);
}

static void test_no_extensions(void **state)
{
    assert_int_equal(run_hello(NULL, 0, 16384), PROBE_MATCH);
    assert_int_equal(out.tls_version, 0x0303);
    assert_int_equal(out.sni_len, 0);
    assert_int_equal(out.alpn_len, 0);
}

static void test_sni_variants(void **state)
{
    uint8_t e[2048];
    char big[300];
    size_t l;

    /* server_name with only a non-host_name entry: MATCH, no SNI */
    l = sni_ext(e, 7, "opaque", 6);
    assert_int_equal(run_hello(e, l, 100), PROBE_MATCH);
    assert_int_equal(out.sni_len, 0);

    /* an SNI too long to be a DNS name is not reported, and not cut */
    memset(big, 'a', sizeof(big));
    l = sni_ext(e, 0, big, sizeof(big));
    assert_int_equal(run_hello(e, l, 100), PROBE_MATCH);
    assert_int_equal(out.sni_len, 0);
    assert_non_null(out.why);

    /* exactly 255 bytes is kept */
    l = sni_ext(e, 0, big, 255);
    assert_int_equal(run_hello(e, l, 100), PROBE_MATCH);
    assert_int_equal(out.sni_len, 255);

    /* NUL inside the name, empty name, duplicate extension */
    l = sni_ext(e, 0, "a\0b", 3);
    assert_int_equal(run_hello(e, l, 100), PROBE_NOMATCH);
    l = sni_ext(e, 0, "", 0);
    assert_int_equal(run_hello(e, l, 100), PROBE_NOMATCH);
    l = sni_ext(e, 0, "x.test", 6);
    l += sni_ext(e + l, 0, "y.test", 6);
    assert_int_equal(run_hello(e, l, 100), PROBE_NOMATCH);
    assert_string_equal(out.why, "duplicate server_name extension");

    /* list length disagreeing with the extension length */
    l = sni_ext(e, 0, "x.test", 6);
    e[5] += 1;
    assert_int_equal(run_hello(e, l, 100), PROBE_NOMATCH);
    /* entry length overrunning the list */
    l = sni_ext(e, 0, "x.test", 6);
    e[8] = 7;
    assert_int_equal(run_hello(e, l, 100), PROBE_NOMATCH);

    /* SNI straddling a record boundary, every record size */
    l = sni_ext(e, 0, "straddle.example.org", 20);
    for (size_t chunk = 1; chunk < 120; chunk++) {
        assert_int_equal(run_hello(e, l, chunk), PROBE_MATCH);
        assert_string_equal(out.sni, "straddle.example.org");
    }
}

static void test_alpn_variants(void **state)
{
    static const uint8_t good[] = {0, 12, 2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    static const uint8_t overrun[] = {0, 4, 2, 'h', '2', 8};
    static const uint8_t zero_entry[] = {0, 4, 2, 'h', '2', 0};
    static const uint8_t list_mismatch[] = {0, 5, 2, 'h', '2'};
    static const uint8_t empty_list[] = {0, 0};
    uint8_t e[2048], d[1024];
    size_t l;
    char fmt[2048];

    l = ext(e, 0x0010, good, sizeof(good));
    assert_int_equal(run_hello(e, l, 3), PROBE_MATCH);
    assert_string_equal(probe_alpn_format(&out, fmt, sizeof(fmt)), "h2,http/1.1");
    assert_true(probe_alpn_offers(&out, "h2", 2));
    assert_true(probe_alpn_offers(&out, "http/1.1", 8));
    assert_false(probe_alpn_offers(&out, "h3", 2));

    l = ext(e, 0x0010, overrun, sizeof(overrun));
    assert_int_equal(run_hello(e, l, 100), PROBE_NOMATCH);
    l = ext(e, 0x0010, zero_entry, sizeof(zero_entry));
    assert_int_equal(run_hello(e, l, 100), PROBE_NOMATCH);
    l = ext(e, 0x0010, list_mismatch, sizeof(list_mismatch));
    assert_int_equal(run_hello(e, l, 100), PROBE_NOMATCH);
    l = ext(e, 0x0010, empty_list, sizeof(empty_list));
    assert_int_equal(run_hello(e, l, 100), PROBE_NOMATCH);

    /* 40 entries of 9 bytes: only the whole entries that fit in 255 bytes are kept */
    for (int i = 0; i < 40; i++) {
        d[2 + i * 9] = 8;
        memcpy(d + 3 + i * 9, "proto-", 6);
        d[3 + i * 9 + 6] = (uint8_t)('a' + i / 26);
        d[3 + i * 9 + 7] = (uint8_t)('a' + i % 26);
    }
    d[0] = (uint8_t)(360 >> 8);
    d[1] = (uint8_t)360;
    l = ext(e, 0x0010, d, 362);
    assert_int_equal(run_hello(e, l, 50), PROBE_MATCH);
    assert_true(out.alpn_cut);
    assert_int_equal(out.alpn_len, 28 * 9);
    assert_true(probe_alpn_offers(&out, "proto-ab", 8));
    assert_false(probe_alpn_offers(&out, "proto-bn", 8)); /* entry 39: cut */
    tu_check_sane(PROBE_MATCH, &out, 100000);
}

static void test_versions(void **state)
{
    static const uint8_t grease_only[] = {4, 0x0a, 0x0a, 0x3a, 0x3a};
    static const uint8_t mixed[] = {6, 0x2a, 0x2a, 0x03, 0x03, 0x03, 0x04};
    static const uint8_t odd[] = {3, 0x03, 0x04, 0x03};
    uint8_t e[64];
    size_t l;

    l = ext(e, 0x002b, mixed, sizeof(mixed));
    assert_int_equal(run_hello(e, l, 100), PROBE_MATCH);
    assert_int_equal(out.tls_version, 0x0304);
    l = ext(e, 0x002b, grease_only, sizeof(grease_only));
    assert_int_equal(run_hello(e, l, 100), PROBE_MATCH);
    assert_int_equal(out.tls_version, 0x0303);
    l = ext(e, 0x002b, odd, sizeof(odd));
    assert_int_equal(run_hello(e, l, 100), PROBE_NOMATCH);
}

static void test_malformed_hello(void **state)
{
    uint8_t e[64], hs[256], rec[512];
    size_t l = sni_ext(e, 0, "a.test", 6), hl, rn;

    /* extension overrunning the extension block */
    hl = tu_client_hello(e, l, hs, sizeof(hs));
    hs[hl - l + 3] = 0xff; /* this extension's length */
    rn = tu_tls_records(hs, hl, 1000, rec, sizeof(rec));
    assert_int_equal(tu_run(probe_tls, rec, rn, &out), PROBE_NOMATCH);

    /* session_id longer than 32 */
    hl = tu_client_hello(e, l, hs, sizeof(hs));
    hs[4 + 2 + 32] = 33;
    rn = tu_tls_records(hs, hl, 1000, rec, sizeof(rec));
    assert_int_equal(tu_run(probe_tls, rec, rn, &out), PROBE_NOMATCH);

    /* trailing byte after the extensions (handshake length says one more) */
    hl = tu_client_hello(e, l, hs, sizeof(hs));
    hs[hl] = 0;
    hs[3] += 1;
    rn = tu_tls_records(hs, hl + 1, 1000, rec, sizeof(rec));
    assert_int_equal(tu_run(probe_tls, rec, rn, &out), PROBE_NOMATCH);

    /* handshake type ServerHello */
    hl = tu_client_hello(e, l, hs, sizeof(hs));
    hs[0] = 2;
    rn = tu_tls_records(hs, hl, 1000, rec, sizeof(rec));
    assert_int_equal(tu_run(probe_tls, rec, 6, &out), PROBE_NOMATCH); /* early */
}

static void test_record_layer(void **state)
{
    static const uint8_t wrong_major[] = {0x16, 0x02, 0x01, 0x00, 0x10};
    static const uint8_t wrong_minor[] = {0x16, 0x03, 0x05, 0x00, 0x10};
    static const uint8_t zero_len[] = {0x16, 0x03, 0x01, 0x00, 0x00};
    static const uint8_t too_long[] = {0x16, 0x03, 0x01, 0x40, 0x01};
    static const uint8_t app_data[] = {0x17, 0x03, 0x03, 0x00, 0x10};
    uint8_t e[64], hs[256], rec[4096];
    size_t l, hl, rn;

    assert_int_equal(tu_run(probe_tls, wrong_major, 2, &out), PROBE_NOMATCH);
    assert_int_equal(tu_run(probe_tls, wrong_minor, 3, &out), PROBE_NOMATCH);
    assert_int_equal(tu_run(probe_tls, zero_len, 5, &out), PROBE_NOMATCH);
    assert_int_equal(tu_run(probe_tls, too_long, 5, &out), PROBE_NOMATCH);
    assert_int_equal(tu_run(probe_tls, app_data, 1, &out), PROBE_NOMATCH);
    assert_int_equal(tu_run(probe_tls, zero_len, 4, &out), PROBE_AGAIN);

    /* an alert record between two pieces of the hello */
    l = sni_ext(e, 0, "a.test", 6);
    hl = tu_client_hello(e, l, hs, sizeof(hs));
    rn = tu_tls_records(hs, hl, 10, rec, sizeof(rec));
    rec[15] = 0x15;
    assert_int_equal(tu_run(probe_tls, rec, rn, &out), PROBE_NOMATCH);
    assert_string_equal(out.why, "non-handshake record before the ClientHello ended");
    /* a wrong record version in the second record */
    rn = tu_tls_records(hs, hl, 10, rec, sizeof(rec));
    rec[17] = 0x07;
    assert_int_equal(tu_run(probe_tls, rec, rn, &out), PROBE_NOMATCH);
}

static void test_oversized(void **state)
{
    static uint8_t e[17000], hs[17100], rec[18000];
    uint8_t pad[4];
    size_t l, hl, rn;

    /* a 16384-byte body (padding extension), split over two records: accepted */
    size_t fixed = 2 + 32 + 1 + 4 + 2 + 2; /* body without the extension block */
    size_t pad_len = PROBE_TLS_HS_MAX - fixed - 4;

    memset(e, 0, sizeof(e));
    pad[0] = 0x00;
    pad[1] = 0x15;
    pad[2] = (uint8_t)(pad_len >> 8);
    pad[3] = (uint8_t)pad_len;
    memcpy(e, pad, 4);
    l = 4 + pad_len;
    hl = tu_client_hello(e, l, hs, sizeof(hs));
    assert_int_equal(hl, 4 + PROBE_TLS_HS_MAX);
    rn = tu_tls_records(hs, hl, 16384, rec, sizeof(rec));
    assert_int_equal(tu_run(probe_tls, rec, rn, &out), PROBE_MATCH);
    assert_int_equal(out.consumed, rn);

    /* one byte more: refused as soon as the handshake header is in */
    pad_len++;
    e[2] = (uint8_t)(pad_len >> 8);
    e[3] = (uint8_t)pad_len;
    hl = tu_client_hello(e, 4 + pad_len, hs, sizeof(hs));
    rn = tu_tls_records(hs, hl, 16384, rec, sizeof(rec));
    assert_int_equal(tu_run(probe_tls, rec, 9, &out), PROBE_NOMATCH);
    assert_string_equal(out.why, "ClientHello larger than 16 KiB");
    assert_int_equal(tu_run(probe_tls, rec, rn, &out), PROBE_NOMATCH);
}

static void test_sslv2(void **state)
{
    /* 2-byte header, CLIENT-HELLO, version 3.1, 3 cipher specs, no session id, 16-byte
     * challenge */
    uint8_t h[2 + 9 + 9 + 16] = {0x80, 34, 0x01, 0x03, 0x01, 0, 9, 0, 0, 0, 16};
    uint8_t bad[sizeof(h)];

    for (int i = 0; i < 9; i++)
        h[11 + i] = (uint8_t)i;
    tu_check_prefixes(probe_tls, h, sizeof(h), 0, PROBE_MATCH, &out);
    assert_int_equal(out.cls, CLASS_TLS);
    assert_true(out.tls_sslv2);
    assert_int_equal(out.tls_version, 0x0301);
    assert_int_equal(out.consumed, sizeof(h));
    assert_int_equal(out.sni_len, 0);

    memcpy(bad, h, sizeof(h));
    bad[2] = 0x02; /* not CLIENT-HELLO */
    assert_int_equal(tu_run(probe_tls, bad, 3, &out), PROBE_NOMATCH);
    memcpy(bad, h, sizeof(h));
    bad[4] = 0x04; /* version 3.4 is not SSLv2-compatible */
    assert_int_equal(tu_run(probe_tls, bad, 5, &out), PROBE_NOMATCH);
    memcpy(bad, h, sizeof(h));
    bad[6] = 10; /* lengths disagree with the record */
    assert_int_equal(tu_run(probe_tls, bad, sizeof(bad), &out), PROBE_NOMATCH);
    memcpy(bad, h, sizeof(h));
    bad[3] = 0x00; /* version 0x0002 (SSL 2.0) */
    bad[4] = 0x02;
    assert_int_equal(tu_run(probe_tls, bad, sizeof(bad), &out), PROBE_MATCH);
    assert_int_equal(out.tls_version, 0x0002);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_vectors_every_split),
        cmocka_unit_test(test_vectors_rerecorded),
        cmocka_unit_test(test_corruption),
        cmocka_unit_test(test_no_extensions),
        cmocka_unit_test(test_sni_variants),
        cmocka_unit_test(test_alpn_variants),
        cmocka_unit_test(test_versions),
        cmocka_unit_test(test_malformed_hello),
        cmocka_unit_test(test_record_layer),
        cmocka_unit_test(test_oversized),
        cmocka_unit_test(test_sslv2),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
