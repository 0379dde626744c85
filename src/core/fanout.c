/* ICE-TCP fan-out: one candidate connection per server in service, each sent the
 * client's first RFC 4571 frame (after a PROXY header if the backend wants one); the first
 * framed STUN Binding success with the client's transaction id wins. Error responses,
 * silence, closes and refused connects lose. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mux443/core/connect.h"
#include "mux443/core/fanout.h"
#include "mux443/lib/ice.h"
#include "mux443/lib/log.h"
#include "mux443/state/history.h"
#include "mux443/state/metrics.h"
#include "mux443/state/ufrag.h"

/* What a candidate may send before it is judged: a framed Binding response (with
 * XOR-MAPPED-ADDRESS, MESSAGE-INTEGRITY and FINGERPRINT it is under 100 bytes); more is
 * an error. */
#define ANSWER_MAX 1024

struct fo_leg {
    ev_io io; /* io.data is this fo_leg */
    struct fanout *f;
    int fd;
    size_t idx; /* server index in the backend */
    size_t len;
    uint8_t in[ANSWER_MAX];
};

struct fanout {
    struct conn *c;
    size_t frame_len, n, alive;
    bool started;
    struct fo_leg *winner;
    unsigned refused, errors, closed;
    struct fo_leg legs[];
};

static atomic_uint fanouts_active;

static void leg_drop(struct fanout *f, struct fo_leg *l)
{
    if (l->fd < 0)
        return;
    ev_io_stop(f->c->pool->loop, &l->io);
    close(l->fd);
    l->fd = -1;
    f->alive--;
}

void fanout_free(struct conn *c)
{
    struct fanout *f = c->fanout;
    if (!f)
        return;
    for (size_t i = 0; i < f->n; i++)
        leg_drop(f, &f->legs[i]);
    if (f->started)
        atomic_fetch_sub(&fanouts_active, 1);
    free(f);
    c->fanout = NULL;
}

void fanout_prepare(struct conn *c, size_t frame_len)
{
    size_t n = c->backend->servers.n;
    c->fanout = calloc(1, sizeof(*c->fanout) + n * sizeof(c->fanout->legs[0]));
    if (c->fanout) {
        c->fanout->c = c;
        c->fanout->frame_len = frame_len;
    }
}

static enum step fanout_fail(struct fanout *f, const char *what)
{
    struct conn *c = f->c;
    MX_INC(mx.fanout_failures);
    history_fanout(c->backend->name, c->ufrag, NULL);
    return conn_fail(c,
                     "ICE-TCP fan-out: no server of backend %s took ufrag '%s' (%s; %u refused or "
                     "failed to connect, %u answered with an error, %u closed)",
                     c->backend->name, c->ufrag ? c->ufrag : "", what, f->refused, f->errors,
                     f->closed);
}

/* The winner becomes the backend leg; what it sent (the Binding success) goes to the
 * client first, and the client's bytes after its first frame go to the winner. */
static enum step fanout_win(struct fanout *f, struct fo_leg *w)
{
    struct conn *c = f->c;
    const struct cfg_backend *b = c->backend;
    struct buf *bp = &c->backend_leg.pend;

    ev_io_stop(c->pool->loop, &w->io);
    conn_backend_socket(c, w->fd);
    w->fd = -1;
    f->alive--;
    c->server = &b->servers.v[w->idx];
    if (!buf_reserve(bp, w->len, RELAY_BUF))
        return conn_fail(c, "out of memory");
    buf_put(bp, w->in, w->len);
    c->backend_leg.bytes += w->len;
    buf_consume(&c->client.pend, f->frame_len);
    struct mx_server *sm = snap_server_mx(c->snap, b, w->idx);
    MX_INC(sm->fanout_wins);
    history_fanout(b->name, c->ufrag, c->server->text);
    MX_INC(sm->connects);
    if (c->ufrag)
        c->ufrag_held = ufrag_learn(b, c->ufrag, strlen(c->ufrag), w->idx);
    log_debug("conn=%llu fan-out: %s owns ufrag '%s'", (unsigned long long)c->id, c->server->text,
              c->ufrag ? c->ufrag : "");
    conn_deadline(c, 0);
    fanout_free(c);
    return STEP_DONE;
}

/* Looks at what a candidate sent: a whole frame decides. Returns true if it won. */
static bool judge(struct fanout *f, struct fo_leg *l)
{
    const struct buf *cp = &f->c->client.pend;
    switch (ice_judge_answer(cp->data + cp->off, l->in, l->len, sizeof(l->in))) {
    case ICE_AGAIN:
        return false;
    case ICE_WIN:
        return true;
    case ICE_LOSE:
        break;
    }
    f->errors++;
    leg_drop(f, l);
    return false;
}

static void leg_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct fo_leg *l = io->data;
    struct fanout *f = l->f;
    struct conn *c = f->c;

    if (revents & EV_WRITE) {
        /* The first send tells whether the connect succeeded (a refused one fails it
         * with ECONNREFUSED): no getsockopt(SO_ERROR) first. */
        const struct buf *cp = &c->client.pend;
        uint8_t buf[PROXY_HDR_MAX + ICE_FRAME_MAX];
        size_t n = 0;
        if (c->backend->proxy_protocol) /* getsockname only for a header that needs it */
            n = connect_proxy_header(c->backend, (struct sockaddr *)&c->peer_addr,
                                     conn_local_addr(c), buf);
        memcpy(buf + n, cp->data + cp->off, f->frame_len);
        n += f->frame_len;
        ssize_t w = send(l->fd, buf, n, MSG_NOSIGNAL);
        if (w < 0) {
            f->refused++;
            MX_INC(snap_server_mx(c->snap, c->backend, l->idx)->connect_failures);
            leg_drop(f, l);
        } else if (w != (ssize_t)n) {
            f->closed++;
            leg_drop(f, l);
        } else {
            ev_io_stop(loop, &l->io);
            ev_io_modify(&l->io, EV_READ);
            ev_io_start(loop, &l->io);
        }
    } else {
        ssize_t r = recv(l->fd, l->in + l->len, sizeof(l->in) - l->len, 0);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (r <= 0) {
            f->closed++;
            leg_drop(f, l);
        } else {
            l->len += (size_t)r;
            if (judge(f, l))
                f->winner = l;
        }
    }
    if (f->winner || f->alive == 0)
        conn_wake(c); /* the driver looks at the verdict from the event loop */
}

static enum step fanout_start(struct fanout *f)
{
    struct conn *c = f->c;
    const struct cfg_backend *b = c->backend;

    if (atomic_fetch_add(&fanouts_active, 1) >= c->cfg->fanout_max) {
        atomic_fetch_sub(&fanouts_active, 1);
        MX_INC(mx.fanout_failures);
        return conn_fail(c, "ICE-TCP fan-out: fanout_max (%u) fan-outs already in progress",
                         c->cfg->fanout_max);
    }
    f->started = true;
    MX_INC(mx.fanouts);
    for (size_t i = 0; i < b->servers.n; i++) {
        struct fo_leg *l = &f->legs[f->n];
        struct mx_server *sm = snap_server_mx(c->snap, b, i);
        if (atomic_load(&sm->down))
            continue;
        l->f = f;
        l->idx = i;
        l->fd = connect_start(&b->servers.v[i]);
        if (l->fd < 0) {
            f->refused++;
            MX_INC(sm->connect_failures);
            continue;
        }
        ev_io_init(&l->io, leg_cb, l->fd, EV_WRITE);
        l->io.data = l;
        ev_io_start(c->pool->loop, &l->io);
        f->n++;
        f->alive++;
    }
    if (!f->alive)
        return fanout_fail(f, "no server in service could be reached");
    conn_deadline(c, c->cfg->fanout_timeout);
    return STEP_AGAIN;
}

enum step fanout_step(struct conn *c, int revents)
{
    struct fanout *f = c->fanout;

    if (!f)
        return conn_fail(c, "out of memory");
    if (!f->started)
        return fanout_start(f);
    if (f->winner)
        return fanout_win(f, f->winner);
    if (revents & EV_TIMER)
        return fanout_fail(f, "the others stayed silent");
    if (f->alive == 0)
        return fanout_fail(f, "every server answered");
    return STEP_AGAIN;
}
