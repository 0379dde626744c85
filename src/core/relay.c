/* The relay pump: one function per direction's step (forward, flush, end of stream),
 * used for both legs alike. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mux443/core/relay.h"
#include "mux443/core/krelay.h"
#include "mux443/lib/log.h"
#include "mux443/state/metrics.h"
#include "mux443/tls/tls_conn.h"

int relay_interest(const struct leg *l)
{
    int ev = 0;
    if (!l->rd_eof && !leg_pending(l) && !krelay_quiet(l))
        ev |= EV_READ;
    if (leg_pending(leg_peer(l)))
        ev |= EV_WRITE;
    return ev | l->tp.ops->wants(&l->tp); /* TLS: a read that must write first, or the reverse */
}

/* ---- splice: plain <-> plain bulk without copying through user space ------------- */

/* A direction gets a pipe once it has carried this much, and while its reads come in
 * large (a quarter of RELAY_BUF or more: the sender is ahead of us): short exchanges,
 * idle TURN / ICE-TCP connections and small-packet media never pay two descriptors and a
 * pipe, nor a splice per packet (whose EAGAIN, unlike a short read, does not tell that
 * the socket is empty: one more call per wakeup). */
#define SPLICE_AFTER (256 * 1024)
#define SPLICE_CHUNK (256 * 1024)

void relay_release_pipe(struct leg *l)
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
    /* splice(2) reads the socket's own queue, past what the kernel relay passes us. */
    if (from->pipe[0] >= 0 || from->bytes < SPLICE_AFTER || !from->bulk || leg_pending(from) ||
        !from->tp.ops->raw || !leg_peer(from)->tp.ops->raw || leg_conn(from)->krelay)
        return;
    /* Out of descriptors is not an error: the copying path goes on. */
    if (pipe2(from->pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
        from->pipe[0] = from->pipe[1] = -1;
        return;
    }
    /* Bigger moves, fewer system calls; the pipe holds pages only while bytes wait. */
    fcntl(from->pipe[1], F_SETPIPE_SZ, SPLICE_CHUNK);
}

/* The step helpers below answer STEP_AGAIN to mean "fine, carry on", or end the
 * connection with a reason. */

/* Moves what waits in the pipe to the peer. */
static enum step flush_pipe(struct leg *from)
{
    struct leg *to = leg_peer(from);
    struct conn *c = leg_conn(from);
    while (from->piped) {
        ssize_t n = splice(from->pipe[0], NULL, to->tp.fd, NULL, from->piped,
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n < 0) {
            if (errno == EINTR)
                return STEP_AGAIN;
            if (errno == EAGAIN) { /* the pipe holds bytes: the socket is full */
                to->tp.ready &= (uint8_t)~TP_WANT_WRITE;
                return STEP_AGAIN;
            }
            return conn_fail(c, "%s write error: %s", leg_name(to), strerror(errno));
        }
        from->piped -= (uint32_t)n;
        c->last_io = ev_now(c->pool->loop);
    }
    return STEP_AGAIN;
}

/* ---- the copying path, and both together ------------------------------------------ */

/* Writes what `from` has pending to its peer. */
static enum step flush(struct leg *from)
{
    struct buf *p = &from->pend;
    struct leg *to = leg_peer(from);
    struct conn *c = leg_conn(from);

    if (from->piped)
        return flush_pipe(from);
    if (buf_unread(p))
        leg_before_write(to);
    while (buf_unread(p)) {
        ssize_t n = to->tp.ops->write(&to->tp, p->data + p->off, buf_unread(p));
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return STEP_AGAIN;
            return conn_fail(c, "%s write error: %s", leg_name(to), strerror(errno));
        }
        buf_consume(p, (size_t)n);
        c->last_io = ev_now(c->pool->loop);
    }
    buf_release(p); /* drained: an idle connection holds no buffer */
    return STEP_AGAIN;
}

/* After `from` reached end of stream and all of its bytes went out: FIN to the peer (TLS:
 * close_notify first, and the FIN only once that is out). */
static enum step propagate_eof(struct leg *from)
{
    struct leg *to = leg_peer(from);
    if (!from->rd_eof || to->wr_shut || leg_pending(from))
        return STEP_AGAIN;
    /* Kernel relay: shutting down before the peer socket took every byte the kernel moved
     * for it would lose them (its watchdog wakes us to look again). */
    if (!krelay_fin_ready(from))
        return STEP_AGAIN;
    /* Both directions are over on a plain socket: close() (next, in conn_close) sends the
     * FIN anyway. */
    if (to->rd_eof && !leg_pending(to) && to->tp.ops->raw) {
        to->wr_shut = true;
        return STEP_AGAIN;
    }
    if (to->tp.ops->shutdown_wr(&to->tp) < 0) {
        if (errno == EAGAIN)
            return STEP_AGAIN; /* the transport waits for room (wants() says so) */
        if (errno != ENOTCONN)
            return conn_fail(leg_conn(from), "%s shutdown error: %s", leg_name(to),
                             strerror(errno));
    }
    to->wr_shut = true;
    return STEP_AGAIN;
}

/* Reads once from `from` and passes the bytes straight on; what the peer cannot take now
 * is kept in from->pend, which stops reading `from` until it has drained. */
static enum step forward(struct leg *from)
{
    struct conn *c = leg_conn(from);
    uint8_t *buf = c->pool->scratch;

    maybe_pipe(from);
    bool piping = from->pipe[0] >= 0;
    ssize_t n = piping ? splice(from->tp.fd, NULL, from->pipe[1], NULL, SPLICE_CHUNK,
                                SPLICE_F_MOVE | SPLICE_F_NONBLOCK)
                       : from->tp.ops->read(&from->tp, buf, RELAY_BUF);

    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (piping) /* read only into an empty pipe: the socket had nothing */
                from->tp.ready &= (uint8_t)~TP_WANT_READ;
            return STEP_AGAIN;
        }
        /* A reset is how many clients end (Chromium after a TURN Refresh with lifetime
         * 0): an ordinary end, not a failure. */
        if (errno == ECONNRESET)
            return conn_end(c, "%s reset the connection", leg_name(from));
        return conn_fail(c, "%s read error: %s", leg_name(from), strerror(errno));
    }
    if (n == 0) {
        from->rd_eof = true;
        if (!from->backend && c->terminated && tls_conn_truncated(&from->tp)) {
            MX_INC(mx.tls_truncated);
            log_info("conn=%llu client ended without close_notify (truncated TLS stream)",
                     (unsigned long long)c->id);
        }
        return propagate_eof(from);
    }
    from->bytes += (uint64_t)n;
    c->last_io = ev_now(c->pool->loop);
    if (piping) {
        from->piped = (uint32_t)n;
        return flush_pipe(from);
    }
    /* An event reported the FIN before this read, and the read was short: it emptied the
     * queue up to the FIN, so the stream has ended here, without the read that would
     * answer 0. Plain TCP only: TLS reads its close_notify itself, and bytes the kernel
     * relay passes to user space may still be on their way to the queue. */
    bool ended =
        (size_t)n < RELAY_BUF && from->tp.rdhup && from->tp.tcp && from->tp.ops->raw && !c->krelay;
    from->bulk = (size_t)n >= RELAY_BUF / 4;
    enum step st = leg_pass_on(from, buf, (size_t)n);
    if (st != STEP_AGAIN || !ended)
        return st;
    from->rd_eof = true;
    return propagate_eof(from);
}

static bool finished(const struct conn *c)
{
    return c->client.rd_eof && c->backend_leg.rd_eof && c->client.wr_shut && c->backend_leg.wr_shut;
}

void relay_arm(struct conn *c)
{
    struct ev_loop *loop = c->pool->loop;
    c->last_io = ev_now(loop);
    ev_timer_stop(loop, &c->timer);
    c->timer.repeat = c->route->idle_timeout;
    ev_timer_again(loop, &c->timer);
    krelay_start(c);
}

static enum step idle(struct conn *c)
{
    struct ev_loop *loop = c->pool->loop;
    ev_tstamp limit = c->route->idle_timeout;
    ev_tstamp left = c->last_io + limit - ev_now(loop);

    if (left <= 0)
        return conn_end(c, "idle timeout (%.0fs)", limit);
    /* libev's cheap idle timer: re-arm for the remaining time instead of on every byte. */
    c->timer.repeat = left;
    ev_timer_again(loop, &c->timer);
    return STEP_AGAIN;
}

static enum step relay_run(struct conn *c, struct leg *l, int revents)
{
    enum step st;

    if (revents & EV_TIMER)
        return idle(c);
    if (krelay_doomed(c))
        return STEP_FAIL;
    if (revents & EV_CUSTOM) /* conn_wake: look at everything */
        l = NULL;
    if (!l) {
        /* What waits goes out first: the preread first flight, byte-exact, and a fan-out
         * winner's answer; then an end of stream that had to wait (kernel relay). */
        if ((st = flush(&c->client)) != STEP_AGAIN || (st = flush(&c->backend_leg)) != STEP_AGAIN ||
            (st = propagate_eof(&c->client)) != STEP_AGAIN ||
            (st = propagate_eof(&c->backend_leg)) != STEP_AGAIN)
            return st;
        /* Records read ahead with the first flight (TLS) are already inside the
         * transport: no socket event will announce them. */
        if (!c->client.tp.ops->pending(&c->client.tp))
            return finished(c) ? conn_end(c, "done") : STEP_AGAIN;
        l = &c->client;
        revents = EV_READ;
    }
    /* TLS may have parked a read behind a write or the reverse: then retry both. */
    bool crossed = l->tp.ops->wants(&l->tp) != 0;
    if ((revents & EV_WRITE) || crossed) {
        struct leg *o = leg_peer(l);
        if ((st = flush(o)) != STEP_AGAIN || (st = propagate_eof(o)) != STEP_AGAIN)
            return st;
        /* The peer leg stopped reading for back-pressure with decrypted bytes still
         * inside its transport: no socket event will say so, take them now. */
        while (!o->rd_eof && !leg_pending(o) && o->tp.ops->pending(&o->tp))
            if ((st = forward(o)) != STEP_AGAIN)
                return st;
    }
    if ((revents & EV_READ) || crossed) {
        /* Decrypted bytes already inside the transport raise no socket event: take them
         * now, as far as back-pressure allows. */
        do {
            if (l->rd_eof || leg_pending(l))
                break;
            if ((st = forward(l)) != STEP_AGAIN)
                return st;
        } while (l->tp.ops->pending(&l->tp));
    }
    return finished(c) ? conn_end(c, "done") : STEP_AGAIN;
}

enum step relay_step(struct conn *c, struct leg *l, int revents)
{
    enum step st = relay_run(c, l, revents);
    if (st == STEP_AGAIN && c->krelay)
        krelay_after(c);
    return st;
}
