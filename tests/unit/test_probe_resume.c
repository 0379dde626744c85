/* Unit tests for resumable detection: the state's size, and that bytes trickled in one
 * at a time cost work linear in their number (counted by the probes' work counter, which
 * this binary's copy of the lib layer is built with), with the one-shot answer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mux443/lib/classify.h"
#include "mux443/lib/probe.h"
#include "mux443/lib/probe_http.h"
#include "mux443/lib/probe_stun.h"
#include "mux443/lib/probe_tls.h"
#include "test_util.h"

#ifndef MUX443_PROBE_COUNT
#error "test_probe_resume needs the lib layer built with MUX443_PROBE_COUNT"
#endif

/* Work allowed per byte: a few step calls and a few bytes examined. Re-parsing from the
 * first byte on every call would cost about n * n / 2. */
#define WORK_PER_BYTE 4

static struct probe_out out, once;

/* Feeds p[0..n) one byte per call into one state, the bytes moving to a new buffer each
 * time it fills up (as the connection's preread buffer does when it doubles). Stops at
 * the first answer other than AGAIN; *at gets the byte count it came with. */
static enum probe_result trickle(const uint8_t *p, size_t n, struct probe_out *o, size_t *at)
{
    struct probe_state st;
    size_t cap = 512, k = 0;
    uint8_t *buf = malloc(cap);
    enum probe_result r;

    assert_non_null(buf);
    probe_state_init(&st);
    do {
        if (k == cap) {
            uint8_t *moved = malloc(cap * 2);

            assert_non_null(moved);
            memcpy(moved, buf, k);
            free(buf); /* ASan reports any use of the old buffer */
            buf = moved;
            cap *= 2;
        }
        if (k < n)
            buf[k] = p[k];
        k = k < n ? k + 1 : k;
        r = probe_detect(&st, buf, k, o);
    } while (r == PROBE_AGAIN && k < n);
    free(buf);
    *at = k;
    return r;
}

/* Trickles p and checks: the answer at the end equals the one-shot answer, and the
 * probes' work stayed within WORK_PER_BYTE per byte. */
static enum probe_result check_linear(const uint8_t *p, size_t n)
{
    unsigned long long work;
    size_t at;
    enum probe_result r;

    probe_work = 0;
    r = trickle(p, n, &out, &at);
    work = probe_work;
    assert_int_equal(at, n);
    assert_int_equal(tu_detect_once(p, n, &once), r);
    if (r == PROBE_MATCH) {
        assert_true(tu_same_fields(&out, &once));
        assert_int_equal(out.consumed, once.consumed);
    }
    print_message("%zu bytes, one per call: %llu units of work (%.2f per byte)\n", n, work,
                  (double)work / (double)n);
    assert_true(work <= WORK_PER_BYTE * (unsigned long long)n);
    /* The counter counts bytes: one parse of the whole buffer already costs about n. */
    probe_work = 0;
    tu_detect_once(p, n, &once);
    assert_true(probe_work >= n / 2);
    return r;
}

static void test_state_size(void **state)
{
    print_message("sizeof(struct probe_state) = %zu\n", sizeof(struct probe_state));
    assert_true(sizeof(struct probe_state) < 1024);
}

/* A ~24 KB request head (a WebSocket upgrade behind many long headers). */
static size_t big_head(char *buf, size_t cap, size_t target)
{
    size_t w = (size_t)snprintf(buf, cap, "GET /ws?room=1 HTTP/1.1\r\nHost: big.test:443\r\n");

    for (int i = 0; w < target; i++) {
        w += (size_t)snprintf(buf + w, cap - w, "X-Filler-%04d: ", i);
        memset(buf + w, 'a' + i % 26, 100);
        w += 100;
        w += (size_t)snprintf(buf + w, cap - w, "\r\n");
    }
    w += (size_t)snprintf(buf + w, cap - w,
                          "Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n");
    assert_true(w < cap);
    return w;
}

static void test_trickled_http_head(void **state)
{
    static char head[30000];
    size_t n = big_head(head, sizeof(head), 24 * 1024);

    assert_true(n >= 24 * 1024);
    assert_int_equal(check_linear((const uint8_t *)head, n), PROBE_MATCH);
    assert_int_equal(out.cls, CLASS_WEBSOCKET);
    assert_string_equal(out.host, "big.test");
    assert_string_equal(out.path, "/ws");
    assert_int_equal(out.consumed, n);
}

/* A 16 KiB ClientHello body (SNI, ALPN, then padding) in 1-byte records: 98 KB. */
static void test_trickled_clienthello(void **state)
{
    static uint8_t e[PROBE_TLS_HS_MAX], hs[PROBE_TLS_HS_MAX + 4], rec[6 * (PROBE_TLS_HS_MAX + 4)];
    static const uint8_t sni[] = {0x00, 0x00, 0x00, 0x0d, 0x00, 0x0b, 0x00, 0x00, 0x08,
                                  'b',  'i',  'g',  '.',  't',  'e',  's',  't'};
    static const uint8_t alpn[] = {0x00, 0x10, 0x00, 0x05, 0x00, 0x03, 0x02, 'h', '2'};
    size_t fixed = 2 + 32 + 1 + 4 + 2 + 2; /* body without the extension block */
    size_t l = 0, pad, hl, rn;

    memcpy(e, sni, sizeof(sni));
    l += sizeof(sni);
    memcpy(e + l, alpn, sizeof(alpn));
    l += sizeof(alpn);
    pad = PROBE_TLS_HS_MAX - fixed - l - 4;
    e[l++] = 0x00; /* padding (RFC 7685) */
    e[l++] = 0x15;
    e[l++] = (uint8_t)(pad >> 8);
    e[l++] = (uint8_t)pad;
    memset(e + l, 0, pad);
    l += pad;
    hl = tu_client_hello(e, l, hs, sizeof(hs));
    assert_int_equal(hl, 4 + PROBE_TLS_HS_MAX);
    rn = tu_tls_records(hs, hl, 1, rec, sizeof(rec));
    assert_int_equal(rn, 6 * hl);

    assert_int_equal(check_linear(rec, rn), PROBE_MATCH);
    assert_int_equal(out.cls, CLASS_TLS);
    assert_string_equal(out.sni, "big.test");
    assert_true(probe_alpn_offers(&out, "h2", 2));
    assert_int_equal(out.consumed, rn);
}

/* Past http-parser's 80 KiB head limit: refused at the same byte as in one call. */
static void test_head_overflow(void **state)
{
    static char head[90000];
    size_t n = big_head(head, sizeof(head), 85 * 1024), at;

    assert_int_equal(trickle((const uint8_t *)head, n, &out, &at), PROBE_NOMATCH);
    assert_true(at < n);
    assert_int_equal(tu_detect_once((const uint8_t *)head, at - 1, &once), PROBE_AGAIN);
    assert_int_equal(tu_detect_once((const uint8_t *)head, at, &once), PROBE_NOMATCH);
    assert_string_equal(out.why, once.why);
}

/* Reads that bring no new byte, and a MATCH asked again, answer the same. */
static void test_repeated_calls(void **state)
{
    static const char req[] = "GET /a HTTP/1.1\r\nHost: r.test\r\n\r\nextra";
    struct probe_state st;
    size_t n = sizeof(req) - 1;

    probe_state_init(&st);
    for (size_t k = 0; k <= n; k++) {
        for (int again = 0; again < 3; again++) {
            enum probe_result r = probe_detect(&st, (const uint8_t *)req, k, &out);

            assert_int_equal(r, tu_detect_once((const uint8_t *)req, k, &once));
            if (r == PROBE_MATCH) {
                assert_string_equal(out.host, "r.test");
                assert_int_equal(out.consumed, n - 5);
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_size),           cmocka_unit_test(test_trickled_http_head),
        cmocka_unit_test(test_trickled_clienthello), cmocka_unit_test(test_head_overflow),
        cmocka_unit_test(test_repeated_calls),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
