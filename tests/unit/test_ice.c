/* Unit tests for the ICE syntax shared by the probes and the fan-out (lib/ice.c): the
 * verdict on a media server's answer to a captured Chromium ICE-TCP Binding request, and
 * ufrag syntax. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mux443/lib/ice.h"
#include "test_util.h"

static uint8_t *req;
static size_t req_len;

static int setup(void **state)
{
    (void)state;
    req = tu_load("chromium-ice-tcp-binding.bin", &req_len);
    /* RFC 4571 frame of a Binding request: length, type 0x0001, cookie. */
    assert_int_equal(req_len, 2 + ((size_t)req[0] << 8 | req[1]));
    assert_int_equal(req[2] << 8 | req[3], 0x0001);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(req);
    return 0;
}

#define ANSWER_CAP 1024 /* what the fan-out keeps of an answer (ANSWER_MAX in fanout.c) */

/* A framed STUN message of `type` answering `req` (its cookie and transaction id) with
 * attrs (n bytes, a multiple of 4) after the header. Returns the frame's length. */
static size_t answer(uint8_t *out, uint16_t type, const uint8_t *attrs, size_t n)
{
    size_t flen = STUN_HEADER + n;
    out[0] = (uint8_t)(flen >> 8);
    out[1] = (uint8_t)flen;
    out[2] = (uint8_t)(type >> 8);
    out[3] = (uint8_t)type;
    out[4] = (uint8_t)(n >> 8);
    out[5] = (uint8_t)n;
    memcpy(out + 6, req + 6, 16); /* magic cookie + transaction id */
    memcpy(out + 2 + STUN_HEADER, attrs, n);
    return 2 + flen;
}

/* XOR-MAPPED-ADDRESS (IPv4), as a Binding success carries. */
static const uint8_t xor_mapped[] = {0x00, 0x20, 0x00, 0x08, 0x00, 0x01,
                                     0xa1, 0x47, 0x5e, 0x12, 0xa4, 0x43};
/* ERROR-CODE 401 Unauthorized, what a server answers for a ufrag it does not know. */
static const uint8_t error_401[] = {0x00, 0x09, 0x00, 0x10, 0x00, 0x00, 0x04, 0x01, 'U', 'n',
                                    'a',  'u',  't',  'h',  'o',  'r',  'i',  'z',  'e', 'd'};

/* The verdict on the first n bytes of ans, from an exact-size copy (ASan sees any read
 * past what has arrived). */
static enum ice_verdict judge(const uint8_t *ans, size_t n, size_t cap)
{
    uint8_t *copy = malloc(n ? n : 1);
    assert_non_null(copy);
    memcpy(copy, ans, n);
    enum ice_verdict v = ice_judge_answer(req, copy, n, cap);
    free(copy);
    return v;
}

/* Every proper prefix of ans (n bytes) is AGAIN; the whole is `want`. */
static void check_prefixes(const uint8_t *ans, size_t n, enum ice_verdict want)
{
    for (size_t k = 0; k < n; k++)
        if (judge(ans, k, ANSWER_CAP) != ICE_AGAIN)
            fail_msg("prefix of %zu of %zu bytes: not AGAIN", k, n);
    assert_int_equal(judge(ans, n, ANSWER_CAP), want);
}

static void test_binding_success_wins(void **state)
{
    uint8_t a[64];
    (void)state;
    size_t n = answer(a, 0x0101, xor_mapped, sizeof(xor_mapped));
    check_prefixes(a, n, ICE_WIN);
    /* What follows the first frame (the server's own check, say) does not change it. */
    uint8_t more[80];
    memcpy(more, a, n);
    memset(more + n, 0xee, sizeof(more) - n);
    assert_int_equal(judge(more, sizeof(more), ANSWER_CAP), ICE_WIN);
}

static void test_error_response_loses(void **state)
{
    uint8_t a[64];
    (void)state;
    size_t n = answer(a, 0x0111, error_401, sizeof(error_401));
    check_prefixes(a, n, ICE_LOSE);
}

static void test_other_transaction_loses(void **state)
{
    uint8_t a[64];
    (void)state;
    size_t n = answer(a, 0x0101, xor_mapped, sizeof(xor_mapped));
    a[2 + 19] ^= 1; /* the last byte of the transaction id */
    check_prefixes(a, n, ICE_LOSE);
    n = answer(a, 0x0101, xor_mapped, sizeof(xor_mapped));
    a[2 + 4] ^= 0x80; /* the magic cookie */
    assert_int_equal(judge(a, n, ANSWER_CAP), ICE_LOSE);
}

/* Not a success response: the request echoed back, or a frame too short for STUN. */
static void test_not_a_success_loses(void **state)
{
    uint8_t a[160];
    (void)state;
    memcpy(a, req, req_len);
    assert_int_equal(judge(a, req_len, ANSWER_CAP), ICE_LOSE);
    static const uint8_t tiny[] = {0x00, 0x04, 0x01, 0x01, 0x00, 0x00};
    check_prefixes(tiny, sizeof(tiny), ICE_LOSE);
}

/* A frame that cannot fit in cap loses as soon as its length is known. */
static void test_longer_than_cap_loses(void **state)
{
    uint8_t a[64];
    (void)state;
    size_t n = answer(a, 0x0101, xor_mapped, sizeof(xor_mapped));
    assert_int_equal(judge(a, 1, n - 1), ICE_AGAIN);
    assert_int_equal(judge(a, 2, n - 1), ICE_LOSE);
    assert_int_equal(judge(a, n, n - 1), ICE_LOSE);
    assert_int_equal(judge(a, n, n), ICE_WIN); /* exactly cap: fits */
    static const uint8_t huge[] = {0xff, 0xff};
    assert_int_equal(judge(huge, 2, ANSWER_CAP), ICE_LOSE);
}

/* UDP (ice_judge_udp): one datagram, the request unframed. */
static enum ice_verdict judge_udp(const uint8_t *ans, size_t n)
{
    uint8_t *copy = malloc(n ? n : 1);
    assert_non_null(copy);
    memcpy(copy, ans, n);
    enum ice_verdict v = ice_judge_udp(req + 2, copy, n);
    free(copy);
    return v;
}

static void test_udp_verdict(void **state)
{
    uint8_t a[64];
    (void)state;
    size_t n = answer(a, 0x0101, xor_mapped, sizeof(xor_mapped));
    assert_int_equal(judge_udp(a + 2, n - 2), ICE_WIN);
    /* A datagram shorter or longer than its STUN length is not a success. */
    assert_int_equal(judge_udp(a + 2, n - 3), ICE_LOSE);
    assert_int_equal(judge_udp(a + 2, n - 2 - 4 - 1), ICE_LOSE);
    /* Shorter than a header, not STUN, another transaction: they decide nothing. */
    assert_int_equal(judge_udp(a + 2, STUN_HEADER - 1), ICE_AGAIN);
    a[2 + 19] ^= 1;
    assert_int_equal(judge_udp(a + 2, n - 2), ICE_AGAIN);
    n = answer(a, 0x0101, xor_mapped, sizeof(xor_mapped));
    a[2] = 0x80; /* RTP */
    assert_int_equal(judge_udp(a + 2, n - 2), ICE_AGAIN);
    /* The error a server answers for a ufrag it does not know. */
    n = answer(a, 0x0111, error_401, sizeof(error_401));
    assert_int_equal(judge_udp(a + 2, n - 2), ICE_LOSE);
    /* The request echoed back. */
    assert_int_equal(judge_udp(req + 2, req_len - 2), ICE_LOSE);
}

static void test_ufrag_syntax(void **state)
{
    char u[UFRAG_MAX + 2];
    (void)state;
    assert_true(ufrag_valid("dptM", 4));
    assert_true(ufrag_valid("a+b/", 4));
    assert_false(ufrag_valid("abc", 3));
    assert_false(ufrag_valid("ab-c", 4));
    assert_false(ufrag_valid("ab:c", 4));
    assert_false(ufrag_valid("ab\0c", 4));
    memset(u, 'x', sizeof(u));
    assert_true(ufrag_valid(u, UFRAG_MAX));
    assert_false(ufrag_valid(u, UFRAG_MAX + 1));
    assert_true(ufrag_charset("d", 1));
    assert_false(ufrag_charset("", 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_binding_success_wins),
        cmocka_unit_test(test_error_response_loses),
        cmocka_unit_test(test_other_transaction_loses),
        cmocka_unit_test(test_not_a_success_loses),
        cmocka_unit_test(test_longer_than_cap_loses),
        cmocka_unit_test(test_ufrag_syntax),
        cmocka_unit_test(test_udp_verdict),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
