/* Unit tests for probe_http: the captured WebSocket upgrade, every split of it, damage,
 * and request heads covering upgrade detection, target forms and Host parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mux443/lib/probe_http.h"
#include "test_util.h"

static struct probe_out out;

static enum probe_result run(const char *req)
{
    enum probe_result r = tu_run(probe_http, (const uint8_t *)req, strlen(req), &out);

    tu_check_sane(r, &out, strlen(req));
    return r;
}

static void test_vector(void **state)
{
    size_t n;
    uint8_t *p = tu_load("chromium-websocket-upgrade.bin", &n);

    tu_check_prefixes(probe_http, p, n, 0, PROBE_MATCH, &out);
    assert_int_equal(out.cls, CLASS_WEBSOCKET);
    assert_string_equal(out.method, "GET");
    assert_string_equal(out.path, "/ws");
    assert_int_equal(out.path_len, 3);
    assert_string_equal(out.host, "ws.test");
    assert_int_equal(out.host_len, 7);
    assert_int_equal(out.consumed, n);
    free(p);
}

static void test_vector_corruption(void **state)
{
    static const uint8_t masks[] = {0x01, 0x20, 0x80, 0xff};
    size_t n;
    uint8_t *p = tu_load("chromium-websocket-upgrade.bin", &n);
    uint8_t *q = malloc(n);
    uint64_t seed = 42;

    for (size_t k = 0; k < n; k++) {
        for (size_t m = 0; m < sizeof(masks); m++) {
            enum probe_result r;

            memcpy(q, p, n);
            q[k] ^= masks[m];
            r = tu_run(probe_http, q, n, &out);
            tu_check_sane(r, &out, n);
        }
    }
    for (int i = 0; i < 2000; i++) {
        enum probe_result r;
        size_t cut = (size_t)(tu_rand(&seed) % (n + 1));

        memcpy(q, p, n);
        q[tu_rand(&seed) % n] = (uint8_t)tu_rand(&seed);
        q[tu_rand(&seed) % n] = (uint8_t)tu_rand(&seed);
        r = tu_run(probe_http, q, cut, &out);
        tu_check_sane(r, &out, cut);
    }
    free(q);
    free(p);
}

static void test_upgrade_variants(void **state)
{
    assert_int_equal(run("GET /chat HTTP/1.1\r\nHost: a.test\r\nConnection: keep-alive, "
                         "Upgrade\r\nUpgrade: websocket\r\n\r\n"),
                     PROBE_MATCH);
    assert_int_equal(out.cls, CLASS_WEBSOCKET);
    assert_int_equal(run("GET / HTTP/1.1\r\nUPGRADE: WebSocket\r\nCONNECTION: UPGRADE\r\n\r\n"),
                     PROBE_MATCH);
    assert_int_equal(out.cls, CLASS_WEBSOCKET);
    assert_int_equal(run("GET / HTTP/1.1\r\nConnection: Upgrade , close\r\nUpgrade: foo/2, "
                         "websocket\r\n\r\n"),
                     PROBE_MATCH);
    assert_int_equal(out.cls, CLASS_WEBSOCKET);
    /* tokens split over two header lines of the same name */
    assert_int_equal(run("GET / HTTP/1.1\r\nConnection: keep-alive\r\nConnection: upgrade\r\n"
                         "Upgrade: websocket\r\n\r\n"),
                     PROBE_MATCH);
    assert_int_equal(out.cls, CLASS_WEBSOCKET);

    /* missing Upgrade header, missing upgrade token, near-miss tokens */
    assert_int_equal(run("GET / HTTP/1.1\r\nConnection: Upgrade\r\n\r\n"), PROBE_MATCH);
    assert_int_equal(out.cls, CLASS_HTTP);
    assert_int_equal(run("GET / HTTP/1.1\r\nConnection: keep-alive\r\nUpgrade: websocket\r\n\r\n"),
                     PROBE_MATCH);
    assert_int_equal(out.cls, CLASS_HTTP);
    assert_int_equal(run("GET / HTTP/1.1\r\nConnection: upgrades\r\nUpgrade: websocket\r\n\r\n"),
                     PROBE_MATCH);
    assert_int_equal(out.cls, CLASS_HTTP);
    assert_int_equal(run("GET / HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: web socket\r\n\r\n"),
                     PROBE_MATCH);
    assert_int_equal(out.cls, CLASS_HTTP);
    assert_int_equal(run("GET / HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: websocketx\r\n\r\n"),
                     PROBE_MATCH);
    assert_int_equal(out.cls, CLASS_HTTP);
    assert_int_equal(run("GET / HTTP/1.1\r\nConnection: upgrade\r\nX-Upgrade: websocket\r\n\r\n"),
                     PROBE_MATCH);
    assert_int_equal(out.cls, CLASS_HTTP);
    /* POST with upgrade headers is plain HTTP */
    assert_int_equal(run("POST /ws HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: websocket\r\n"
                         "Content-Length: 0\r\n\r\n"),
                     PROBE_MATCH);
    assert_int_equal(out.cls, CLASS_HTTP);
    assert_string_equal(out.method, "POST");
}

/* A folded (obs-fold) Connection value reaches the parser's callback in two pieces. */
static void test_folded_header(void **state)
{
    enum probe_result r = run("GET / HTTP/1.1\r\nConnection: keep-alive,\r\n Upgrade\r\n"
                              "Upgrade: websocket\r\n\r\n");

    /* http-parser may refuse obs-fold; if it accepts it, the token must still be seen */
    if (r == PROBE_MATCH)
        assert_int_equal(out.cls, CLASS_WEBSOCKET);
    else
        assert_int_equal(r, PROBE_NOMATCH);
}

static void test_header_split(void **state)
{
    const char *req = "GET /a/b?x=1 HTTP/1.1\r\nHost: split.test\r\nConnection: Upgrade\r\n"
                      "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n";
    const char *lf = "GET /a HTTP/1.1\nHost: lf.test\n\n";

    tu_check_prefixes(probe_http, (const uint8_t *)req, strlen(req), 0, PROBE_MATCH, &out);
    assert_int_equal(out.cls, CLASS_WEBSOCKET);
    assert_string_equal(out.path, "/a/b");
    assert_string_equal(out.host, "split.test");
    assert_int_equal(out.consumed, strlen(req));
    tu_check_prefixes(probe_http, (const uint8_t *)lf, strlen(lf), 0, PROBE_MATCH, &out);
    assert_string_equal(out.host, "lf.test");
    assert_int_equal(out.consumed, strlen(lf));
}

static void test_targets_and_host(void **state)
{
    const char *body = "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello";

    assert_int_equal(run("GET http://abs.test:8080/p/q?x HTTP/1.1\r\n\r\n"), PROBE_MATCH);
    assert_string_equal(out.host, "abs.test");
    assert_string_equal(out.path, "/p/q");
    assert_int_equal(run("GET http://abs.test HTTP/1.1\r\n\r\n"), PROBE_MATCH);
    assert_string_equal(out.host, "abs.test");
    assert_string_equal(out.path, "/");
    /* An absolute-form target naming another host than Host is refused (RFC 9112 3.2.2:
     * the server uses the target, a router the Host header); the same host, whatever its
     * case and port, is fine. */
    assert_int_equal(run("GET http://abs.test/p HTTP/1.1\r\nHost: hdr.test\r\n\r\n"), PROBE_MATCH);
    assert_string_equal(out.host, "hdr.test");
    assert_string_equal(out.path, "/p");
    assert_non_null(out.refuse);
    assert_int_equal(run("GET http://ABS.test:80/p HTTP/1.1\r\nHost: abs.TEST:8080\r\n\r\n"),
                     PROBE_MATCH);
    assert_null(out.refuse);
    assert_int_equal(run("GET http://user@abs.test/p HTTP/1.1\r\nHost: abs.test\r\n\r\n"),
                     PROBE_MATCH);
    assert_null(out.refuse);
    assert_int_equal(run("GET / HTTP/1.1\r\nHost: port.test:8443\r\n\r\n"), PROBE_MATCH);
    assert_string_equal(out.host, "port.test");
    assert_int_equal(run("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"), PROBE_MATCH);
    assert_string_equal(out.host, "[::1]");
    assert_int_equal(out.host_len, 5);
    assert_int_equal(run("GET / HTTP/1.1\r\nHost: [2001:db8::1]\r\n\r\n"), PROBE_MATCH);
    assert_string_equal(out.host, "[2001:db8::1]");
    assert_int_equal(run("GET http://[::1]:80/v6 HTTP/1.1\r\n\r\n"), PROBE_MATCH);
    assert_string_equal(out.host, "[::1]");
    assert_string_equal(out.path, "/v6");
    /* Two Host headers: refused (RFC 9112 3.2), whichever a backend would take. */
    assert_int_equal(run("GET / HTTP/1.1\r\nHost: first.test\r\nHost: second.test\r\n\r\n"),
                     PROBE_MATCH);
    assert_string_equal(out.host, "first.test");
    assert_non_null(out.refuse);
    assert_int_equal(run("GET / HTTP/1.1\r\nHost: same.test\r\nhost: same.test\r\n\r\n"),
                     PROBE_MATCH);
    assert_non_null(out.refuse);
    assert_int_equal(run("GET / HTTP/1.1\r\nHost: one.test\r\nX-Host: two.test\r\n\r\n"),
                     PROBE_MATCH);
    assert_null(out.refuse);
    assert_int_equal(run("OPTIONS * HTTP/1.1\r\nHost: o\r\n\r\n"), PROBE_MATCH);
    assert_string_equal(out.path, "*");
    assert_int_equal(run("CONNECT tunnel.test:443 HTTP/1.1\r\n\r\n"), PROBE_MATCH);
    assert_string_equal(out.method, "CONNECT");
    assert_string_equal(out.host, "tunnel.test");
    assert_int_equal(out.path_len, 0);
    assert_int_equal(run("GET /x HTTP/1.0\r\n\r\n"), PROBE_MATCH);
    assert_int_equal(out.host_len, 0);
    assert_string_equal(out.path, "/x");
    /* consumed is the head only */
    assert_int_equal(run(body), PROBE_MATCH);
    assert_int_equal(out.consumed, strlen(body) - 5);
}

static void test_long_fields(void **state)
{
    static char req[8192], host[600], path[2000];

    memset(host, 'h', sizeof(host) - 1);
    snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: %s:80\r\n\r\n", host);
    assert_int_equal(run(req), PROBE_MATCH);
    assert_true(out.host_cut);
    assert_int_equal(out.host_len, PROBE_NAME_MAX);
    path[0] = '/';
    memset(path + 1, 'p', sizeof(path) - 2);
    snprintf(req, sizeof(req), "GET %s?q HTTP/1.1\r\n\r\n", path);
    assert_int_equal(run(req), PROBE_MATCH);
    assert_true(out.path_cut);
    assert_int_equal(out.path_len, PROBE_PATH_MAX);
}

static void test_rejects(void **state)
{
    static const uint8_t bin[] = {0x16, 0x03, 0x01};

    assert_int_equal(tu_run(probe_http, bin, sizeof(bin), &out), PROBE_NOMATCH);
    assert_int_equal(run("get / HTTP/1.1\r\n\r\n"), PROBE_NOMATCH);
    assert_int_equal(run("GXT / HTTP/1.1\r\n\r\n"), PROBE_NOMATCH);
    assert_non_null(out.why);
    assert_int_equal(run("GET / HTTP/1.1\r\nBad\x01Header: x\r\n\r\n"), PROBE_NOMATCH);
    assert_int_equal(run("GET / FTP/1.1\r\n"), PROBE_NOMATCH);
    assert_int_equal(run("G"), PROBE_AGAIN);
    assert_int_equal(run("GET / HTTP/1.1\r\nHost: x\r\n"), PROBE_AGAIN);
    assert_int_equal(tu_run(probe_http, NULL, 0, &out), PROBE_AGAIN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vector),           cmocka_unit_test(test_vector_corruption),
        cmocka_unit_test(test_upgrade_variants), cmocka_unit_test(test_folded_header),
        cmocka_unit_test(test_header_split),     cmocka_unit_test(test_targets_and_host),
        cmocka_unit_test(test_long_fields),      cmocka_unit_test(test_rejects),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
