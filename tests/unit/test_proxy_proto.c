/* Unit tests for the PROXY protocol: v1 and v2 parsing (valid, truncated, malformed),
 * and proxy_build round trips for IPv4, IPv6, v4-mapped and mixed families. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "mux443/lib/proxy_proto.h"
#include "test_util.h"

static struct proxy_info info;
static const char *why;

static enum probe_result parse(const void *p, size_t n)
{
    uint8_t *copy = malloc(n ? n : 1);
    enum probe_result r;

    memcpy(copy, p, n);
    r = proxy_parse(copy, n, &info, &why);
    free(copy);
    if (r == PROBE_MATCH)
        assert_true(info.hdr_len > 0 && info.hdr_len <= n);
    if (r == PROBE_NOMATCH)
        assert_non_null(why);
    return r;
}

static enum probe_result parse_str(const char *s)
{
    return parse(s, strlen(s));
}

static const uint8_t sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

/* A caller that parses again only once info.need bytes are in stops at the same byte
 * count, with the same answer, as one that parses after every byte. */
static void check_need(const uint8_t *p, size_t n)
{
    size_t first = 0, k = 0;
    enum probe_result r;

    while ((r = parse(p, first)) == PROBE_AGAIN && first < n)
        first++;
    for (;;) {
        enum probe_result rk = parse(p, k);

        if (rk != PROBE_AGAIN || k == n) {
            assert_int_equal(k, first);
            assert_int_equal(rk, r);
            return;
        }
        assert_true(info.need > k);
        k = info.need < n ? info.need : n;
    }
}

/* Every strict prefix of a valid header must answer AGAIN, and ask for no byte past it. */
static void check_prefixes(const uint8_t *p, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        assert_int_equal(parse(p, k), PROBE_AGAIN);
        assert_true(info.need > k && info.need <= n);
        if (p[0] == sig[0] && k >= 16) /* v2: the length field is in */
            assert_int_equal(info.need, n);
    }
    assert_int_equal(parse(p, n), PROBE_MATCH);
    assert_int_equal(info.hdr_len, n);
    check_need(p, n);
}

static void check_v4(const struct sockaddr_storage *ss, const char *addr, uint16_t port)
{
    const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
    char buf[INET_ADDRSTRLEN];

    assert_int_equal(ss->ss_family, AF_INET);
    assert_string_equal(inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf)), addr);
    assert_int_equal(ntohs(sin->sin_port), port);
}

static void check_v6(const struct sockaddr_storage *ss, const char *addr, uint16_t port)
{
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
    char buf[INET6_ADDRSTRLEN];

    assert_int_equal(ss->ss_family, AF_INET6);
    assert_string_equal(inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf)), addr);
    assert_int_equal(ntohs(sin6->sin6_port), port);
}

static void test_v1_parse(void **state)
{
    const char *tcp4 = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET /";
    const char *tcp6 = "PROXY TCP6 2001:db8::1 ::1 65535 0\r\n";

    assert_int_equal(parse_str(tcp4), PROBE_MATCH);
    assert_int_equal(info.hdr_len, strlen(tcp4) - 5);
    assert_int_equal(info.local, 0);
    check_v4(&info.src, "192.0.2.1", 56324);
    check_v4(&info.dst, "198.51.100.2", 443);
    check_prefixes((const uint8_t *)tcp4, strlen(tcp4) - 5);

    assert_int_equal(parse_str(tcp6), PROBE_MATCH);
    check_v6(&info.src, "2001:db8::1", 65535);
    check_v6(&info.dst, "::1", 0);
    check_prefixes((const uint8_t *)tcp6, strlen(tcp6));

    assert_int_equal(parse_str("PROXY UNKNOWN\r\n"), PROBE_MATCH);
    assert_int_equal(info.local, 1);
    assert_int_equal(parse_str("PROXY UNKNOWN ffff::1 ::1 1 2\r\n"), PROBE_MATCH);
    assert_int_equal(info.local, 1);
}

static void test_v1_reject(void **state)
{
    static const char *const bad[] = {
        "PROXY TCP4 256.0.0.1 1.2.3.4 1 2\r\n",
        "PROXY TCP4 1.2.3 1.2.3.4 1 2\r\n",
        "PROXY TCP4 1.2.3.4 1.2.3.4 65536 2\r\n",
        "PROXY TCP4 1.2.3.4 1.2.3.4 01 2\r\n",
        "PROXY TCP4 1.2.3.4 1.2.3.4 -1 2\r\n",
        "PROXY TCP4 1.2.3.4  1.2.3.4 1 2\r\n",
        "PROXY TCP4 1.2.3.4 1.2.3.4 1 2 \r\n",
        "PROXY TCP4 1.2.3.4 1.2.3.4 1\r\n",
        "PROXY TCP4 ::1 ::1 1 2\r\n",
        "PROXY TCP6 1.2.3.4 1.2.3.4 1 2\r\n",
        "PROXY UDP4 1.2.3.4 1.2.3.4 1 2\r\n",
        "PROXY TCP4 1.2.3.4 1.2.3.4 1 2\rX",
        "PROXY TCP4 1.2.3.4\n",
        "PROXY \r\n",
        "PROXX TCP4",
        "GET / HTTP/1.1\r\n",
        "\x16\x03\x01",
    };
    char line[200];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (parse_str(bad[i]) != PROBE_NOMATCH)
            fail_msg("accepted: %s", bad[i]);
    }
    /* longer than 107 bytes without CRLF */
    memset(line, 'a', sizeof(line));
    memcpy(line, "PROXY UNKNOWN ", 14);
    assert_int_equal(parse(line, 105), PROBE_AGAIN);
    assert_int_equal(parse(line, 106), PROBE_NOMATCH);
    /* exactly 107 bytes with CRLF is allowed */
    line[105] = '\r';
    line[106] = '\n';
    assert_int_equal(parse(line, 107), PROBE_MATCH);
    assert_int_equal(info.hdr_len, 107);
}

static void test_v2_parse(void **state)
{
    uint8_t h[16 + 36 + 16];
    size_t n;

    /* TCP4 with a TLV (PP2_TYPE_AUTHORITY "a.test") */
    memcpy(h, sig, 12);
    h[12] = 0x21;
    h[13] = 0x11;
    h[14] = 0;
    h[15] = 12 + 9;
    memcpy(h + 16, "\xc0\x00\x02\x01\xc6\x33\x64\x02\xdc\x04\x01\xbb", 12);
    memcpy(h + 28,
           "\x02\x00\x06"
           "a.test",
           9);
    n = 16 + 21;
    check_prefixes(h, n);
    check_v4(&info.src, "192.0.2.1", 56324);
    check_v4(&info.dst, "198.51.100.2", 443);

    /* TLV overrunning the header */
    h[30] = 7;
    assert_int_equal(parse(h, n), PROBE_NOMATCH);
    h[30] = 6;
    /* truncated TLV header */
    h[15] = 12 + 2;
    assert_int_equal(parse(h, 16 + 14), PROBE_NOMATCH);
    h[15] = 12 + 9;

    /* LOCAL: addresses ignored */
    h[12] = 0x20;
    assert_int_equal(parse(h, n), PROBE_MATCH);
    assert_int_equal(info.local, 1);
    /* UNSPEC, empty */
    h[12] = 0x21;
    h[13] = 0x00;
    h[15] = 0;
    assert_int_equal(parse(h, 16), PROBE_MATCH);
    assert_int_equal(info.local, 1);
    /* UDP: not expressible, keep own addresses */
    h[13] = 0x12;
    h[15] = 12;
    assert_int_equal(parse(h, 28), PROBE_MATCH);
    assert_int_equal(info.local, 1);

    /* bad version, command, family; address block larger than the header */
    h[13] = 0x11;
    h[12] = 0x11;
    assert_int_equal(parse(h, 13), PROBE_NOMATCH);
    h[12] = 0x22;
    assert_int_equal(parse(h, 13), PROBE_NOMATCH);
    h[12] = 0x21;
    h[13] = 0x41;
    assert_int_equal(parse(h, 16), PROBE_NOMATCH);
    h[13] = 0x21;
    h[15] = 12;
    assert_int_equal(parse(h, 16), PROBE_NOMATCH);
    /* length over the bound */
    h[13] = 0x00;
    h[14] = 0xff;
    assert_int_equal(parse(h, 16), PROBE_NOMATCH);
    /* signature mismatch at its 5th byte */
    h[4] = 0x01;
    assert_int_equal(parse(h, 5), PROBE_NOMATCH);
}

static void roundtrip(int version, const struct sockaddr *src, socklen_t sl,
                      const struct sockaddr *dst)
{
    uint8_t buf[PROXY_HDR_MAX + 8];
    size_t n = proxy_build(buf, sizeof(buf), version, src, dst);

    assert_true(n > 0 && n <= PROXY_HDR_MAX);
    memcpy(buf + n, "tail", 4);
    assert_int_equal(parse(buf, n + 4), PROBE_MATCH);
    assert_int_equal(info.hdr_len, n);
    check_prefixes(buf, n);
    (void)sl;
    /* too small a buffer: nothing */
    assert_int_equal(proxy_build(buf, n - 1, version, src, dst), 0);
}

static void test_build_roundtrip(void **state)
{
    struct sockaddr_in s4 = {.sin_family = AF_INET, .sin_port = htons(40000)};
    struct sockaddr_in d4 = {.sin_family = AF_INET, .sin_port = htons(443)};
    struct sockaddr_in6 s6 = {.sin6_family = AF_INET6, .sin6_port = htons(50000)};
    struct sockaddr_in6 d6 = {.sin6_family = AF_INET6, .sin6_port = htons(8443)};
    struct sockaddr_in6 m6 = {.sin6_family = AF_INET6, .sin6_port = htons(1234)};
    uint8_t buf[PROXY_HDR_MAX];

    inet_pton(AF_INET, "203.0.113.7", &s4.sin_addr);
    inet_pton(AF_INET, "10.0.0.1", &d4.sin_addr);
    inet_pton(AF_INET6, "2001:db8::7", &s6.sin6_addr);
    inet_pton(AF_INET6, "2001:db8::1:2", &d6.sin6_addr);
    inet_pton(AF_INET6, "::ffff:198.51.100.9", &m6.sin6_addr);

    for (int v = 1; v <= 2; v++) {
        roundtrip(v, (struct sockaddr *)&s4, sizeof(s4), (struct sockaddr *)&d4);
        assert_int_equal(info.local, 0);
        check_v4(&info.src, "203.0.113.7", 40000);
        check_v4(&info.dst, "10.0.0.1", 443);

        roundtrip(v, (struct sockaddr *)&s6, sizeof(s6), (struct sockaddr *)&d6);
        assert_int_equal(info.local, 0);
        check_v6(&info.src, "2001:db8::7", 50000);
        check_v6(&info.dst, "2001:db8::1:2", 8443);

        /* v4-mapped client on a dual-stack socket + IPv4 destination: TCP4 */
        roundtrip(v, (struct sockaddr *)&m6, sizeof(m6), (struct sockaddr *)&d4);
        assert_int_equal(info.local, 0);
        check_v4(&info.src, "198.51.100.9", 1234);

        /* mixed families: UNKNOWN / LOCAL */
        roundtrip(v, (struct sockaddr *)&s4, sizeof(s4), (struct sockaddr *)&d6);
        assert_int_equal(info.local, 1);
    }
    assert_int_equal(
        proxy_build(buf, sizeof(buf), 1, (struct sockaddr *)&s4, (struct sockaddr *)&d6),
        strlen("PROXY UNKNOWN\r\n"));
    assert_memory_equal(buf, "PROXY UNKNOWN\r\n", 15);
    assert_int_equal(
        proxy_build(buf, sizeof(buf), 1, (struct sockaddr *)&s4, (struct sockaddr *)&d4),
        strlen("PROXY TCP4 203.0.113.7 10.0.0.1 40000 443\r\n"));
    assert_memory_equal(buf, "PROXY TCP4 203.0.113.7 10.0.0.1 40000 443\r\n", 43);
    assert_int_equal(
        proxy_build(buf, sizeof(buf), 3, (struct sockaddr *)&s4, (struct sockaddr *)&d4), 0);
    assert_int_equal(proxy_build(buf, sizeof(buf), 2, NULL, NULL), 16);
}

static void test_garbage(void **state)
{
    uint64_t seed = 7;
    uint8_t buf[300];

    assert_int_equal(parse("", 0), PROBE_AGAIN);
    for (int i = 0; i < 100000; i++) {
        size_t n = (size_t)(tu_rand(&seed) % sizeof(buf));
        enum probe_result r;

        for (size_t k = 0; k < n; k++)
            buf[k] = (uint8_t)tu_rand(&seed);
        if (n > 0 && i % 3 == 0)
            buf[0] = 'P';
        if (n >= 12 && i % 3 == 1)
            memcpy(buf, sig, 12);
        r = parse(buf, n);
        assert_true(r == PROBE_AGAIN || r == PROBE_MATCH || r == PROBE_NOMATCH);
        if (i % 10 == 0)
            check_need(buf, n);
    }
}

/* The signature check for listeners without PROXY: whole signatures match, prefixes
 * wait, anything else (HTTP, TLS, a v1 header's lookalikes) does not. */
static void test_signature(void **state)
{
    (void)state;
    static const uint8_t v2[] = "\r\n\r\n\0\r\nQUIT\n\x21\x11";
    assert_int_equal(proxy_signature((const uint8_t *)"PROXY TCP4 ", 11), PROBE_MATCH);
    assert_int_equal(proxy_signature((const uint8_t *)"PROXY ", 6), PROBE_MATCH);
    assert_int_equal(proxy_signature((const uint8_t *)"PROX", 4), PROBE_AGAIN);
    assert_int_equal(proxy_signature(v2, 14), PROBE_MATCH);
    assert_int_equal(proxy_signature(v2, 11), PROBE_AGAIN);
    assert_int_equal(proxy_signature(v2, 0), PROBE_AGAIN);
    assert_int_equal(proxy_signature((const uint8_t *)"PROXYX", 6), PROBE_NOMATCH);
    assert_int_equal(proxy_signature((const uint8_t *)"GET / HTTP/1.1\r\n", 16), PROBE_NOMATCH);
    assert_int_equal(proxy_signature((const uint8_t *)"\r\n\r\nGET", 7), PROBE_NOMATCH);
    assert_int_equal(proxy_signature((const uint8_t *)"\x16\x03\x01", 3), PROBE_NOMATCH);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1_parse), cmocka_unit_test(test_v1_reject),
        cmocka_unit_test(test_v2_parse), cmocka_unit_test(test_build_roundtrip),
        cmocka_unit_test(test_garbage),  cmocka_unit_test(test_signature),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
