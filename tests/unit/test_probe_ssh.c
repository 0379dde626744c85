/* Unit tests for probe_ssh: OpenSSH's identification string as captured (every split),
 * SSH-1.99, and what is no SSH client's first line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mux443/lib/probe_http.h"
#include "mux443/lib/probe_ssh.h"
#include "test_util.h"

static struct probe_out out;

static void test_vector(void **state)
{
    size_t n;
    uint8_t *p = tu_load("openssh-client-ident.bin", &n);

    tu_check_prefixes(probe_ssh, p, n, 8, PROBE_MATCH, &out);
    assert_int_equal(out.cls, CLASS_SSH);
    assert_int_equal(out.consumed, 8);
    for (size_t k = 0; k < 8; k++)
        assert_int_equal(tu_run(probe_ssh, p, k, &out), PROBE_AGAIN);
    /* neither HTTP nor SIP waits on it */
    assert_int_equal(tu_run(probe_http, p, n, &out), PROBE_NOMATCH);
    assert_int_equal(tu_run(probe_http, p, 8, &out), PROBE_NOMATCH);
    free(p);
}

static void test_lines(void **state)
{
    static const struct {
        const char *s;
        enum probe_result r;
    } v[] = {
        {"SSH-1.99-PuTTY\r\n", PROBE_MATCH},
        {"SSH-2.0-x", PROBE_MATCH},
        {"SSH-1.5-old\r\n", PROBE_NOMATCH},
        {"SSH-2.1-x\r\n", PROBE_NOMATCH},
        {"ssh-2.0-x\r\n", PROBE_NOMATCH},
        {"GET / HTTP/1.1\r\n", PROBE_NOMATCH},
        {"SSH-1.9", PROBE_AGAIN},
        {"SSH-", PROBE_AGAIN},
    };

    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        size_t n = strlen(v[i].s);
        enum probe_result r = tu_run(probe_ssh, (const uint8_t *)v[i].s, n, &out);
        tu_check_sane(r, &out, n);
        assert_int_equal(r, v[i].r);
        if (r == PROBE_NOMATCH)
            assert_non_null(out.why);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vector),
        cmocka_unit_test(test_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
