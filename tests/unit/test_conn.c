/* Unit tests for a connection's phases (core/conn.c, detect.c, connect): a real libev
 * loop, the client end of a socketpair handed to conn_accept, loopback backends, and the
 * close line each connection logs. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "conn_harness.h"
#include "mux443/state/metrics.h"

#define MAIN "[mux443]\nlisten = 127.0.0.1:9\n"
#define LB   "[listener lb]\nlisten = 127.0.0.1:10\nproxy_protocol = yes\n"
#define WEB  "[backend web]\nserver = 127.0.0.1:%u\n[route]\nhttp = web\n"
#define WEB2 "[backend web]\nserver = 127.0.0.1:%u, 127.0.0.1:%u\n[route]\nhttp = web\n"

static const char req[] = "GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n";
static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

/* Fails unless `line` contains `want` (printf format). */
static void assert_has(const char *line, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void assert_has(const char *line, const char *fmt, ...)
{
    char want[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(want, sizeof(want), fmt, ap);
    va_end(ap);
    if (!strstr(line, want))
        fail_msg("expected \"%s\" in: %s", want, line);
}

/* Nothing connected to the listener (mux443 never tried this backend). */
static void assert_no_connection(int lfd)
{
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
    if (fd >= 0)
        close(fd);
    assert_int_equal(fd, -1);
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
}

/* The client's bytes reach the backend unchanged (after `strip`, what the client sent
 * first that is not for the backend), the backend's reply reaches the client, and both
 * closes end the connection with a close line; returns that line. */
static char *exchange(struct harness *h, int cl, int lfd, const char *strip)
{
    char got[sizeof(req)];
    size_t pre = strip ? strlen(strip) : 0;
    char *first = malloc(pre + sizeof(req));

    assert_non_null(first);
    if (pre)
        memcpy(first, strip, pre);
    memcpy(first + pre, req, sizeof(req) - 1);
    h_send(cl, first, pre + sizeof(req) - 1);
    free(first);
    int be = h_accept(h, lfd);
    h_read(h, be, got, sizeof(req) - 1);
    assert_memory_equal(got, req, sizeof(req) - 1);
    assert_int_equal(h_conn(h)->phase, CONN_RELAY);

    h_pass(h, be, cl, reply, sizeof(reply) - 1);
    close(be);
    h_read_eof(h, cl);
    close(cl);
    h_wait_closed(h);
    return h_close_line(h);
}

/* A client on listener `lst` sends `first` (n bytes) and is closed without an answer;
 * returns the close line. */
static char *refused(struct harness *h, const char *lst, const char *first, size_t n)
{
    int cl = h_client(h, lst, 0);
    h_send(cl, first, n);
    h_read_eof(h, cl);
    h_wait_closed(h);
    close(cl);
    return h_close_line(h);
}

static void test_plain_first_flight_relayed(void **state)
{
    struct harness h;
    unsigned pw;
    int lw = h_listen(&pw);
    (void)state;

    h_init(&h, MAIN WEB, pw);
    int cl = h_client(&h, "main", 0);
    assert_int_equal(h.pool.nconns, 1);
    assert_int_equal(h_conn(&h)->phase, CONN_DETECT);
    char *line = exchange(&h, cl, lw, NULL);
    assert_has(line,
               "client=192.0.2.7:40000 listener=main class=http host=\"a.test\" "
               "path=\"/x\" route=http backend=web server=127.0.0.1:%u",
               pw);
    assert_has(line, "bytes_in=%zu bytes_out=%zu", sizeof(req) - 1, sizeof(reply) - 1);
    assert_has(line, "reason=\"done\"");
    free(line);
    h_fini(&h);
    close(lw);
}

static void test_unknown_without_default_closed(void **state)
{
    struct harness h;
    unsigned pw;
    int lw = h_listen(&pw);
    (void)state;

    h_init(&h, MAIN WEB, pw);
    char *line = refused(&h, "main", "\xff\xfegarbage\r\n", 11);
    assert_has(line, "class=unknown");
    assert_has(line, "route=- backend=- server=-");
    /* what was seen is in why=, not repeated in the reason */
    assert_has(line, "why=\"SSLv2 record is not a CLIENT-HELLO\"");
    assert_has(line, "reason=\"unrecognised protocol, and no [route] default\"");
    assert_no_connection(lw);
    free(line);
    h_fini(&h);
    close(lw);
}

/* A silent client (a server-speaks-first protocol) goes to `on_timeout` once
 * peek_timeout has passed: the backend speaks first, then the client answers. */
static void test_peek_timeout_to_on_timeout(void **state)
{
    static const char banner[] = "SSH-2.0-test\r\n", answer[] = "SSH-2.0-client\r\n";
    struct harness h;
    unsigned pw;
    int lw = h_listen(&pw);
    (void)state;

    h_init(&h,
           MAIN "peek_timeout = 50ms\n[backend ssh]\nserver = 127.0.0.1:%u\n"
                "[route]\non_timeout = ssh\n",
           pw);
    int cl = h_client(&h, "main", 0);
    int be = h_accept(&h, lw); /* woken by the peek timer: nothing was sent */
    h_pass(&h, be, cl, banner, sizeof(banner) - 1);
    h_pass(&h, cl, be, answer, sizeof(answer) - 1);
    close(cl);
    h_read_eof(&h, be);
    close(be);
    h_wait_closed(&h);
    char *line = h_close_line(&h);
    assert_has(line, "class=timeout route=on_timeout backend=ssh");
    assert_has(line, "bytes_in=%zu bytes_out=%zu", sizeof(answer) - 1, sizeof(banner) - 1);
    free(line);
    h_fini(&h);
    close(lw);
}

static void test_peek_timeout_without_route_closed(void **state)
{
    struct harness h;
    unsigned pw;
    int lw = h_listen(&pw);
    (void)state;

    h_init(&h, MAIN "peek_timeout = 50ms\n" WEB, pw);
    /* An incomplete request: detection waits for more until the deadline. */
    char *line = refused(&h, "main", "GET /", 5);
    assert_has(line, "class=timeout");
    assert_has(line, "reason=\"peek timeout after 5 bytes, and no [route] on_timeout\"");
    assert_no_connection(lw);
    free(line);
    h_fini(&h);
    close(lw);
}

/* The first server refuses: the connection fails over to the second (round robin starts
 * at the first server in a fresh snapshot). */
static void test_connect_failover(void **state)
{
    struct harness h;
    unsigned pdown, pw;
    int down = h_refusing(&pdown), lw = h_listen(&pw);
    (void)state;

    h_init(&h, MAIN WEB2, pdown, pw);
    int cl = h_client(&h, "main", 0);
    char *line = exchange(&h, cl, lw, NULL);
    assert_has(line, "backend=web server=127.0.0.1:%u", pw);
    free(line);
    char *log = h_log(&h);
    assert_has(log, "backend web server 127.0.0.1:%u: Connection refused; trying 127.0.0.1:%u",
               pdown, pw);
    free(log);
    assert_int_equal(
        atomic_load(&snap_server_mx(h.snap, &h.snap->cfg->backends[0], 0)->connect_failures), 1);
    h_fini(&h);
    close(lw);
    close(down);
}

/* On loopback the handshake is over when connect() returns: the first flight is written
 * at once, without waiting for writability, and the backend leg waits for reading. TCP_NODELAY
 * waits for the second write (the first goes out at once). */
static void test_connect_eager_write(void **state)
{
    static const char more[] = "more";
    struct harness h;
    unsigned pw;
    int lw = h_listen(&pw), one = 0;
    socklen_t sl = sizeof(one);
    (void)state;

    h_init(&h, MAIN WEB, pw);
    int cl = h_client(&h, "main", 0);
    h_send(cl, req, sizeof(req) - 1);
    while (h_conn(&h)->phase == CONN_DETECT)
        h_step(&h, EVRUN_ONCE);
    struct conn *c = h_conn(&h);
    assert_int_equal(c->phase, CONN_RELAY);
    assert_int_equal(c->backend_leg.want, EV_READ);
    assert_true(c->backend_leg.watched);
    assert_true(c->backend_leg.nagle_on);
    int be = h_accept(&h, lw);
    char got[sizeof(req)];
    h_read(&h, be, got, sizeof(req) - 1);
    assert_memory_equal(got, req, sizeof(req) - 1);
    h_pass(&h, cl, be, more, sizeof(more) - 1);
    assert_false(c->backend_leg.nagle_on);
    assert_int_equal(getsockopt(c->backend_leg.tp.fd, IPPROTO_TCP, TCP_NODELAY, &one, &sl), 0);
    assert_int_not_equal(one, 0);
    h_pass(&h, be, cl, reply, sizeof(reply) - 1);
    close(be);
    h_read_eof(&h, cl);
    close(cl);
    h_wait_closed(&h);
    char *line = h_close_line(&h);
    assert_has(line, "bytes_in=%zu bytes_out=%zu", sizeof(req) - 1 + sizeof(more) - 1,
               sizeof(reply) - 1);
    assert_has(line, "reason=\"done\"");
    free(line);
    h_fini(&h);
    close(lw);
}

/* A server that drops the SYN (its accept queue is full): the write right after connect()
 * answers EAGAIN, the connection waits, and the connect timeout fails it over to the next
 * server, which gets the preread whole. */
static void test_connect_eager_then_timeout(void **state)
{
    struct harness h;
    unsigned pfull, pw;
    int lw = h_listen(&pw), full = h_listen(&pfull);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)pfull)};
    (void)state;

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(listen(full, 0), 0); /* room for one queued connection: take it */
    int filler = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(filler, (struct sockaddr *)&sa, sizeof(sa)), 0);
    h_init(&h,
           MAIN "[backend web]\nserver = 127.0.0.1:%u, 127.0.0.1:%u\nconnect_timeout = 100ms\n"
                "[route]\nhttp = web\n",
           pfull, pw);
    int cl = h_client(&h, "main", 0);
    char *line = exchange(&h, cl, lw, NULL);
    assert_has(line, "backend=web server=127.0.0.1:%u", pw);
    free(line);
    char *log = h_log(&h);
    assert_has(log, "backend web server 127.0.0.1:%u: connect timeout; trying 127.0.0.1:%u", pfull,
               pw);
    free(log);
    struct mx_server *sm = snap_server_mx(h.snap, &h.snap->cfg->backends[0], 0);
    assert_int_equal(atomic_load(&sm->eager_miss), 1);
    assert_int_equal(atomic_load(&sm->connect_failures), 1);
    h_fini(&h);
    close(filler);
    close(full);
    close(lw);
}

/* A client that ended its direction is not read any more (a socket at EOF stays
 * readable: no busy loop); the backend's direction goes on (half-close). */
static void test_eof_leg_parked(void **state)
{
    struct harness h;
    unsigned pw;
    int lw = h_listen(&pw);
    char got[sizeof(req)];
    (void)state;

    h_init(&h, MAIN WEB, pw);
    int cl = h_client(&h, "main", 0);
    h_send(cl, req, sizeof(req) - 1);
    int be = h_accept(&h, lw);
    h_read(&h, be, got, sizeof(req) - 1);
    struct conn *c = h_conn(&h);
    assert_int_equal(shutdown(cl, SHUT_WR), 0);
    h_read_eof(&h, be);
    assert_true(c->client.rd_eof);
    assert_false(c->client.want & EV_READ);
    for (int i = 0; i < 10; i++)
        h_step(&h, EVRUN_NOWAIT);
    assert_false(c->client.want & EV_READ);
    assert_false(c->queued.prev);
    h_pass(&h, be, cl, reply, sizeof(reply) - 1);
    close(be);
    h_read_eof(&h, cl);
    close(cl);
    h_wait_closed(&h);
    char *line = h_close_line(&h);
    assert_has(line, "reason=\"done\"");
    free(line);
    h_fini(&h);
    close(lw);
}

static void test_all_servers_down_closed(void **state)
{
    struct harness h;
    unsigned p1, p2;
    int d1 = h_refusing(&p1), d2 = h_refusing(&p2);
    (void)state;

    h_init(&h, MAIN WEB2, p1, p2);
    char *line = refused(&h, "main", req, sizeof(req) - 1);
    assert_has(line, "route=http backend=web server=- bytes_in=%zu bytes_out=0", sizeof(req) - 1);
    assert_has(line,
               "reason=\"backend web: all servers failed (last 127.0.0.1:%u: Connection refused)\"",
               p2);
    free(line);
    h_fini(&h);
    close(d1);
    close(d2);
}

/* A listener behind a load balancer: the PROXY header gives the client's address and is
 * not relayed. */
static void test_proxy_header_inbound(void **state)
{
    struct harness h;
    unsigned pw;
    int lw = h_listen(&pw);
    (void)state;

    h_init(&h, MAIN LB WEB, pw);
    int cl = h_client(&h, "lb", 0);
    assert_int_equal(h_conn(&h)->phase, CONN_PROXY);
    char *line = exchange(&h, cl, lw, "PROXY TCP4 198.51.100.1 203.0.113.9 5000 443\r\n");
    assert_has(line, "client=198.51.100.1:5000 listener=lb class=http");
    assert_has(line, "reason=\"done\"");
    free(line);
    h_fini(&h);
    close(lw);
}

static void test_proxy_header_refused(void **state)
{
    static const char *const bad[] = {
        "GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n", /* no header at all */
        "PROXY TCP4 198.51.100.1 5000 443\r\n",    /* a field missing */
        "PROXY TCP4 198.51.100.1 203.0.113.9 99999 443\r\n",
    };
    struct harness h;
    unsigned pw;
    int lw = h_listen(&pw);
    (void)state;

    h_init(&h, MAIN LB WEB, pw);
    unsigned long long before = atomic_load(&mx.detect[MXD_PROXY_ERROR]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *line = refused(&h, "lb", bad[i], strlen(bad[i]));
        assert_has(line, "client=192.0.2.7:40000 listener=lb class=none");
        assert_has(line, "reason=\"listener lb expects a PROXY header: ");
        free(line);
    }
    assert_int_equal(atomic_load(&mx.detect[MXD_PROXY_ERROR]) - before, 3);
    assert_no_connection(lw);
    h_fini(&h);
    close(lw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_first_flight_relayed),
        cmocka_unit_test(test_unknown_without_default_closed),
        cmocka_unit_test(test_peek_timeout_to_on_timeout),
        cmocka_unit_test(test_peek_timeout_without_route_closed),
        cmocka_unit_test(test_connect_failover),
        cmocka_unit_test(test_connect_eager_write),
        cmocka_unit_test(test_connect_eager_then_timeout),
        cmocka_unit_test(test_eof_leg_parked),
        cmocka_unit_test(test_all_servers_down_closed),
        cmocka_unit_test(test_proxy_header_inbound),
        cmocka_unit_test(test_proxy_header_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
