/* ICE-TCP fan-out: one candidate connection per server in service, each sent the
 * client's first RFC 4571 frame (after a PROXY header if the backend wants one); the first
 * framed STUN Binding success with the client's transaction id wins. Error responses,
 * silence, closes and refused connects lose. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mux443/core/connect.h"
#include "mux443/core/fanout.h"
#include "mux443/lib/ice.h"
#include "mux443/lib/log.h"
#include "mux443/state/history.h"
#include "mux443/state/limits.h"
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
    bool counted; /* in max_connections (mx.open_all) while it is a candidate */
    size_t idx;   /* server index in the backend */
    size_t len;
    uint8_t in[ANSWER_MAX];
};

struct fanout {
    struct conn *c;
    size_t frame_len, n, alive;
    bool started, per_client; /* per_client: counted in LIMITS_FANOUTS under key */
    uint8_t key[16];
    struct fo_leg *winner;
    unsigned refused, errors, closed;
    struct fo_leg legs[];
};

static atomic_uint fanouts_active;
static _Atomic long rate_second;
static atomic_uint rate_count;

/* A candidate stops being one: it leaves max_connections (the winner is then counted as
 * the connection's backend leg). */
static void leg_uncount(struct fo_leg *l)
{
    if (l->counted)
        limits_leave(&mx.open_all);
    l->counted = false;
}

static void leg_drop(struct fanout *f, struct fo_leg *l)
{
    if (l->fd < 0)
        return;
    ev_io_stop(f->c->pool->loop, &l->io);
    close(l->fd);
    l->fd = -1;
    leg_uncount(l);
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
    if (f->per_client)
        limits_client_release(LIMITS_FANOUTS, f->key);
    free(f);
    c->fanout = NULL;
}

/* Counts a refusal and ends the connection with why. */
static bool refuse(struct conn *c, enum mx_fanout_refuse reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool refuse(struct conn *c, enum mx_fanout_refuse reason, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    MX_INC(mx.fanout_refused[reason]);
    conn_fail(c, "ICE-TCP fan-out refused: %s", msg);
    return false;
}

/* One more fan-out this second, unless fanout_rate already started. */
static bool rate_take(unsigned rate)
{
    long now = (long)time(NULL), seen = atomic_load(&rate_second);
    if (seen != now && atomic_compare_exchange_strong(&rate_second, &seen, now))
        atomic_store(&rate_count, 0);
    return atomic_fetch_add(&rate_count, 1) < rate;
}

enum mx_fanout_refuse fanout_admit(const struct cfg *cfg, const uint8_t *key, bool keyed,
                                   bool *log_it)
{
    *log_it = false;
    if (keyed && !limits_client_acquire(LIMITS_FANOUTS, key, cfg->fanout_per_client, log_it))
        return MXF_PER_CLIENT;
    if (!rate_take(cfg->fanout_rate)) {
        if (keyed)
            limits_client_release(LIMITS_FANOUTS, key);
        return MXF_RATE;
    }
    return MXF_COUNT;
}

bool fanout_prepare(struct conn *c, const struct probe_out *p)
{
    const struct cfg *cfg = c->snap->cfg;
    bool log_it;

    /* Only what a browser's connectivity check is: a media server answers nothing else,
     * so anything else would only cost every server a connection. */
    if (p->stun_type != 0x0001)
        return refuse(c, MXF_NOT_BINDING, "STUN type 0x%04x is not a Binding request",
                      p->stun_type);
    if (!ufrag_valid(p->ufrag, p->ufrag_len) || !ufrag_valid(p->cufrag, p->cufrag_len))
        return refuse(c, MXF_BAD_USERNAME, "no USERNAME of two well-formed ufrags%s%s",
                      p->why ? ": " : "", p->why ? p->why : "");
    if (!p->stun_integrity)
        return refuse(c, MXF_NO_INTEGRITY, "no MESSAGE-INTEGRITY");
    uint8_t key[16];
    bool keyed = conn_client_key(c, key);
    switch (fanout_admit(cfg, key, keyed, &log_it)) {
    case MXF_PER_CLIENT:
        if (log_it) {
            char client[ADDR_TEXT_MAX];
            log_warnx("client %s: fanout_per_client (%u) fan-outs in progress: refusing "
                      "its new ones (logged once per %ds)",
                      conn_peer_text(c, client), cfg->fanout_per_client, LIMITS_LOG_INTERVAL);
        }
        return refuse(c, MXF_PER_CLIENT, "fanout_per_client (%u) in progress for this client",
                      cfg->fanout_per_client);
    case MXF_RATE:
        return refuse(c, MXF_RATE, "fanout_rate (%u per second) reached", cfg->fanout_rate);
    default:
        break;
    }
    size_t n = c->backend->servers.n;
    c->fanout = calloc(1, sizeof(*c->fanout) + n * sizeof(c->fanout->legs[0]));
    if (!c->fanout) {
        if (keyed)
            limits_client_release(LIMITS_FANOUTS, key);
        conn_fail(c, "out of memory");
        return false;
    }
    c->fanout->c = c;
    c->fanout->per_client = keyed;
    memcpy(c->fanout->key, key, sizeof(key));
    c->fanout->frame_len = p->consumed;
    return true;
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
    c->server = &b->servers.v[w->idx];
    conn_backend_socket(c, w->fd);
    w->fd = -1;
    leg_uncount(w);
    f->alive--;
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
            n = connect_proxy_header(c->backend, &c->peer_addr.sa, conn_local_addr(c), buf);
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

    if (atomic_fetch_add(&fanouts_active, 1) >= c->snap->cfg->fanout_max) {
        atomic_fetch_sub(&fanouts_active, 1);
        MX_INC(mx.fanout_failures);
        MX_INC(mx.fanout_refused[MXF_FANOUT_MAX]);
        return conn_fail(c, "ICE-TCP fan-out: fanout_max (%u) fan-outs already in progress",
                         c->snap->cfg->fanout_max);
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
        l->fd = -1;
        /* Each candidate holds a descriptor like a connection does. */
        if (!limits_admit(&mx.open_all, c->snap->cfg->max_connections)) {
            MX_INC(mx.fanout_refused[MXF_MAX_CONNECTIONS]);
            break;
        }
        l->counted = true;
        l->fd = connect_start(&b->servers.v[i]);
        if (l->fd < 0) {
            leg_uncount(l);
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
    conn_deadline(c, c->snap->cfg->fanout_timeout);
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
