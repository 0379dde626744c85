/* Unit tests for the relay phase (core/relay.c): back-pressure against a client that does
 * not read, half-close in each direction, and the byte counts of the close line. A real
 * libev loop, the client end of a socketpair, a loopback backend. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "conn_harness.h"

#define CONFIG                                                                                     \
    "[mux443]\nlisten = 127.0.0.1:9\n[backend web]\nserver = 127.0.0.1:%u\n[route]\nhttp = web\n"

static const char req[] = "GET /big HTTP/1.1\r\nHost: a.test\r\n\r\n";
#define REQ_LEN (sizeof(req) - 1)

/* A connection relaying: the client's request went through; *be is the backend's end. */
static int relaying(struct harness *h, int *lw, int *be)
{
    unsigned pw;

    *lw = h_listen(&pw);
    h_init(h, CONFIG, pw);
    int cl = h_client(h, "main", 0);
    h_send(cl, req, REQ_LEN);
    *be = h_accept(h, *lw);
    char *got = malloc(REQ_LEN);
    assert_non_null(got);
    h_read(h, *be, got, REQ_LEN);
    assert_memory_equal(got, req, REQ_LEN);
    free(got);
    return cl;
}

static void assert_close_line(struct harness *h, size_t in, size_t out)
{
    char want[128], *line = h_close_line(h);
    snprintf(want, sizeof(want), "bytes_in=%zu bytes_out=%zu ", in, out);
    if (!strstr(line, want) || !strstr(line, "reason=\"done\""))
        fail_msg("expected \"%s\" and reason \"done\" in: %s", want, line);
    free(line);
}

/* ---- back-pressure ------------------------------------------------------------------ */

#define BULK (6u * 1024 * 1024)

/* The byte at offset i of the backend's stream: position-dependent, so that a lost,
 * repeated or reordered chunk shows. */
static uint8_t pattern(size_t i)
{
    return (uint8_t)(i * 31 + (i >> 11) + (i >> 19));
}

struct bulk {
    struct harness *h;
    int cl, be;
    size_t sent, got;
    bool eof;
    uint8_t chunk[64 * 1024];
};

/* The backend sends what its socket takes now. Returns the bytes sent. */
static size_t bulk_send(struct bulk *b)
{
    size_t before = b->sent;
    while (b->sent < BULK) {
        size_t n = BULK - b->sent < sizeof(b->chunk) ? BULK - b->sent : sizeof(b->chunk);
        for (size_t i = 0; i < n; i++)
            b->chunk[i] = pattern(b->sent + i);
        ssize_t w = send(b->be, b->chunk, n, MSG_NOSIGNAL);
        if (w < 0) {
            assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
            break;
        }
        b->sent += (size_t)w;
    }
    return b->sent - before;
}

/* The client reads what has arrived and checks it byte by byte. */
static void bulk_recv(struct bulk *b)
{
    uint8_t buf[64 * 1024];
    while (!b->eof) {
        ssize_t n = recv(b->cl, buf, sizeof(buf), 0);
        if (n < 0) {
            assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
            return;
        }
        b->eof = n == 0;
        for (ssize_t i = 0; i < n; i++, b->got++)
            if (buf[i] != pattern(b->got))
                fail_msg("byte %zu differs: %#x, sent %#x", b->got, buf[i], pattern(b->got));
    }
}

/* What mux443 holds of the backend's bytes: in its buffer, and in its splice pipe (a
 * kernel buffer, bounded by the pipe's size). Checked between loop iterations. */
static size_t held(const struct conn *c)
{
    const struct leg *l = &c->backend_leg;
    size_t pend = buf_unread(&l->pend);

    assert_true(pend <= RELAY_BUF);
    if (l->pipe[0] >= 0)
        assert_true(l->piped <= (size_t)fcntl(l->pipe[1], F_GETPIPE_SZ));
    else
        assert_int_equal(l->piped, 0);
    /* Read iff room: while bytes wait for the client, the backend is not read. */
    if (leg_pending(l))
        assert_false(l->io.events & EV_READ);
    return pend + l->piped;
}

static bool sent_all(void *arg)
{
    struct bulk *b = arg;
    bulk_recv(b);
    bulk_send(b);
    return b->sent == BULK;
}

static bool got_all(void *arg)
{
    struct bulk *b = arg;
    bulk_recv(b);
    return b->eof;
}

/* The backend sends BULK bytes while the client reads nothing: once nothing moves any
 * more, the backend is blocked (the relay stopped reading it), mux443 holds at most one
 * buffer, and every byte it read is either held or queued to the client. Then the client
 * reads: everything arrives, in order, followed by the backend's end of stream. */
static void test_backpressure(void **state)
{
    struct harness h;
    int lw, be;
    int cl = relaying(&h, &lw, &be);
    struct bulk *b = calloc(1, sizeof(*b));
    struct conn *c = h_conn(&h);
    (void)state;

    assert_non_null(b);
    *b = (struct bulk){.h = &h, .cl = cl, .be = be};
    /* A fixed send buffer (no autotuning up to megabytes): what the backend gets out
     * before it blocks is then far below BULK, unless the relay keeps reading. */
    int sndbuf = 256 * 1024;
    assert_int_equal(setsockopt(be, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)), 0);
    /* Not waiting on readiness here: the state sought is the one where nothing is ready.
     * Loopback delivers within the send call, so a few quiet iterations in a row mean
     * everything has settled. */
    unsigned quiet = 0, steps = 0;
    while (quiet < 50) {
        if (++steps > H_MAX_STEPS)
            fail_msg("the relay never settled (backend sent %zu bytes)", b->sent);
        uint64_t moved = bulk_send(b);
        uint64_t before = c->backend_leg.bytes;
        h_step(&h, EVRUN_NOWAIT);
        held(c);
        quiet = moved || c->backend_leg.bytes != before ? 0 : quiet + 1;
    }
    int queued = 0;
    assert_int_equal(ioctl(cl, FIONREAD, &queued), 0);
    print_message("settled: backend sent %zu, mux443 read %llu, holds %zu, client queue %d\n",
                  b->sent, (unsigned long long)c->backend_leg.bytes, held(c), queued);
    assert_true(b->sent < BULK);               /* the backend was stopped ... */
    assert_true(leg_pending(&c->backend_leg)); /* ... by mux443 holding bytes back */
    assert_false(c->backend_leg.io.events & EV_READ);
    assert_int_equal(c->backend_leg.bytes, (uint64_t)queued + held(c));
    assert_int_equal(b->got, 0);

    h_watch(&h, cl, EV_READ);
    h_watch(&h, be, EV_WRITE);
    h_run(&h, sent_all, b, "the backend's bulk sent while the client reads");
    assert_int_equal(shutdown(be, SHUT_WR), 0);
    h_watch(&h, cl, EV_READ);
    h_run(&h, got_all, b, "the rest of the bulk and end of stream at the client");
    assert_int_equal(b->got, BULK);

    close(cl);
    h_read_eof(&h, be);
    h_wait_closed(&h);
    assert_close_line(&h, REQ_LEN, BULK);
    close(be);
    free(b);
    h_fini(&h);
    close(lw);
}

/* ---- half-close --------------------------------------------------------------------- */

/* The client ends its side first: the backend sees end of stream after the request and
 * can still answer. */
static void test_half_close_client_first(void **state)
{
    static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlate";
    struct harness h;
    int lw, be;
    int cl = relaying(&h, &lw, &be);
    (void)state;

    assert_int_equal(shutdown(cl, SHUT_WR), 0);
    h_read_eof(&h, be);
    assert_int_equal(h.pool.nconns, 1); /* the other direction is still open */
    h_pass(&h, be, cl, answer, sizeof(answer) - 1);
    assert_int_equal(shutdown(be, SHUT_WR), 0);
    h_read_eof(&h, cl);
    h_wait_closed(&h);
    assert_close_line(&h, REQ_LEN, sizeof(answer) - 1);
    close(cl);
    close(be);
    h_fini(&h);
    close(lw);
}

/* The backend ends its side first: the client sees end of stream and can still send. */
static void test_half_close_backend_first(void **state)
{
    static const char first[] = "HTTP/1.1 100 Continue\r\n\r\n", more[] = "the request body";
    struct harness h;
    int lw, be;
    int cl = relaying(&h, &lw, &be);
    (void)state;

    h_pass(&h, be, cl, first, sizeof(first) - 1);
    assert_int_equal(shutdown(be, SHUT_WR), 0);
    h_read_eof(&h, cl);
    assert_int_equal(h.pool.nconns, 1);
    h_pass(&h, cl, be, more, sizeof(more) - 1);
    assert_int_equal(shutdown(cl, SHUT_WR), 0);
    h_read_eof(&h, be);
    h_wait_closed(&h);
    assert_close_line(&h, REQ_LEN + sizeof(more) - 1, sizeof(first) - 1);
    close(cl);
    close(be);
    h_fini(&h);
    close(lw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backpressure),
        cmocka_unit_test(test_half_close_client_first),
        cmocka_unit_test(test_half_close_backend_first),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
