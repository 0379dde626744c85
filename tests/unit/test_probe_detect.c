/* Unit tests for the dispatcher and helpers: every vector classified by probe_detect
 * (whole and at every split), NOMATCH reasons, class names, ALPN helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mux443/lib/classes.h"
#include "mux443/lib/classify.h"
#include "mux443/lib/probe.h"
#include "test_util.h"

static struct probe_out out;

static void test_vectors(void **state)
{
    static const struct {
        const char *file;
        enum mux_class cls;
        size_t early; /* see tu_check_prefixes */
    } v[] = {
        {"chromium-clienthello-sni.bin", CLASS_TLS, 0},
        {"chromium-clienthello-turns.bin", CLASS_TLS, 0},
        {"curl-clienthello.bin", CLASS_TLS, 0},
        {"openssl-s_client-clienthello.bin", CLASS_TLS, 0},
        {"chromium-turn-tcp-allocate.bin", CLASS_STUN, 20},
        {"turnutils-uclient-tcp.bin", CLASS_STUN, 20},
        {"chromium-ice-tcp-binding.bin", CLASS_ICE_TCP, 0},
        {"chromium-websocket-upgrade.bin", CLASS_WEBSOCKET, 0},
    };

    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        size_t n;
        uint8_t *p = tu_load(v[i].file, &n);

        tu_check_prefixes(tu_detect_once, p, n, v[i].early, PROBE_MATCH, &out);
        assert_int_equal(out.cls, v[i].cls);
        assert_int_equal(out.consumed, n);
        if (v[i].cls == CLASS_ICE_TCP)
            assert_string_equal(out.ufrag, "dptM");
        if (v[i].cls == CLASS_TLS)
            assert_true(out.sni_len > 0);
        free(p);
    }
}

static void test_nomatch(void **state)
{
    static const struct {
        const char *bytes;
        size_t n;
        const char *why;
    } v[] = {
        {"HELO example.com\r\n", 18, "HTTP"},
        {"\x16\x03\x01\x00\x00", 5, "bad TLS record length"},
        {"\x00\x01\x00\x08\x21\x12\xa4\x43", 8, "no STUN magic cookie"},
        {"\x00\x64\x00\x01\x00\x50\x21\x12\xa4\x43", 10, "no STUN magic cookie"},
        {"\x00\x01\x00\x08\x00\x00\x00", 7, "no STUN magic cookie at offset 4 or 6"},
        {"\x7f", 1, "first byte starts no known protocol"},
        {"get / HTTP/1.1\r\n", 16, "first byte starts no known protocol"},
    };

    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        enum probe_result r = tu_run(tu_detect_once, (const uint8_t *)v[i].bytes, v[i].n, &out);

        assert_int_equal(r, PROBE_NOMATCH);
        assert_int_equal(out.cls, CLASS_UNKNOWN);
        assert_non_null(out.why);
        if (strcmp(v[i].why, "HTTP") != 0)
            assert_string_equal(out.why, v[i].why);
    }
    assert_int_equal(tu_run(tu_detect_once, NULL, 0, &out), PROBE_AGAIN);
    /* 0x00 0x01: STUN and ICE-TCP both still possible */
    assert_int_equal(tu_run(tu_detect_once, (const uint8_t *)"\x00\x01", 2, &out), PROBE_AGAIN);
}

static void test_random_input(void **state)
{
    uint64_t seed = 0x1234;
    uint8_t buf[64];

    for (int i = 0; i < 200000; i++) {
        size_t n = (size_t)(tu_rand(&seed) % sizeof(buf));
        enum probe_result r;

        for (size_t k = 0; k < n; k++)
            buf[k] = (uint8_t)tu_rand(&seed);
        /* steer some inputs to each probe's first bytes */
        if (n > 8 && i % 4 == 0)
            memcpy(buf + 4, "\x21\x12\xa4\x42", 4);
        if (n > 10 && i % 4 == 1)
            memcpy(buf + 6, "\x21\x12\xa4\x42", 4);
        if (n > 3 && i % 4 == 2)
            memcpy(buf, "\x16\x03\x01", 3);
        r = tu_run(tu_detect_once, buf, n, &out);
        tu_check_sane(r, &out, n);
        if (r == PROBE_NOMATCH)
            assert_int_equal(out.cls, CLASS_UNKNOWN);
    }
}

static void test_class_names(void **state)
{
    static const char *const names[] = {"tls",  "http", "websocket", "stun",    "ice-tcp", "sip",
                                        "mqtt", "ssh",  "quic",      "unknown", "timeout"};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        enum mux_class c = class_from_name(names[i]);

        assert_int_equal(c, CLASS_TLS + (int)i);
        assert_string_equal(class_name(c), names[i]);
    }
    assert_int_equal(class_from_name("TLS"), CLASS_NONE);
    assert_int_equal(class_from_name(""), CLASS_NONE);
    assert_int_equal(class_from_name(NULL), CLASS_NONE);
    assert_non_null(class_name(CLASS_NONE));
    assert_non_null(class_name((enum mux_class)99));
}

static void test_alpn_helpers(void **state)
{
    char buf[64];

    memset(&out, 0, sizeof(out));
    memcpy(out.alpn, "\x02h2\x08http/1.1\x04\x01,\\z", 17);
    out.alpn_len = 17;
    assert_true(probe_alpn_offers(&out, "h2", 2));
    assert_true(probe_alpn_offers(&out, "http/1.1", 8));
    assert_false(probe_alpn_offers(&out, "h", 1));
    assert_false(probe_alpn_offers(&out, "http/1.", 7));
    assert_string_equal(probe_alpn_format(&out, buf, sizeof(buf)), "h2,http/1.1,\\x01\\x2c\\x5cz");
    /* small buffers: always terminated, never a partial escape */
    assert_string_equal(probe_alpn_format(&out, buf, 3), "h2");
    assert_string_equal(probe_alpn_format(&out, buf, 1), "");
    assert_string_equal(probe_alpn_format(&out, buf, 15), "h2,http/1.1,");
    assert_string_equal(probe_alpn_format(&out, buf, 17), "h2,http/1.1,\\x01");
    assert_true(probe_alpn_format(&out, buf, 0) == buf);
    /* a list that lies about its last entry */
    out.alpn[3] = 40;
    assert_false(probe_alpn_offers(&out, "http/1.1", 8));
    probe_alpn_format(&out, buf, sizeof(buf));
    out.alpn_len = 0;
    assert_string_equal(probe_alpn_format(&out, buf, sizeof(buf)), "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),      cmocka_unit_test(test_nomatch),
        cmocka_unit_test(test_random_input), cmocka_unit_test(test_class_names),
        cmocka_unit_test(test_alpn_helpers),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
