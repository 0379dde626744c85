/* Unit tests for probe_stun and probe_ice_tcp: captured TURN Allocates and Chromium's
 * ICE-TCP check (whole, every split, damaged), and hand-built USERNAME edge cases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mux443/lib/probe_stun.h"
#include "test_util.h"

static struct probe_out out;

static void test_stun_vectors(void **state)
{
    static const struct {
        const char *file;
        uint16_t type;
    } v[] = {{"chromium-turn-tcp-allocate.bin", 0x0003}, {"turnutils-uclient-tcp.bin", 0x0003}};

    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        size_t n;
        uint8_t *p = tu_load(v[i].file, &n);

        /* STUN matches once its 20-byte header is in */
        tu_check_prefixes(probe_stun, p, n, 20, PROBE_MATCH, &out);
        assert_int_equal(out.cls, CLASS_STUN);
        assert_int_equal(out.stun_type, v[i].type);
        assert_int_equal(out.consumed, n);
        assert_int_equal(tu_run(probe_stun, p, 20, &out), PROBE_MATCH);
        assert_int_equal(out.consumed, n);
        /* and is no ICE-TCP frame */
        assert_int_equal(tu_run(probe_ice_tcp, p, n, &out), PROBE_NOMATCH);
        free(p);
    }
}

static void test_ice_vector(void **state)
{
    size_t n;
    uint8_t *p = tu_load("chromium-ice-tcp-binding.bin", &n);

    /* ufrags from chromium-ice-tcp-binding.ufrags.json: expectedUsername "dptM:RNob" */
    tu_check_prefixes(probe_ice_tcp, p, n, 0, PROBE_MATCH, &out);
    assert_int_equal(out.cls, CLASS_ICE_TCP);
    assert_int_equal(out.stun_type, 0x0001);
    assert_string_equal(out.ufrag, "dptM");
    assert_int_equal(out.ufrag_len, 4);
    assert_string_equal(out.cufrag, "RNob");
    assert_int_equal(out.cufrag_len, 4);
    assert_int_equal(out.consumed, n);
    assert_null(out.why);
    assert_int_equal(tu_run(probe_stun, p, n, &out), PROBE_NOMATCH);
    free(p);
}

static void test_corruption(void **state)
{
    static const char *const files[] = {"chromium-turn-tcp-allocate.bin",
                                        "turnutils-uclient-tcp.bin",
                                        "chromium-ice-tcp-binding.bin"};
    static const tu_probe_fn fns[] = {probe_stun, probe_ice_tcp};

    for (size_t f = 0; f < 3; f++) {
        size_t n;
        uint8_t *p = tu_load(files[f], &n);
        uint8_t *q = malloc(n);

        for (size_t k = 0; k < n; k++) {
            for (unsigned m = 1; m < 256; m++) {
                memcpy(q, p, n);
                q[k] ^= (uint8_t)m;
                for (size_t i = 0; i < 2; i++) {
                    enum probe_result r = tu_run(fns[i], q, n, &out);

                    tu_check_sane(r, &out, n);
                }
            }
        }
        free(q);
        free(p);
    }
}

static void test_stun_header_rules(void **state)
{
    uint8_t m[24] = {0x00, 0x01, 0x00, 0x04, 0x21, 0x12, 0xa4, 0x42};

    assert_int_equal(tu_run(probe_stun, m, sizeof(m), &out), PROBE_MATCH);
    assert_int_equal(out.consumed, 24);
    m[1] = 0x11; /* indication */
    assert_int_equal(tu_run(probe_stun, m, sizeof(m), &out), PROBE_MATCH);
    m[0] = 0x01; /* success response 0x0101 */
    m[1] = 0x01;
    assert_int_equal(tu_run(probe_stun, m, 1, &out), PROBE_NOMATCH);
    m[1] = 0x11; /* error response 0x0111 */
    assert_int_equal(tu_run(probe_stun, m, sizeof(m), &out), PROBE_NOMATCH);
    m[0] = 0x40; /* ChannelData */
    assert_int_equal(tu_run(probe_stun, m, 1, &out), PROBE_NOMATCH);
    m[0] = 0x00;
    m[1] = 0x01;
    m[3] = 0x05; /* length not a multiple of 4 */
    assert_int_equal(tu_run(probe_stun, m, 4, &out), PROBE_NOMATCH);
    assert_int_equal(tu_run(probe_stun, m, 3, &out), PROBE_AGAIN);
    m[3] = 0x04;
    m[6] = 0xa5; /* bad cookie, seen at its first wrong byte */
    assert_int_equal(tu_run(probe_stun, m, 6, &out), PROBE_AGAIN);
    assert_int_equal(tu_run(probe_stun, m, 7, &out), PROBE_NOMATCH);
    assert_int_equal(tu_run(probe_stun, NULL, 0, &out), PROBE_AGAIN);
}

/* --- ICE-TCP frames built by hand --- */

struct attr {
    uint16_t type;
    const char *val;
    size_t len;
};

static size_t build_frame(uint8_t *buf, const struct attr *a, size_t na)
{
    size_t w = 22, slen;

    memset(buf, 0, 22);
    buf[3] = 0x01; /* Binding request */
    memcpy(buf + 6, "\x21\x12\xa4\x42", 4);
    for (size_t i = 0; i < na; i++) {
        buf[w++] = (uint8_t)(a[i].type >> 8);
        buf[w++] = (uint8_t)a[i].type;
        buf[w++] = (uint8_t)(a[i].len >> 8);
        buf[w++] = (uint8_t)a[i].len;
        memcpy(buf + w, a[i].val, a[i].len);
        w += a[i].len;
        while (w % 4 != 2)
            buf[w++] = 0;
    }
    slen = w - 22;
    buf[4] = (uint8_t)(slen >> 8);
    buf[5] = (uint8_t)slen;
    buf[0] = (uint8_t)((slen + 20) >> 8);
    buf[1] = (uint8_t)(slen + 20);
    return w;
}

static const char mi[20] = "0123456789abcdefghij";

static void test_ice_usernames(void **state)
{
    static uint8_t f[2048];
    static char big[600];
    size_t n;

    {
        struct attr a[] = {{0x0024, "\x6e\x00\x1e\xff", 4}, {0x0008, mi, 20}};

        n = build_frame(f, a, 2);
        assert_int_equal(tu_run(probe_ice_tcp, f, n, &out), PROBE_MATCH);
        assert_int_equal(out.cls, CLASS_ICE_TCP);
        assert_int_equal(out.ufrag_len, 0);
        assert_non_null(out.why);
    }
    {
        struct attr a[] = {{0x0006, "nocolon", 7}};

        n = build_frame(f, a, 1);
        assert_int_equal(tu_run(probe_ice_tcp, f, n, &out), PROBE_MATCH);
        assert_int_equal(out.ufrag_len, 0);
        assert_non_null(out.why);
    }
    {
        /* split at the FIRST colon; an odd length exercises the padding */
        struct attr a[] = {{0x0006, "srv:cli:x", 9}, {0x0008, mi, 20}};

        n = build_frame(f, a, 2);
        tu_check_prefixes(probe_ice_tcp, f, n, 0, PROBE_MATCH, &out);
        assert_string_equal(out.ufrag, "srv");
        assert_string_equal(out.cufrag, "cli:x");
    }
    {
        /* USERNAME after MESSAGE-INTEGRITY(-SHA256) is not covered: ignored */
        struct attr a[] = {{0x0008, mi, 20}, {0x0006, "evil:x", 6}};
        struct attr b[] = {{0x001c, mi, 20}, {0x0006, "evil:x", 6}};
        struct attr c[] = {{0x0006, "good:y", 6}, {0x0008, mi, 20}, {0x0006, "evil:x", 6}};

        n = build_frame(f, a, 2);
        assert_int_equal(tu_run(probe_ice_tcp, f, n, &out), PROBE_MATCH);
        assert_int_equal(out.ufrag_len, 0);
        n = build_frame(f, b, 2);
        assert_int_equal(tu_run(probe_ice_tcp, f, n, &out), PROBE_MATCH);
        assert_int_equal(out.ufrag_len, 0);
        n = build_frame(f, c, 3);
        assert_int_equal(tu_run(probe_ice_tcp, f, n, &out), PROBE_MATCH);
        assert_string_equal(out.ufrag, "good");
    }
    {
        /* oversized ufrags: not reported */
        struct attr a[] = {{0x0006, big, 0}};

        memset(big, 'u', sizeof(big));
        big[300] = ':';
        a[0].len = 305;
        n = build_frame(f, a, 1);
        assert_int_equal(tu_run(probe_ice_tcp, f, n, &out), PROBE_MATCH);
        assert_int_equal(out.ufrag_len, 0);
        assert_non_null(out.why);
        big[300] = 'u';
        big[4] = ':';
        a[0].len = 4 + 1 + 257;
        n = build_frame(f, a, 1);
        assert_int_equal(tu_run(probe_ice_tcp, f, n, &out), PROBE_MATCH);
        assert_int_equal(out.ufrag_len, 0);
        a[0].len = 4 + 1 + 256; /* the limit itself is fine */
        n = build_frame(f, a, 1);
        assert_int_equal(tu_run(probe_ice_tcp, f, n, &out), PROBE_MATCH);
        assert_int_equal(out.ufrag_len, 4);
        assert_int_equal(out.cufrag_len, 256);
    }
}

static void test_ice_framing(void **state)
{
    uint8_t f[256];
    struct attr a[] = {{0x0006, "abcd:efgh", 9}};
    size_t n = build_frame(f, a, 1);

    /* frame length disagreeing with the STUN length */
    f[1] += 4;
    assert_int_equal(tu_run(probe_ice_tcp, f, 6, &out), PROBE_NOMATCH);
    f[1] -= 8;
    assert_int_equal(tu_run(probe_ice_tcp, f, n, &out), PROBE_NOMATCH);
    n = build_frame(f, a, 1);
    /* attribute overrunning the frame */
    f[25] = 40;
    assert_int_equal(tu_run(probe_ice_tcp, f, n, &out), PROBE_NOMATCH);
    n = build_frame(f, a, 1);
    /* frame length not a multiple of 4, or too small for a STUN header */
    f[1] |= 1;
    assert_int_equal(tu_run(probe_ice_tcp, f, 2, &out), PROBE_NOMATCH);
    f[0] = 0;
    f[1] = 16;
    assert_int_equal(tu_run(probe_ice_tcp, f, 2, &out), PROBE_NOMATCH);
    n = build_frame(f, a, 1);
    /* a STUN response inside the frame */
    f[2] = 0x01;
    f[3] = 0x01;
    assert_int_equal(tu_run(probe_ice_tcp, f, 3, &out), PROBE_NOMATCH);
    n = build_frame(f, a, 1);
    f[8] = 0; /* cookie */
    assert_int_equal(tu_run(probe_ice_tcp, f, 9, &out), PROBE_NOMATCH);
    /* a message with no attributes at all */
    n = build_frame(f, NULL, 0);
    assert_int_equal(n, 22);
    assert_int_equal(tu_run(probe_ice_tcp, f, n, &out), PROBE_MATCH);
    assert_int_equal(out.consumed, 22);
    assert_int_equal(tu_run(probe_ice_tcp, f, 1, &out), PROBE_AGAIN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stun_vectors),  cmocka_unit_test(test_ice_vector),
        cmocka_unit_test(test_corruption),    cmocka_unit_test(test_stun_header_rules),
        cmocka_unit_test(test_ice_usernames), cmocka_unit_test(test_ice_framing),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
