/* The connection tests' worker: loop, pool, snapshot, the test's sockets, and the
 * captured log (see conn_harness.h). */
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <cmocka.h>

#include "conn_harness.h"
#include "mux443/conf/load.h"
#include "mux443/core/conn.h"
#include "mux443/state/metrics.h"

/* mux443's code writes its log to fd 2: point fd 2 at the log file only while it runs, so
 * that cmocka's own messages still reach the terminal. */
static void capture(struct harness *h, bool on)
{
    fflush(stderr);
    assert_true(dup2(on ? h->log_fd : h->saved_stderr, STDERR_FILENO) >= 0);
}

static void watchdog_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct harness *h = t->data;
    (void)revents;
    h->expired = true;
    ev_break(loop, EVBREAK_ONE);
}

static void wake_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    /* Only wakes the loop: the condition being waited for reads or writes the socket. */
    (void)loop;
    (void)io;
    (void)revents;
}

void h_init(struct harness *h, const char *fmt, ...)
{
    char *text = NULL, *errs_text = NULL;
    size_t errs_len = 0;
    va_list ap;

    memset(h, 0, sizeof(*h));
    va_start(ap, fmt);
    assert_true(vasprintf(&text, fmt, ap) >= 0);
    va_end(ap);
    FILE *in = fmemopen(text, strlen(text), "r");
    FILE *errs = open_memstream(&errs_text, &errs_len);
    assert_non_null(in);
    assert_non_null(errs);
    struct cfg *c = cfg_load_stream(in, "test.ini", errs, NULL);
    fclose(in);
    fflush(errs);
    if (c)
        h->snap = snap_activate(c, errs);
    fclose(errs);
    if (!h->snap)
        fail_msg("configuration refused:\n%s\n---\n%s", errs_text, text);
    free(errs_text);
    free(text);

    h->pool.loop = ev_loop_new(EVFLAG_AUTO);
    h->pool.scratch = malloc(RELAY_BUF);
    assert_non_null(h->pool.loop);
    assert_non_null(h->pool.scratch);
    assert_true(conn_pool_init(&h->pool));
    ev_timer_init(&h->watchdog, watchdog_cb, H_DEADLINE, 0);
    h->watchdog.data = h;
    h->open_before = atomic_load(&mx.open_all);
    assert_true(h->snap->cfg->nlisteners <= sizeof(h->lst_open_before) / sizeof(unsigned));
    for (size_t i = 0; i < h->snap->cfg->nlisteners; i++)
        h->lst_open_before[i] = atomic_load(&h->snap->listener_mx[i]->open);
    h->log_fd = memfd_create("mux443-log", MFD_CLOEXEC);
    h->saved_stderr = dup(STDERR_FILENO);
    assert_true(h->log_fd >= 0 && h->saved_stderr >= 0);
}

void h_fini(struct harness *h)
{
    /* Every connection ended, and gave back what admission counted for it. */
    assert_null(h->pool.conns);
    assert_int_equal(h->pool.nconns, 0);
    assert_int_equal(atomic_load(&mx.open_all), h->open_before);
    for (size_t i = 0; i < h->snap->cfg->nlisteners; i++)
        assert_int_equal(atomic_load(&h->snap->listener_mx[i]->open), h->lst_open_before[i]);
    snap_unref(h->snap);
    conn_pool_fini(&h->pool);
    ev_loop_destroy(h->pool.loop);
    free(h->pool.scratch);
    close(h->log_fd);
    close(h->saved_stderr);
}

int h_client(struct harness *h, const char *lst, int sndbuf)
{
    int sv[2];
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(40000)};
    const struct cfg_listener *l = cfg_listener_find(h->snap->cfg, lst);

    assert_non_null(l);
    inet_pton(AF_INET, "192.0.2.7", &peer.sin_addr);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    if (sndbuf > 0)
        assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)), 0);
    capture(h, true);
    conn_accept(&h->pool, h->snap, l, sv[0], (struct sockaddr *)&peer, sizeof(peer));
    capture(h, false);
    return sv[1];
}

static int loopback_socket(unsigned *port, bool listening)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    if (listening)
        assert_int_equal(listen(fd, 16), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

int h_listen(unsigned *port)
{
    return loopback_socket(port, true);
}

int h_refusing(unsigned *port)
{
    return loopback_socket(port, false);
}

void h_watch(struct harness *h, int fd, int events)
{
    assert_true(h->nwake < H_MAX_WAKE);
    ev_io_init(&h->wake[h->nwake], wake_cb, fd, events);
    h->nwake++;
}

void h_step(struct harness *h, int flags)
{
    capture(h, true);
    ev_run(h->pool.loop, flags);
    capture(h, false);
}

void h_run(struct harness *h, bool (*done)(void *), void *arg, const char *what)
{
    struct ev_loop *loop = h->pool.loop;
    unsigned steps = 0;
    bool ok;

    for (size_t i = 0; i < h->nwake; i++)
        ev_io_start(loop, &h->wake[i]);
    h->expired = false;
    ev_now_update(loop);
    ev_timer_set(&h->watchdog, H_DEADLINE, 0);
    ev_timer_start(loop, &h->watchdog);
    while (!(ok = done(arg)) && !h->expired && steps++ < H_MAX_STEPS)
        h_step(h, EVRUN_ONCE);
    ev_timer_stop(loop, &h->watchdog);
    for (size_t i = 0; i < h->nwake; i++)
        ev_io_stop(loop, &h->wake[i]);
    h->nwake = 0;
    if (!ok)
        fail_msg("%s: not reached within %.0f s and %d loop iterations", what, H_DEADLINE,
                 H_MAX_STEPS);
}

struct accept_wait {
    int lfd, fd;
};

static bool accepted(void *arg)
{
    struct accept_wait *a = arg;
    a->fd = accept4(a->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    return a->fd >= 0;
}

int h_accept(struct harness *h, int lfd)
{
    struct accept_wait a = {.lfd = lfd, .fd = -1};
    h_watch(h, lfd, EV_READ);
    h_run(h, accepted, &a, "a connection to the backend");
    return a.fd;
}

struct read_wait {
    int fd;
    uint8_t *buf;
    size_t want, got;
    bool eof;
};

static bool read_some(void *arg)
{
    struct read_wait *r = arg;
    uint8_t sink[4096];
    while (!r->eof) {
        uint8_t *dst = r->buf ? r->buf + r->got : sink;
        size_t room = r->buf ? r->want - r->got : sizeof(sink);
        if (r->buf && room == 0)
            return true;
        ssize_t n = recv(r->fd, dst, room, 0);
        if (n > 0)
            r->got += (size_t)n;
        else if (n == 0)
            r->eof = true;
        else if (errno == EAGAIN || errno == EWOULDBLOCK)
            return false;
        else
            fail_msg("recv: %s", strerror(errno));
    }
    return true;
}

void h_read(struct harness *h, int fd, void *buf, size_t n)
{
    struct read_wait r = {.fd = fd, .buf = buf, .want = n};
    h_watch(h, fd, EV_READ);
    h_run(h, read_some, &r, "bytes from a socket");
    if (r.got < n)
        fail_msg("end of stream after %zu of %zu bytes", r.got, n);
}

void h_read_eof(struct harness *h, int fd)
{
    struct read_wait r = {.fd = fd};
    h_watch(h, fd, EV_READ);
    h_run(h, read_some, &r, "end of stream");
    if (r.got)
        fail_msg("%zu unexpected bytes before the end of stream", r.got);
}

static bool pool_empty(void *arg)
{
    return ((struct harness *)arg)->pool.nconns == 0;
}

void h_wait_closed(struct harness *h)
{
    h_run(h, pool_empty, h, "every connection closed");
}

void h_send(int fd, const void *p, size_t n)
{
    assert_int_equal(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

void h_pass(struct harness *h, int from, int to, const void *p, size_t n)
{
    uint8_t *got = malloc(n);
    assert_non_null(got);
    h_send(from, p, n);
    h_read(h, to, got, n);
    assert_memory_equal(got, p, n);
    free(got);
}

char *h_log(struct harness *h)
{
    struct stat st;
    assert_int_equal(fstat(h->log_fd, &st), 0);
    char *s = malloc((size_t)st.st_size + 1);
    assert_non_null(s);
    assert_int_equal(pread(h->log_fd, s, (size_t)st.st_size, 0), st.st_size);
    s[st.st_size] = '\0';
    return s;
}

char *h_close_line(struct harness *h)
{
    char *all = h_log(h), *last = NULL;
    for (char *line = strtok(all, "\n"); line; line = strtok(NULL, "\n"))
        if (strstr(line, " reason=\""))
            last = line;
    if (!last) {
        print_error("log:\n%s", h_log(h));
        fail_msg("no close line in the log");
    }
    char *copy = strdup(last);
    free(all);
    return copy;
}
