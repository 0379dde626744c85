/* The kernel relay's BPF side (src/lib/sockmap.c) on real loopback TCP connections: what
 * the program passes before arming, what it moves after, the dropped FIN, the limit, and
 * the refusal of a socket that is not ESTABLISHED. Skipped where the program cannot load
 * (not root, no CAP_BPF, built without libbpf). */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "mux443/lib/sockmap.h"

static struct sockmap *sm;

/* A connected loopback pair: *far is the remote end, *near the one mux443 would hold. */
static void tcp_pair(int *far, int *near)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(ls >= 0);
    assert_int_equal(bind(ls, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(ls, 1), 0);
    assert_int_equal(getsockname(ls, (struct sockaddr *)&a, &len), 0);
    *far = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(*far, (struct sockaddr *)&a, sizeof(a)), 0);
    *near = accept(ls, NULL, NULL);
    assert_true(*near >= 0);
    close(ls);
}

static bool readable(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, ms) == 1;
}

/* Reads exactly n bytes (waiting up to 5 s for each part). */
static void read_exact(int fd, char *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        assert_true(readable(fd, 5000));
        ssize_t r = recv(fd, buf + got, n - got, MSG_DONTWAIT);
        assert_true(r > 0);
        got += (size_t)r;
    }
}

/* A relayed connection: client <-> c_near and b_near <-> backend, both near ends in the
 * map as each other's peer, not armed, with this limit. */
struct rig {
    int client, c_near, backend, b_near;
    uint64_t ck, bk;
    struct sockmap_slot *cs, *bs;
};

static void rig_open(struct rig *r, uint64_t limit, const char *early)
{
    tcp_pair(&r->client, &r->c_near);
    tcp_pair(&r->backend, &r->b_near);
    if (early) /* arrives before the socket enters the map */
        assert_int_equal(send(r->client, early, strlen(early), 0), (ssize_t)strlen(early));
    r->ck = sockmap_cookie(r->c_near);
    r->bk = sockmap_cookie(r->b_near);
    assert_true(r->ck && r->bk && r->ck != r->bk);
    r->cs = sockmap_add(sm, r->c_near, r->ck, r->bk, limit);
    r->bs = sockmap_add(sm, r->b_near, r->bk, r->ck, limit);
    assert_non_null(r->cs);
    assert_non_null(r->bs);
}

static void rig_close(struct rig *r)
{
    sockmap_remove(sm, r->ck, r->cs);
    sockmap_remove(sm, r->bk, r->bs);
    close(r->client), close(r->c_near), close(r->backend), close(r->b_near);
}

static int setup(void **state)
{
    char err[256];
    (void)state;
    sm = sockmap_open(err, sizeof(err));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sockmap_close(sm);
    return 0;
}

static void test_pass_arm_move_fin(void **state)
{
    (void)state;
    if (!sm)
        skip();
    struct rig r;
    rig_open(&r, 1 << 20, "early");
    struct sockmap_slot *cs = r.cs;
    int client = r.client, c_near = r.c_near, backend = r.backend, b_near = r.b_near;

    /* Not armed: passed to user space, counted, nothing moved. */
    assert_int_equal(send(client, "hello", 5, 0), 5);
    char buf[64];
    read_exact(c_near, buf, 10);
    assert_memory_equal(buf, "earlyhello", 10);
    assert_int_equal(sockmap_load(&cs->passed), 10);
    assert_int_equal(sockmap_load(&cs->bytes), 0);
    assert_false(sockmap_arm(cs, 5)); /* user space has not read all it was passed */
    assert_int_equal(send(b_near, buf, 10, 0), 10);
    assert_true(sockmap_arm(cs, 10));

    /* Armed: the kernel moves the bytes, after those user space wrote. */
    assert_int_equal(send(client, "world", 5, 0), 5);
    read_exact(backend, buf, 15);
    assert_memory_equal(buf, "earlyhelloworld", 15);
    assert_int_equal(sockmap_load(&cs->bytes), 5);
    assert_false(readable(c_near, 0));

    /* The FIN is not passed on: user space sees the end, the peer does not. */
    shutdown(client, SHUT_WR);
    assert_true(readable(c_near, 5000));
    assert_int_equal(recv(c_near, buf, sizeof(buf), MSG_DONTWAIT), 0);
    assert_false(readable(backend, 100));
    rig_close(&r);
}

static void test_limit_drops_and_flags(void **state)
{
    (void)state;
    if (!sm)
        skip();
    struct rig r;
    rig_open(&r, 8, NULL);
    struct sockmap_slot *cs = r.cs;
    int client = r.client, c_near = r.c_near, backend = r.backend;
    assert_true(sockmap_arm(cs, 0));
    char buf[64];
    assert_int_equal(send(client, "12345678", 8, 0), 8);
    read_exact(backend, buf, 8);
    assert_int_equal(__atomic_load_n(&cs->over, __ATOMIC_ACQUIRE), 0);
    /* Past the limit: dropped and flagged, neither moved nor passed. */
    assert_int_equal(send(client, "9", 1, 0), 1);
    for (int i = 0; i < 500 && !__atomic_load_n(&cs->over, __ATOMIC_ACQUIRE); i++)
        readable(backend, 10); /* the segment is handled in softirq: wait for the flag */
    assert_int_equal(__atomic_load_n(&cs->over, __ATOMIC_ACQUIRE), 1);
    assert_int_equal(sockmap_load(&cs->bytes), 8);
    assert_false(readable(backend, 0));
    assert_false(readable(c_near, 0));
    rig_close(&r);
}

/* A socket whose peer already sent its FIN (CLOSE_WAIT) cannot enter the map. */
static void test_not_established_refused(void **state)
{
    (void)state;
    if (!sm)
        skip();
    int client, c_near;
    tcp_pair(&client, &c_near);
    shutdown(client, SHUT_WR);
    char c;
    assert_true(readable(c_near, 5000));
    assert_int_equal(recv(c_near, &c, 1, 0), 0);
    uint64_t ck = sockmap_cookie(c_near);
    errno = 0;
    assert_null(sockmap_add(sm, c_near, ck, ck + 1, 1 << 20));
    assert_int_equal(errno, EOPNOTSUPP);
    close(client), close(c_near);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pass_arm_move_fin),
        cmocka_unit_test(test_limit_drops_and_flags),
        cmocka_unit_test(test_not_established_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
