/* Unit tests for the per-worker UDP flow table: lookup among many flows of one address,
 * every bound (total, per prefix, per second) refusing new flows while existing ones stay
 * findable, idle expiry with a bounded scan, the unverified budget and transaction ids. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "mux443/core/udp_flow.h"

static struct sockaddr_storage ss;

static const struct sockaddr *v4(const char *ip, uint16_t port)
{
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;

    memset(&ss, 0, sizeof(ss));
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    inet_pton(AF_INET, ip, &a->sin_addr);
    return (const struct sockaddr *)&ss;
}

static const struct sockaddr *v6(const char *ip, uint16_t port)
{
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

    memset(&ss, 0, sizeof(ss));
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    inet_pton(AF_INET6, ip, &a->sin6_addr);
    return (const struct sockaddr *)&ss;
}

static struct udp_flow *open_ok(struct udp_ftab *t, const struct sockaddr *sa, uint64_t now)
{
    struct udp_flow *f;

    assert_int_equal(udp_ftab_open(t, sa, sizeof(ss), now, &f), UDPR_OK);
    assert_non_null(f);
    assert_ptr_equal(udp_ftab_find(t, sa), f);
    return f;
}

static void test_lookup_and_full(void **state)
{
    struct udp_limits lim = {.max_flows = 1000};
    struct udp_ftab t;
    struct udp_flow *f, *v[1000];

    assert_int_equal(udp_ftab_init(&t, &lim), 0);
    /* 1000 source ports of one address: every one finds its own flow */
    for (unsigned i = 0; i < 1000; i++) {
        v[i] = open_ok(&t, v4("192.0.2.1", (uint16_t)(10000 + i)), 0);
        assert_int_equal(v[i]->up[UDP_UP_MEDIA].fd, -1);
        assert_int_equal(v[i]->up[UDP_UP_TURN].fd, -1);
    }
    assert_int_equal(t.open, 1000);
    for (unsigned i = 0; i < 1000; i++)
        assert_ptr_equal(udp_ftab_find(&t, v4("192.0.2.1", (uint16_t)(10000 + i))), v[i]);
    assert_null(udp_ftab_find(&t, v4("192.0.2.1", 9999)));
    assert_null(udp_ftab_find(&t, v4("192.0.2.2", 10000)));
    /* full: refused and counted, the existing flows untouched */
    assert_int_equal(udp_ftab_open(&t, v4("198.51.100.1", 1), sizeof(ss), 0, &f), UDPR_FULL);
    assert_null(f);
    assert_int_equal(t.refused[UDPR_FULL], 1);
    assert_ptr_equal(udp_ftab_find(&t, v4("192.0.2.1", 10500)), v[500]);
    /* closing one (middle of a chain or not) frees its slot for the next */
    udp_ftab_close(&t, v[500]);
    assert_null(udp_ftab_find(&t, v4("192.0.2.1", 10500)));
    assert_ptr_equal(udp_ftab_find(&t, v4("192.0.2.1", 10501)), v[501]);
    f = open_ok(&t, v6("2001:db8::1", 443), 0);
    assert_ptr_equal(f, v[500]); /* the freed slot */
    /* IPv4 and its v4-mapped IPv6 form are one client */
    assert_ptr_equal(udp_ftab_find(&t, v6("::ffff:192.0.2.1", 10001)), v[1]);
    for (unsigned i = 0; i < 1000; i++)
        udp_ftab_close(&t, i == 500 ? f : v[i]);
    assert_int_equal(t.open, 0);
    udp_ftab_free(&t);
}

static void test_per_prefix(void **state)
{
    struct udp_limits lim = {.max_flows = 64, .per_prefix = 3};
    struct udp_ftab t;
    struct udp_flow *f, *a[3];

    assert_int_equal(udp_ftab_init(&t, &lim), 0);
    a[0] = open_ok(&t, v4("203.0.113.1", 1), 0);
    a[1] = open_ok(&t, v4("203.0.113.2", 1), 0);
    a[2] = open_ok(&t, v4("203.0.113.200", 7), 0);
    assert_int_equal(udp_ftab_open(&t, v4("203.0.113.9", 1), sizeof(ss), 0, &f), UDPR_PREFIX);
    assert_int_equal(t.refused[UDPR_PREFIX], 1);
    open_ok(&t, v4("203.0.114.1", 1), 0); /* another /24 */
    /* IPv6: one /64 */
    open_ok(&t, v6("2001:db8:0:1::1", 1), 0);
    open_ok(&t, v6("2001:db8:0:1::2", 1), 0);
    open_ok(&t, v6("2001:db8:0:1:ffff::", 1), 0);
    assert_int_equal(udp_ftab_open(&t, v6("2001:db8:0:1::9", 1), sizeof(ss), 0, &f), UDPR_PREFIX);
    open_ok(&t, v6("2001:db8:0:2::1", 1), 0);
    /* a flow that ends makes room in its prefix */
    udp_ftab_close(&t, a[1]);
    open_ok(&t, v4("203.0.113.9", 1), 0);
    udp_ftab_free(&t);
}

static void test_rate(void **state)
{
    struct udp_limits lim = {.max_flows = 64, .new_per_sec = 10};
    struct udp_ftab t;
    struct udp_flow *f;
    uint16_t port = 1;

    assert_int_equal(udp_ftab_init(&t, &lim), 0);
    for (int i = 0; i < 10; i++)
        open_ok(&t, v4("192.0.2.1", port++), 5000);
    assert_int_equal(udp_ftab_open(&t, v4("192.0.2.1", port), sizeof(ss), 5000, &f), UDPR_RATE);
    assert_int_equal(udp_ftab_open(&t, v4("192.0.2.1", port), sizeof(ss), 5050, &f), UDPR_RATE);
    assert_int_equal(t.refused[UDPR_RATE], 2);
    open_ok(&t, v4("192.0.2.1", port++), 5100); /* 100 ms: one more token */
    /* a long pause saves at most one second's worth */
    for (int i = 0; i < 10; i++)
        open_ok(&t, v4("192.0.2.1", port++), 60000);
    assert_int_equal(udp_ftab_open(&t, v4("192.0.2.1", port), sizeof(ss), 60000, &f), UDPR_RATE);
    udp_ftab_free(&t);
}

static void test_expiry(void **state)
{
    struct udp_limits lim = {.max_flows = 16};
    struct udp_ftab t;
    struct udp_flow *v[16], *a, *b;
    uint32_t cursor = 0;
    size_t n = 0;

    assert_int_equal(udp_ftab_init(&t, &lim), 0);
    a = open_ok(&t, v4("192.0.2.1", 1), 1000);
    b = open_ok(&t, v4("192.0.2.1", 2), 1000);
    a->idle_ms = b->idle_ms = 120000;
    b->last_ms = 100000; /* b saw a datagram later */
    assert_int_equal(udp_ftab_expired(&t, 120999, &cursor, 16, v, 16), 0);
    assert_int_equal(udp_ftab_expired(&t, 121000, &cursor, 16, v, 16), 1);
    assert_ptr_equal(v[0], a);
    /* a bounded scan: 4 slots a call, the cursor goes round the table */
    for (int k = 0; k < 4; k++)
        n += udp_ftab_expired(&t, 300000, &cursor, 4, v + n, 16 - n);
    assert_int_equal(n, 2);
    udp_ftab_free(&t);
}

static void test_budget_and_tids(void **state)
{
    struct udp_up u = {.fd = -1};
    struct udp_flow f;
    uint8_t tid[6][12];

    for (int i = 0; i < 5; i++)
        assert_true(udp_up_admit(&u, 5));
    assert_false(udp_up_admit(&u, 5));
    u.verified = true;
    for (int i = 0; i < 100; i++)
        assert_true(udp_up_admit(&u, 5));

    memset(&f, 0, sizeof(f));
    memset(tid, 0, sizeof(tid));
    for (int i = 0; i < 6; i++) {
        tid[i][0] = (uint8_t)(i + 1);
        udp_flow_note_tid(&f, i == 3 ? UDP_UP_TURN : UDP_UP_MEDIA, tid[i]);
    }
    /* the ring keeps the last UDP_TIDS: 0 and 1 are forgotten */
    assert_int_equal(udp_flow_tid_side(&f, tid[0]), -1);
    assert_int_equal(udp_flow_tid_side(&f, tid[3]), UDP_UP_TURN);
    assert_int_equal(udp_flow_tid_side(&f, tid[3]), -1); /* answered once */
    assert_int_equal(udp_flow_tid_side(&f, tid[5]), UDP_UP_MEDIA);
    assert_string_equal(udp_refuse_name(UDPR_FULL), "table_full");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookup_and_full),
        cmocka_unit_test(test_per_prefix),
        cmocka_unit_test(test_rate),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_budget_and_tids),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
