/* Unit tests for the admin API's request guards (lib/http_guard.c) and for what the
 * request reader (lib/http_req.c) hands them: Host, Origin and Content-Type captured
 * whatever the read boundaries, repeated headers counted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "mux443/lib/http_guard.h"
#include "mux443/lib/http_req.h"

static void test_host(void **state)
{
    (void)state;
    char *names[] = {"mux.internal", "ops.example.com"};
    const char *ok[] = {"127.0.0.1",    "127.0.0.1:9443",    "10.1.2.3:1",
                        "[::1]",        "[::1]:9443",        "[fe80::1]:80",
                        "localhost",    "LocalHost:9443",    "localhost.:9443",
                        "mux.internal", "MUX.INTERNAL:9443", "ops.example.com"};
    const char *bad[] = {"",
                         "rebind.evil.example",
                         "rebind.evil.example:9443",
                         "127.0.0.1.evil.example",
                         "localhost.evil.example",
                         "evil-localhost",
                         "mux.internal.evil.example",
                         "127.0.0.1:",
                         "127.0.0.1:94x3",
                         "127.0.0.1:9443:1",
                         "::1",
                         "[::1",
                         "[::1]x",
                         "[::1]:",
                         "[evil.example]:9443",
                         "1.2.3",
                         ":9443"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        assert_true(http_host_allowed(ok[i], names, 2));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(http_host_allowed(bad[i], names, 2));
    assert_false(http_host_allowed("mux.internal", names, 0)); /* only when configured */
}

static void test_media_type(void **state)
{
    (void)state;
    assert_true(http_media_type_is("application/json", "application/json"));
    assert_true(http_media_type_is("Application/JSON; charset=utf-8", "application/json"));
    assert_true(http_media_type_is("application/json ;charset=utf-8", "application/json"));
    assert_true(http_media_type_is("text/x-mux443-ufrags", "text/x-mux443-ufrags"));
    assert_false(http_media_type_is("", "application/json"));
    assert_false(http_media_type_is("text/plain", "application/json"));
    assert_false(http_media_type_is("application/jsonx", "application/json"));
    assert_false(http_media_type_is("application/json-seq", "application/json"));
    assert_false(http_media_type_is("text/plain; x=application/json", "application/json"));
}

static void test_token(void **state)
{
    (void)state;
    const char *want = "0123456789abcdef0123";
    assert_true(http_token_eq("0123456789abcdef0123", want));
    assert_false(http_token_eq("", want));
    assert_false(http_token_eq("0123456789abcdef012", want));   /* a prefix */
    assert_false(http_token_eq("0123456789abcdef01234", want)); /* longer */
    assert_false(http_token_eq("0123456789abcdef0124", want));  /* last byte */
    assert_false(http_token_eq("1123456789abcdef0123", want));  /* first byte */

    /* Authorization headers: Bearer, or Basic with the token as password (any user). */
    assert_true(http_auth_carries("Bearer 0123456789abcdef0123", want));
    assert_true(http_auth_carries("bearer  0123456789abcdef0123", want));
    assert_false(http_auth_carries("Bearer 0123456789abcdef012", want));
    /* base64("op:0123456789abcdef0123") and base64(":0123456789abcdef0123") */
    assert_true(http_auth_carries("Basic b3A6MDEyMzQ1Njc4OWFiY2RlZjAxMjM=", want));
    assert_true(http_auth_carries("Basic OjAxMjM0NTY3ODlhYmNkZWYwMTIz", want));
    /* base64("op:0123456789abcdef012"), no colon, bad alphabet, empty */
    assert_false(http_auth_carries("Basic b3A6MDEyMzQ1Njc4OWFiY2RlZjAxMg==", want));
    assert_false(http_auth_carries("Basic MDEyMzQ1Njc4OWFiY2RlZjAxMjM=", want));
    assert_false(http_auth_carries("Basic b3A6MDEy*zQ1", want));
    assert_false(http_auth_carries("Basic ", want));
    assert_false(http_auth_carries("", want));
    assert_false(http_auth_carries("Digest x", want));
}

/* Feeds req in pieces of `step` bytes; returns the last result. */
static int feed(struct http_req *r, const char *req, size_t step)
{
    size_t n = strlen(req), have = 0;
    const char *why = NULL;
    int res = 0;
    http_req_init(r);
    while (have < n && res == 0) {
        have = have + step < n ? have + step : n;
        res = http_req_feed(r, req, have, &why);
    }
    return res;
}

static void test_reader_headers(void **state)
{
    (void)state;
    const char *req = "POST /ufrags HTTP/1.1\r\nHost: rebind.evil.example\r\n"
                      "Origin: http://evil.example\r\nContent-Type: text/plain\r\n"
                      "Content-Length: 4\r\n\r\nabcd";
    for (size_t step = 1; step <= strlen(req); step++) {
        struct http_req r;
        assert_int_equal(feed(&r, req, step), 1);
        assert_int_equal(r.hdr_count[HREQ_HOST], 1);
        assert_int_equal(r.hdr_count[HREQ_ORIGIN], 1);
        assert_int_equal(r.hdr[HREQ_HOST].len, strlen("rebind.evil.example"));
        assert_memory_equal(req + r.hdr[HREQ_HOST].off, "rebind.evil.example", 19);
        assert_memory_equal(req + r.hdr[HREQ_ORIGIN].off, "http://evil.example", 19);
        assert_memory_equal(req + r.hdr[HREQ_CONTENT_TYPE].off, "text/plain", 10);
        assert_int_equal(r.hdr_count[HREQ_AUTHORIZATION], 0);
    }
}

static void test_reader_two_hosts(void **state)
{
    (void)state;
    const char *req = "GET /routes HTTP/1.1\r\nHost: 127.0.0.1\r\nhOsT: rebind.evil.example\r\n"
                      "Origin: a\r\nORIGIN: b\r\n\r\n";
    struct http_req r;
    assert_int_equal(feed(&r, req, 3), 1);
    assert_int_equal(r.hdr_count[HREQ_HOST], 2);
    assert_int_equal(r.hdr_count[HREQ_ORIGIN], 2);
    /* The first one is kept (and the guards refuse the request anyway). */
    assert_memory_equal(req + r.hdr[HREQ_HOST].off, "127.0.0.1", 9);
    assert_int_equal(r.hdr[HREQ_HOST].len, 9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_host),
        cmocka_unit_test(test_media_type),
        cmocka_unit_test(test_token),
        cmocka_unit_test(test_reader_headers),
        cmocka_unit_test(test_reader_two_hosts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
