/* The relay pump: moves bytes between the two legs with back-pressure (a leg is read
 * only while its previous bytes have all been written to the peer), explicit
 * half-close, lazy buffers, splice(2) for plain bulk, and the idle timeout. Knows nothing
 * of TLS: legs have ops. */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "mux443/core/conn.h"
#include "mux443/runtime/listener.h"
#include "mux443/lib/log.h"

bool pend_reserve(struct pend *p, size_t want, size_t max)
{
    if (p->off && p->off == p->len)
        p->off = p->len = 0;
    if (p->cap - p->len >= want)
        return true;
    if (p->off) { /* compact before growing */
        memmove(p->data, p->data + p->off, p->len - p->off);
        p->len -= p->off;
        p->off = 0;
        if (p->cap - p->len >= want)
            return true;
    }
    if (p->len >= max)
        return false;
    size_t cap = p->cap ? p->cap : want;
    while (cap < p->len + want)
        cap *= 2;
    if (cap > max)
        cap = max;
    uint8_t *d = realloc(p->data, cap);
    if (!d)
        return false;
    p->data = d;
    p->cap = (uint32_t)cap;
    return true;
}

void pend_release(struct pend *p)
{
    free(p->data);
    memset(p, 0, sizeof(*p));
}

static const char *leg_name(const struct leg *l)
{
    return l == &l->conn->client ? "client" : "backend";
}

void conn_update_io(struct conn *c)
{
    struct ev_loop *loop = c->w->loop;
    struct leg *legs[2] = {&c->client, &c->backend_leg};

    for (int i = 0; i < 2; i++) {
        struct leg *l = legs[i];
        int ev = 0;
        if (!l->rd_eof && !leg_pending(l))
            ev |= EV_READ;
        if (leg_pending(l->peer))
            ev |= EV_WRITE;
        ev |= l->tp->wants(l); /* TLS: a read that must write first, or the reverse */
        if ((l->io.events & (EV_READ | EV_WRITE)) == ev && (ev == 0 || ev_is_active(&l->io)))
            continue;
        ev_io_stop(loop, &l->io);
        ev_io_modify(&l->io, ev); /* same descriptor: no ev_io_set, see leg_watch() */
        if (ev)
            ev_io_start(loop, &l->io);
    }
}

/* ---- splice: plain <-> plain bulk without copying through user space ------------- */

/* A direction gets a pipe once it has carried this much: short exchanges and idle
 * TURN / ICE-TCP connections never pay two descriptors and a pipe for it. */
#define SPLICE_AFTER (256 * 1024)
#define SPLICE_CHUNK (256 * 1024)

void leg_release_pipe(struct leg *l)
{
    if (l->pipe[0] >= 0) {
        close(l->pipe[0]);
        close(l->pipe[1]);
    }
    l->pipe[0] = l->pipe[1] = -1;
    l->piped = 0;
}

static void maybe_pipe(struct leg *from)
{
    if (from->pipe[0] >= 0 || from->bytes < SPLICE_AFTER || leg_pending(from) || !from->tp->raw ||
        !from->peer->tp->raw)
        return;
    /* Out of descriptors is not an error: the copying path goes on. */
    if (pipe2(from->pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
        from->pipe[0] = from->pipe[1] = -1;
        return;
    }
    /* Bigger moves, fewer system calls; the pipe holds pages only while bytes wait. */
    fcntl(from->pipe[1], F_SETPIPE_SZ, SPLICE_CHUNK);
}

/* Moves what waits in the pipe to the peer. Returns false if the connection closed. */
static bool flush_pipe(struct leg *from)
{
    struct leg *to = from->peer;
    while (from->piped) {
        ssize_t n = splice(from->pipe[0], NULL, to->fd, NULL, from->piped,
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return true;
            conn_close(from->conn, true, "%s write error: %s", leg_name(to), strerror(errno));
            return false;
        }
        from->piped -= (uint32_t)n;
        from->conn->last_io = ev_now(from->conn->w->loop);
    }
    return true;
}

/* ---- the copying path, and both together ------------------------------------------ */

/* Writes what `from` has pending to its peer. Returns false if the connection closed. */
static bool flush(struct leg *from)
{
    struct pend *p = &from->pend;
    struct leg *to = from->peer;

    if (from->piped)
        return flush_pipe(from);
    while (p->len > p->off) {
        ssize_t n = to->tp->write(to, p->data + p->off, p->len - p->off);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return true;
            conn_close(from->conn, true, "%s write error: %s", leg_name(to), strerror(errno));
            return false;
        }
        p->off += (uint32_t)n;
        from->conn->last_io = ev_now(from->conn->w->loop);
    }
    pend_release(p); /* drained: an idle connection holds no buffer */
    return true;
}

/* After `from` reached end of stream and all of its bytes went out: FIN to the peer. */
static bool propagate_eof(struct leg *from)
{
    struct leg *to = from->peer;
    if (!from->rd_eof || to->wr_shut || leg_pending(from))
        return true;
    to->wr_shut = true;
    /* Both directions are over: close() (next, in conn_close) sends the FIN anyway. TLS
     * still says close_notify first. */
    if (to->rd_eof && !leg_pending(to) && to->tp->raw)
        return true;
    if (to->tp->shutdown_wr(to) < 0 && errno != ENOTCONN) {
        conn_close(from->conn, true, "%s shutdown error: %s", leg_name(to), strerror(errno));
        return false;
    }
    return true;
}

/* Reads once from `from` and passes the bytes straight on; what the peer cannot take now
 * is kept in from->pend, which stops reading `from` until it has drained. */
static bool forward(struct leg *from)
{
    struct conn *c = from->conn;
    uint8_t *buf = c->w->scratch;

    maybe_pipe(from);
    ssize_t n = from->pipe[0] >= 0 ? splice(from->fd, NULL, from->pipe[1], NULL, SPLICE_CHUNK,
                                            SPLICE_F_MOVE | SPLICE_F_NONBLOCK)
                                   : from->tp->read(from, buf, RELAY_BUF);

    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return true;
        /* A reset is how many clients end (Chromium after a TURN Refresh with lifetime
         * 0): an ordinary end, not a failure. */
        if (errno == ECONNRESET)
            conn_close(c, false, "%s reset the connection", leg_name(from));
        else
            conn_close(c, true, "%s read error: %s", leg_name(from), strerror(errno));
        return false;
    }
    if (n == 0) {
        from->rd_eof = true;
        return propagate_eof(from);
    }
    from->bytes += (uint64_t)n;
    c->last_io = ev_now(c->w->loop);
    if (from->pipe[0] >= 0) {
        from->piped = (uint32_t)n;
        return flush_pipe(from);
    }
    struct leg *to = from->peer;
    ssize_t w = to->tp->write(to, buf, (size_t)n);
    if (w < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            conn_close(c, true, "%s write error: %s", leg_name(to), strerror(errno));
            return false;
        }
        w = 0;
    }
    if (w < n) {
        if (!pend_reserve(&from->pend, (size_t)(n - w), RELAY_BUF)) {
            conn_close(c, true, "out of memory");
            return false;
        }
        memcpy(from->pend.data + from->pend.len, buf + w, (size_t)(n - w));
        from->pend.len += (uint32_t)(n - w);
    }
    return true;
}

static bool finished(const struct conn *c)
{
    return c->client.rd_eof && c->backend_leg.rd_eof && c->client.wr_shut && c->backend_leg.wr_shut;
}

void relay_io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct leg *l = io->data;
    struct conn *c = l->conn;
    /* TLS may have parked a read behind a write or the reverse: then retry both. */
    bool crossed = l->tp->wants(l) != 0;

    (void)loop;
    if ((revents & EV_WRITE) || crossed) {
        struct leg *o = l->peer;
        if (!flush(o) || !propagate_eof(o))
            return;
        /* The peer leg stopped reading for back-pressure with decrypted bytes still
         * inside its transport: no socket event will say so, take them now. */
        while (!o->rd_eof && !leg_pending(o) && o->tp->pending(o))
            if (!forward(o))
                return;
    }
    if ((revents & EV_READ) || crossed) {
        /* Decrypted bytes already inside the transport raise no socket event: take them
         * now, as far as back-pressure allows. */
        do {
            if (l->rd_eof || leg_pending(l))
                break;
            if (!forward(l))
                return;
        } while (l->tp->pending(l));
    }
    if (finished(c)) {
        conn_close(c, false, "done");
        return;
    }
    conn_update_io(c);
}

static void idle_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct conn *c = t->data;
    ev_tstamp idle = c->route->idle_timeout;
    ev_tstamp left = c->last_io + idle - ev_now(loop);

    (void)revents;
    if (left <= 0) {
        conn_close(c, false, "idle timeout (%.0fs)", idle);
        return;
    }
    /* libev's cheap idle timer: re-arm for the remaining time instead of on every byte. */
    t->repeat = left;
    ev_timer_again(loop, t);
}

/* Points a leg's (stopped) watcher at the pump. The descriptor is set again only when it
 * changed: ev_io_set marks it as new, which makes libev re-add a descriptor epoll already
 * has (a failing EPOLL_CTL_ADD per connection). */
static void leg_watch(struct ev_loop *loop, struct leg *l)
{
    ev_io_stop(loop, &l->io);
    ev_set_cb(&l->io, relay_io_cb);
    l->io.data = l;
    if (l->io.fd != l->fd)
        ev_io_set(&l->io, l->fd, 0);
    else
        ev_io_modify(&l->io, 0);
}

void relay_start(struct conn *c)
{
    struct ev_loop *loop = c->w->loop;

    c->last_io = ev_now(loop);
    leg_watch(loop, &c->client);
    leg_watch(loop, &c->backend_leg);
    ev_init(&c->timer, idle_cb);
    c->timer.repeat = c->route->idle_timeout;
    ev_timer_again(loop, &c->timer);
    /* The preread first flight goes out first, byte-exact. */
    if (!flush(&c->client))
        return;
    conn_update_io(c);
    /* Records read ahead with the first flight (TLS) are already inside the transport:
     * no socket event will announce them. (A fed event is dropped if the connection
     * closes first: stopping a watcher clears it.) */
    if (c->client.tp->pending(&c->client))
        ev_feed_event(loop, &c->client.io, EV_READ);
}
