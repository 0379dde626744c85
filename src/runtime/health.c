/* Health checks: one small state machine per checked server (connect, send the probe,
 * read the answer, judge), on the main thread, restarted on every reload. */
#include <errno.h>
#include <stdio.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mux443/core/connect.h"
#include "mux443/lib/ice.h"
#include "mux443/lib/log.h"
#include "mux443/runtime/health.h"
#include "mux443/state/metrics.h"

struct check {
    ev_timer timer; /* next check, then the check's own timeout */
    ev_io io;
    int fd;
    bool running;
    const struct cfg_backend *b;
    struct mx_server *s; /* the server's health state and counters */
    size_t idx;
    uint8_t txid[12];
    char in[512];
    size_t in_len;
    struct check *next;
};

static struct check *checks;
static struct snap *checked; /* the snapshot the checks point into (a reference) */

static void check_done(struct ev_loop *loop, struct check *k, bool ok, const char *why)
{
    struct mx_server *s = k->s;
    bool down = atomic_load(&s->down);

    ev_io_stop(loop, &k->io);
    if (k->fd >= 0)
        close(k->fd);
    k->fd = -1;
    k->running = false;
    k->in_len = 0;
    snprintf(s->last_check, sizeof(s->last_check), "%s", ok ? "ok" : why ? why : "failed");
    s->last_check_at = ev_now(loop);
    /* Hysteresis: `fall` failures in a row take a server out, `rise` passes bring it back. */
    if (ok == !down) {
        s->streak = 0;
    } else if (++s->streak >= (int)(down ? k->b->health_rise : k->b->health_fall)) {
        s->streak = 0;
        atomic_store(&s->down, !down);
        if (down)
            log_info("backend %s server %s: health check passing again: back in service",
                     k->b->name, s->addr);
        else
            log_warnx("backend %s server %s: health check failed %u times (%s): out of "
                      "service",
                      k->b->name, s->addr, k->b->health_fall, why);
    }
    ev_timer_stop(loop, &k->timer);
    ev_timer_set(&k->timer, k->b->health_interval, 0);
    ev_timer_start(loop, &k->timer);
}

/* Judges what the server sent back so far; returns true when a verdict was reached. */
static bool judge(struct ev_loop *loop, struct check *k)
{
    if (k->b->health == HEALTH_STUN) {
        if (k->in_len < STUN_HEADER)
            return false;
        const uint8_t *p = (const uint8_t *)k->in;
        unsigned type = (unsigned)(p[0] << 8 | p[1]);
        /* Any Binding response (success or error) with our transaction id: it is alive. */
        bool ok = (type == 0x0101 || type == 0x0111) && memcmp(p + 4, "\x21\x12\xa4\x42", 4) == 0 &&
                  memcmp(p + 8, k->txid, 12) == 0;
        check_done(loop, k, ok, ok ? "" : "not a STUN Binding response");
        return true;
    }
    char *eol = memchr(k->in, '\n', k->in_len);
    if (!eol)
        return false;
    int status = 0;
    bool ok = sscanf(k->in, "HTTP/1.%*d %d", &status) == 1 && status >= 200 && status < 400;
    check_done(loop, k, ok, ok ? "" : "HTTP status not 2xx or 3xx");
    return true;
}

static void check_io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct check *k = io->data;

    if (revents & EV_WRITE) { /* connected (or failed) */
        int err = connect_result(k->fd);
        if (err) {
            check_done(loop, k, false, strerror(err));
            return;
        }
        if (k->b->health == HEALTH_TCP) {
            check_done(loop, k, true, "");
            return;
        }
        uint8_t req[PROXY_HDR_MAX + 600];
        /* A backend that expects a PROXY header gets one saying "no client" (LOCAL). */
        size_t n = connect_proxy_header(k->b, NULL, NULL, req);
        if (k->b->health == HEALTH_STUN) {
            RAND_bytes(k->txid, sizeof(k->txid));
            memcpy(req + n, "\x00\x01\x00\x00\x21\x12\xa4\x42", 8);
            memcpy(req + n + 8, k->txid, 12);
            n += STUN_HEADER;
        } else {
            n += (size_t)snprintf((char *)req + n, sizeof(req) - n,
                                  "GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: mux443-health\r\n"
                                  "Connection: close\r\n\r\n",
                                  k->b->health_path, k->b->servers.v[k->idx].text);
        }
        if (send(k->fd, req, n, MSG_NOSIGNAL) != (ssize_t)n) {
            check_done(loop, k, false, "cannot send the check");
            return;
        }
        ev_io_stop(loop, &k->io);
        ev_io_set(&k->io, k->fd, EV_READ);
        ev_io_start(loop, &k->io);
        return;
    }
    ssize_t r = recv(k->fd, k->in + k->in_len, sizeof(k->in) - 1 - k->in_len, 0);
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (r <= 0) {
        check_done(loop, k, false, r == 0 ? "closed without an answer" : strerror(errno));
        return;
    }
    k->in_len += (size_t)r;
    k->in[k->in_len] = '\0';
    if (!judge(loop, k) && k->in_len >= sizeof(k->in) - 1)
        check_done(loop, k, false, "answer too long");
}

static void check_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct check *k = t->data;
    (void)revents;

    if (k->running) {
        check_done(loop, k, false, "timeout");
        return;
    }
    k->fd = connect_start(&k->b->servers.v[k->idx]);
    if (k->fd < 0) {
        check_done(loop, k, false, strerror(errno));
        return;
    }
    k->running = true;
    ev_io_init(&k->io, check_io_cb, k->fd, EV_WRITE);
    k->io.data = k;
    ev_io_start(loop, &k->io);
    ev_timer_set(&k->timer, k->b->health_timeout, 0);
    ev_timer_start(loop, &k->timer);
}

void health_configure(struct ev_loop *loop, struct snap *snap)
{
    while (checks) {
        struct check *k = checks;
        checks = k->next;
        ev_timer_stop(loop, &k->timer);
        ev_io_stop(loop, &k->io);
        if (k->fd >= 0)
            close(k->fd);
        free(k);
    }
    snap_unref(checked);
    checked = snap ? snap_ref(snap) : NULL;
    const struct cfg *c = snap ? snap->cfg : NULL;
    for (size_t i = 0; c && i < c->nbackends; i++) {
        const struct cfg_backend *b = &c->backends[i];
        for (size_t s = 0; s < b->servers.n; s++) {
            struct mx_server *sm = snap_server_mx(snap, b, s);
            if (b->health == HEALTH_NONE) {
                atomic_store(&sm->down, 0);
                continue;
            }
            struct check *k = calloc(1, sizeof(*k));
            if (!k)
                fatal("out of memory");
            k->fd = -1;
            k->b = b;
            k->s = sm;
            k->idx = s;
            ev_init(&k->io, check_io_cb);
            /* First check soon, spread over the interval so servers are not hit at once. */
            ev_timer_init(&k->timer, check_timer_cb,
                          0.05 + b->health_interval * (double)s / (double)b->servers.n, 0);
            k->timer.data = k;
            ev_timer_start(loop, &k->timer);
            k->next = checks;
            checks = k;
        }
    }
}
