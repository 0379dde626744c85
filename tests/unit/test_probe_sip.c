/* Unit tests for probe_sip: sipp's INVITE and sipsak's OPTIONS as captured (whole and
 * at every split), request and status lines built by hand, and the lines of HTTP and
 * SSH that it must refuse (and that probe_http refuses when they are SIP). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mux443/lib/probe_http.h"
#include "mux443/lib/probe_sip.h"
#include "test_util.h"

static struct probe_out out;

static size_t first_line(const uint8_t *p, size_t n)
{
    const uint8_t *lf = memchr(p, '\n', n);
    return lf ? (size_t)(lf - p) + 1 : 0;
}

static void test_vectors(void **state)
{
    static const struct {
        const char *file, *method, *host;
    } v[] = {{"sipp-uac-tcp-invite.bin", "INVITE", "127.0.0.1"},
             {"sipsak-options-tcp.bin", "OPTIONS", "127.0.0.1"}};

    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        size_t n;
        uint8_t *p = tu_load(v[i].file, &n);
        size_t line = first_line(p, n);

        assert_true(line > 0);
        tu_check_prefixes(probe_sip, p, n, line, PROBE_MATCH, &out);
        assert_int_equal(out.cls, CLASS_SIP);
        assert_int_equal(out.consumed, line);
        assert_string_equal(out.method, v[i].method);
        assert_string_equal(out.host, v[i].host);
        assert_false(out.sip_response);
        /* http-parser refuses SIP without waiting for more */
        assert_int_equal(tu_run(probe_http, p, n, &out), PROBE_NOMATCH);
        assert_int_equal(tu_run(probe_http, p, line, &out), PROBE_NOMATCH);
        free(p);
    }
}

static void test_lines(void **state)
{
    static const struct {
        const char *line, *method, *host;
        enum probe_result r;
    } v[] = {
        {"REGISTER sips:example.com SIP/2.0\r\n", "REGISTER", "example.com", PROBE_MATCH},
        {"INVITE sip:+15551234567;npdi@gw.example.net:5061;transport=tls SIP/2.0\r\n", "INVITE",
         "gw.example.net", PROBE_MATCH},
        {"MESSAGE sip:bob@[2001:db8::1]:5060 SIP/2.0\r\n", "MESSAGE", "[2001:db8::1]", PROBE_MATCH},
        {"INVITE tel:+15551234567 SIP/2.0\r\n", "INVITE", "", PROBE_MATCH},
        {"OPTIONS SIP:Alice@Example.COM sip/2.0\r\n", "OPTIONS", "Example.COM", PROBE_MATCH},
        {"X-CUSTOM.METHOD sip:a@b SIP/2.0\r\n", "X-CUSTOM.METHOD", "b", PROBE_MATCH},
        {"SIP/2.0 200 OK\r\n", "", "", PROBE_MATCH},
        {"GET / HTTP/1.1\r\n", NULL, NULL, PROBE_NOMATCH},
        {"OPTIONS * HTTP/1.1\r\n", NULL, NULL, PROBE_NOMATCH},
        {"GET http://sip.example.com/ HTTP/1.1\r\n", NULL, NULL, PROBE_NOMATCH},
        {"OPTIONS sip:a@b HTTP/1.1\r\n", NULL, NULL, PROBE_NOMATCH},
        {"INVITE sip:a@b SIP/2.0\n", NULL, NULL, PROBE_NOMATCH},
        {"INVITE  sip:a@b SIP/2.0\r\n", NULL, NULL, PROBE_NOMATCH},
        {"SSH-2.0-OpenSSH_9.2\r\n", NULL, NULL, PROBE_NOMATCH},
        {"SIP/2.0 20 OK\r\n", NULL, NULL, PROBE_NOMATCH},
        {"INVITE sip:a@b SIP/2.0", NULL, NULL, PROBE_AGAIN},
        {"INVITE si", NULL, NULL, PROBE_AGAIN},
    };

    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        size_t n = strlen(v[i].line);
        enum probe_result r = tu_run(probe_sip, (const uint8_t *)v[i].line, n, &out);

        tu_check_sane(r, &out, n);
        assert_int_equal(r, v[i].r);
        if (r == PROBE_NOMATCH)
            assert_non_null(out.why);
        if (r != PROBE_MATCH)
            continue;
        assert_int_equal(out.consumed, n);
        assert_string_equal(out.method, v[i].method);
        assert_string_equal(out.host, v[i].host);
        assert_int_equal(out.sip_response, v[i].method[0] == '\0');
        /* every prefix waits */
        for (size_t k = 0; k < n; k++)
            assert_int_equal(tu_run(probe_sip, (const uint8_t *)v[i].line, k, &out), PROBE_AGAIN);
    }
}

/* A Request-URI host longer than PROBE_NAME_MAX is cut, and a line past
 * PROBE_SIP_LINE_MAX without its end is refused rather than waited for. */
static void test_bounds(void **state)
{
    static uint8_t buf[PROBE_SIP_LINE_MAX + 64];
    size_t n = 0;

    n += (size_t)sprintf((char *)buf, "INVITE sip:a@");
    memset(buf + n, 'h', 400);
    n += 400;
    n += (size_t)sprintf((char *)buf + n, " SIP/2.0\r\n");
    assert_int_equal(tu_run(probe_sip, buf, n, &out), PROBE_MATCH);
    assert_int_equal(out.host_len, PROBE_NAME_MAX);
    assert_true(out.host_cut);

    memcpy(buf, "INVITE sip:", 11);
    memset(buf + 11, 'x', sizeof(buf) - 11);
    assert_int_equal(tu_run(probe_sip, buf, PROBE_SIP_LINE_MAX - 1, &out), PROBE_AGAIN);
    assert_int_equal(tu_run(probe_sip, buf, PROBE_SIP_LINE_MAX, &out), PROBE_NOMATCH);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_lines),
        cmocka_unit_test(test_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
