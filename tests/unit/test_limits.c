/* Unit tests for the per-client keys (address prefixes), proxy_from prefixes and the
 * preread budget (state/limits.c, lib/addr.c). */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "mux443/lib/addr.h"
#include "mux443/state/limits.h"

static struct sockaddr_storage sa(const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
    }
    return ss;
}

/* The key and text of ip with the default prefixes (/32, /64) or the given ones. */
static void key_of(const char *ip, unsigned v4, unsigned v6, uint8_t k[16], char *text)
{
    struct sockaddr_storage ss = sa(ip);
    assert_true(limits_client_key((struct sockaddr *)&ss, v4, v6, k, text, ADDR_TEXT_MAX));
}

static void test_client_key(void **state)
{
    (void)state;
    uint8_t a[16], b[16];
    char ta[ADDR_TEXT_MAX], tb[ADDR_TEXT_MAX];

    key_of("2001:db8::2", 32, 64, a, ta);
    key_of("2001:db8::ffff:5", 32, 64, b, tb);
    assert_memory_equal(a, b, 16); /* one /64: one client */
    assert_string_equal(ta, "2001:db8::/64");
    key_of("2001:db8:0:1::2", 32, 64, b, tb);
    assert_memory_not_equal(a, b, 16);
    key_of("2001:db8::2", 32, 128, a, ta);
    key_of("2001:db8::3", 32, 128, b, tb);
    assert_memory_not_equal(a, b, 16);
    assert_string_equal(ta, "2001:db8::2/128");

    key_of("192.0.2.1", 32, 64, a, ta);
    key_of("192.0.2.2", 32, 64, b, tb);
    assert_memory_not_equal(a, b, 16);
    assert_string_equal(ta, "192.0.2.1/32");
    key_of("192.0.2.1", 24, 64, a, ta);
    key_of("192.0.2.200", 24, 64, b, tb);
    assert_memory_equal(a, b, 16);
    assert_string_equal(ta, "192.0.2.0/24");
    /* IPv4 and its v4-mapped IPv6 form are one client. */
    key_of("::ffff:192.0.2.7", 24, 64, b, tb);
    assert_memory_equal(a, b, 16);
}

static void test_client_counts(void **state)
{
    (void)state;
    uint8_t k[16];
    char t[ADDR_TEXT_MAX];
    bool log_it;

    key_of("2001:db8:9::1", 32, 64, k, t);
    for (int i = 0; i < 3; i++)
        assert_true(limits_client_acquire(LIMITS_CONNS, k, 3, &log_it));
    assert_false(limits_client_acquire(LIMITS_CONNS, k, 3, &log_it));
    assert_true(log_it); /* the first refusal is logged */
    assert_false(limits_client_acquire(LIMITS_CONNS, k, 3, &log_it));
    assert_false(log_it); /* not the next ones */
    /* Another kind counts apart. */
    assert_true(limits_client_acquire(LIMITS_FANOUTS, k, 1, &log_it));
    assert_false(limits_client_acquire(LIMITS_FANOUTS, k, 1, &log_it));
    limits_client_release(LIMITS_FANOUTS, k);
    limits_client_release(LIMITS_CONNS, k);
    assert_true(limits_client_acquire(LIMITS_CONNS, k, 3, &log_it));
    for (int i = 0; i < 3; i++)
        limits_client_release(LIMITS_CONNS, k);
}

static void test_cidr(void **state)
{
    (void)state;
    struct addr_cidr n;
    struct sockaddr_storage ss;

    assert_true(addr_cidr_parse("10.0.0.0/8", &n));
    ss = sa("10.200.3.4");
    assert_true(addr_cidr_match(&n, (struct sockaddr *)&ss));
    ss = sa("11.0.0.1");
    assert_false(addr_cidr_match(&n, (struct sockaddr *)&ss));
    ss = sa("::ffff:10.1.1.1");
    assert_true(addr_cidr_match(&n, (struct sockaddr *)&ss));
    assert_true(addr_cidr_parse("192.0.2.77", &n)); /* one address */
    ss = sa("192.0.2.77");
    assert_true(addr_cidr_match(&n, (struct sockaddr *)&ss));
    ss = sa("192.0.2.78");
    assert_false(addr_cidr_match(&n, (struct sockaddr *)&ss));
    assert_true(addr_cidr_parse("2001:db8::/33", &n));
    ss = sa("2001:db8:7fff::1");
    assert_true(addr_cidr_match(&n, (struct sockaddr *)&ss));
    ss = sa("2001:db8:8000::1");
    assert_false(addr_cidr_match(&n, (struct sockaddr *)&ss));
    assert_true(addr_cidr_parse("0.0.0.0/0", &n));
    ss = sa("2001:db8::1"); /* /0 of IPv4 is the v4-mapped range only */
    assert_false(addr_cidr_match(&n, (struct sockaddr *)&ss));

    const char *bad[] = {"",       "/8",          "10.0.0.0/33",  "10.0.0.0/",   "10.0.0.0/8x",
                         "::/129", "10.0.0.0/-1", "host.example", "10.0.0.0/8/8"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(addr_cidr_parse(bad[i], &n));
}

static void test_preread_budget(void **state)
{
    (void)state;
    const size_t budget = 80000; /* growth may use 70000 of it */

    assert_true(limits_preread_take(40000, budget, true));
    assert_true(limits_preread_take(30000, budget, false));
    assert_false(limits_preread_take(4096, budget, false)); /* past the growth share */
    assert_true(limits_preread_take(4096, budget, true));   /* a first block still fits */
    assert_false(limits_preread_take(8192, budget, true));  /* past the whole budget */
    assert_int_equal(limits_preread_held(), 74096);
    limits_preread_give(74096);
    assert_int_equal(limits_preread_held(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_key),
        cmocka_unit_test(test_client_counts),
        cmocka_unit_test(test_cidr),
        cmocka_unit_test(test_preread_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
