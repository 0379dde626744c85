/* ICE-TCP fan-out: one candidate connection per server in service, each sent the
 * client's first RFC 4571 frame (after a PROXY header if the backend wants one); the first
 * framed STUN Binding success with the client's transaction id wins. Error responses,
 * silence, closes and refused connects lose. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mux443/core/backend.h"
#include "mux443/core/conn.h"
#include "mux443/core/fanout.h"
#include "mux443/runtime/listener.h"
#include "mux443/lib/log.h"
#include "mux443/state/metrics.h"
#include "mux443/lib/proxy_proto.h"
#include "mux443/state/ufrag.h"

struct fo_leg {
    ev_io io;
    struct fanout *f;
    int fd;
    size_t idx; /* server index in the backend */
    size_t len;
    uint8_t in[1024]; /* what the server sent: a framed response fits easily */
};

struct fanout {
    struct conn *c;
    ev_timer timer;
    size_t frame_len, n, alive;
    unsigned refused, errors, closed;
    struct fo_leg legs[];
};

static atomic_uint fanouts_active;

static void leg_drop(struct fanout *f, struct fo_leg *l)
{
    if (l->fd < 0)
        return;
    ev_io_stop(f->c->w->loop, &l->io);
    close(l->fd);
    l->fd = -1;
    f->alive--;
}

void fanout_free(struct fanout *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n; i++)
        leg_drop(f, &f->legs[i]);
    ev_timer_stop(f->c->w->loop, &f->timer);
    atomic_fetch_sub(&fanouts_active, 1);
    free(f);
}

static void fanout_fail(struct fanout *f, const char *what)
{
    struct conn *c = f->c;
    MX_INC(mx.fanout_failures);
    conn_close(c, true,
               "ICE-TCP fan-out: no server of backend %s took ufrag '%s' (%s; %u refused or "
               "failed to connect, %u answered with an error, %u closed)",
               c->backend->name, c->ufrag ? c->ufrag : "", what, f->refused, f->errors, f->closed);
}

static void fanout_win(struct fanout *f, struct fo_leg *w)
{
    struct conn *c = f->c;
    const struct cfg_backend *b = c->backend;
    struct pend *cp = &c->client.pend, *bp = &c->backend_leg.pend;

    /* The winner becomes the backend leg; what it sent (the Binding success) goes to the
     * client first, and the client's bytes after its first frame go to the winner. */
    ev_io_stop(c->w->loop, &w->io);
    c->backend_leg.fd = w->fd;
    w->fd = -1;
    f->alive--;
    c->server = &b->servers.v[w->idx];
    if (!pend_reserve(bp, w->len, RELAY_BUF)) {
        conn_close(c, true, "out of memory");
        return;
    }
    memcpy(bp->data, w->in, w->len);
    bp->len = (uint32_t)w->len;
    c->backend_leg.bytes += w->len;
    memmove(cp->data, cp->data + f->frame_len, cp->len - f->frame_len);
    cp->len -= (uint32_t)f->frame_len;
    MX_INC(b->mx[w->idx]->fanout_wins);
    MX_INC(b->mx[w->idx]->connects);
    if (c->ufrag) {
        ufrag_learn(c->ufrag, b, w->idx);
        c->ufrag_held = true;
    }
    log_debug("conn=%llu fan-out: %s owns ufrag '%s'", (unsigned long long)c->id, c->server->text,
              c->ufrag ? c->ufrag : "");
    c->fanout = NULL;
    fanout_free(f);
    c->state = CONN_RELAY;
    relay_start(c);
}

/* Looks at what a candidate sent: a whole frame decides. Returns true if it won. */
static bool judge(struct fanout *f, struct fo_leg *l)
{
    const uint8_t *client = f->c->client.pend.data; /* frame: 2 length bytes + STUN */
    if (l->len < 2)
        return false;
    size_t flen = (size_t)(l->in[0] << 8 | l->in[1]);
    if (l->len < 2 + flen) {
        if (2 + flen > sizeof(l->in)) {
            f->errors++;
            leg_drop(f, l);
        }
        return false;
    }
    const uint8_t *m = l->in + 2;
    bool same_tx = flen >= 20 && memcmp(m + 4, client + 2 + 4, 16) == 0; /* cookie + txid */
    if (same_tx && m[0] == 0x01 && m[1] == 0x01)
        return true; /* Binding success response */
    f->errors++;     /* an error response (e.g. 401/400 for a foreign ufrag) or anything else */
    leg_drop(f, l);
    return false;
}

static void leg_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct fo_leg *l = (struct fo_leg *)io;
    struct fanout *f = l->f;
    struct conn *c = f->c;

    if (revents & EV_WRITE) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(l->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
            f->refused++;
            MX_INC(c->backend->mx[l->idx]->connect_failures);
            leg_drop(f, l);
        } else {
            uint8_t buf[PROXY_HDR_MAX + 4096];
            size_t n = 0;
            if (c->backend->proxy_protocol)
                n = proxy_build(buf, sizeof(buf), c->backend->proxy_protocol,
                                (struct sockaddr *)&c->peer_addr, conn_local_addr(c));
            memcpy(buf + n, c->client.pend.data, f->frame_len);
            n += f->frame_len;
            if (send(l->fd, buf, n, MSG_NOSIGNAL) != (ssize_t)n) {
                f->closed++;
                leg_drop(f, l);
            } else {
                ev_io_stop(loop, &l->io);
                ev_io_set(&l->io, l->fd, EV_READ);
                ev_io_start(loop, &l->io);
            }
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
            if (judge(f, l)) {
                fanout_win(f, l);
                return;
            }
        }
    }
    if (f->alive == 0)
        fanout_fail(f, "every server answered");
}

static void timeout_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct fanout *f = t->data;
    (void)loop;
    (void)revents;
    fanout_fail(f, "the others stayed silent");
}

void fanout_start(struct conn *c, size_t frame_len)
{
    const struct cfg_backend *b = c->backend;
    struct fanout *f;

    if (atomic_fetch_add(&fanouts_active, 1) >= c->cfg->fanout_max) {
        atomic_fetch_sub(&fanouts_active, 1);
        MX_INC(mx.fanout_failures);
        conn_close(c, true, "ICE-TCP fan-out: fanout_max (%u) fan-outs already in progress",
                   c->cfg->fanout_max);
        return;
    }
    if (!(f = calloc(1, sizeof(*f) + b->servers.n * sizeof(f->legs[0])))) {
        atomic_fetch_sub(&fanouts_active, 1);
        conn_close(c, true, "out of memory");
        return;
    }
    MX_INC(mx.fanouts);
    f->c = c;
    f->frame_len = frame_len;
    c->fanout = f;
    for (size_t i = 0; i < b->servers.n; i++) {
        struct fo_leg *l = &f->legs[f->n];
        if (atomic_load(&b->mx[i]->down))
            continue;
        l->f = f;
        l->idx = i;
        l->fd = backend_connect(&b->servers.v[i]);
        if (l->fd < 0) {
            f->refused++;
            MX_INC(b->mx[i]->connect_failures);
            continue;
        }
        ev_io_init(&l->io, leg_cb, l->fd, EV_WRITE);
        ev_io_start(c->w->loop, &l->io);
        f->n++;
        f->alive++;
    }
    if (!f->alive) {
        fanout_fail(f, "no server in service could be reached");
        return;
    }
    ev_timer_init(&f->timer, timeout_cb, c->cfg->fanout_timeout, 0);
    f->timer.data = f;
    ev_timer_start(c->w->loop, &f->timer);
}
