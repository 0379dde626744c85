/* The kernel relay: insertion into the sockmap (passing what arrives to user space until
 * it has sent on all it was given, then arming), the ends of stream (a FIN goes on only
 * once the peer socket took every counted byte), the watchdog (backlog caps, idle
 * activity) and the byte counts of the close line. */
#include <errno.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "mux443/core/krelay.h"
#include "mux443/lib/log.h"
#include "mux443/lib/sockmap.h"
#include "mux443/state/metrics.h"

/* Watchdog period: the program itself stops redirecting past 2 x kernel_relay_backlog
 * plus what the receiver acknowledged during the last period, so memory cannot run away
 * between two ticks. */
#define WATCH_EVERY 0.1

static struct sockmap *sm;
static atomic_bool told; /* the one "unavailable" line was logged */

struct krelay {
    struct sockmap_slot *slot[2]; /* [0] the client's socket, [1] the backend's */
    uint64_t cookie[2];
    uint64_t read0[2];   /* leg bytes when inserted: user space read bytes - read0 since */
    int64_t base[2];     /* the peer of leg i is given base + leg bytes + kernel bytes */
    uint64_t acked[2];   /* the peer's acknowledged bytes at the last tick */
    uint64_t seen[2];    /* kernel bytes at the last tick */
    uint64_t backlog[2]; /* bytes for the peer of leg i not acknowledged, last tick */
    bool waiting;        /* not in the map yet: user space relays until it can be */
    bool quiet_ok;       /* its sockets are in the pool's end-of-stream set */
    bool ended[2];       /* that set reported the leg's end (or error): it must be read */
    bool doomed;         /* closed by the watchdog, on the next wake */
};

static struct leg *leg_of(struct conn *c, int i)
{
    return i ? &c->backend_leg : &c->client;
}

static bool has_kernel_route(const struct cfg *cfg)
{
    for (size_t i = 0; i < cfg->nroutes; i++)
        if (cfg->routes[i].relay == RELAY_KERNEL)
            return true;
    return false;
}

void krelay_init(const struct cfg *cfg)
{
    char err[256];

    if (!has_kernel_route(cfg))
        return;
    if ((sm = sockmap_open(err, sizeof(err)))) {
        log_info("kernel relay ready: routes with relay = kernel relay plain legs in the kernel");
        return;
    }
    atomic_store(&told, true);
    log_warnx("kernel relay unavailable (%s): routes with relay = kernel relay in user space", err);
}

void krelay_fini(void)
{
    sockmap_close(sm);
    sm = NULL;
}

/* Bytes acknowledged by the socket's peer, and (with outq) all bytes ever written to it:
 * acknowledged + still in the send queue. Acknowledged is read first, so a concurrent
 * acknowledgement can only make the sum smaller. */
static bool tcp_counts(int fd, uint64_t *acked, uint64_t *written, uint8_t *state)
{
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    int outq = 0;

    memset(&ti, 0, sizeof(ti));
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
        return false;
    *acked = ti.tcpi_bytes_acked;
    if (state)
        *state = ti.tcpi_state;
    if (!written)
        return true;
    if (ioctl(fd, SIOCOUTQ, &outq) != 0)
        return false;
    *written = ti.tcpi_bytes_acked + (uint64_t)(outq > 0 ? outq : 0);
    return true;
}

static void watch_cb(struct ev_loop *loop, ev_timer *t, int revents);

/* The end-of-stream set: a leg whose socket ended (or failed) is read again, to see it. */
static void ends_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct epoll_event evs[64];
    (void)loop;
    (void)revents;
    int n = epoll_wait(w->fd, evs, 64, 0);
    for (int i = 0; i < n; i++) {
        struct leg *l = evs[i].data.ptr;
        struct conn *c = leg_conn(l);
        if (c->krelay)
            c->krelay->ended[l->backend] = true;
        l->tp.ready |= TP_WANT_READ;
        conn_wake(c);
    }
}

/* Ends the connection from the watchdog: the relay phase returns the failure on the wake
 * (connection teardown belongs to conn.c). */
#define DOOM(c, ...)                                                                               \
    do {                                                                                           \
        MX_INC(mx.krelay_backlog_closed);                                                          \
        (c)->krelay->doomed = true;                                                                \
        conn_fail((c), __VA_ARGS__);                                                               \
        conn_wake(c);                                                                              \
    } while (0)

static void fallback(struct conn *c, const char *why, int err)
{
    MX_INC(mx.krelay_fallback);
    /* A side that ended first is how short exchanges end (a request and its FIN in one
     * flight): not worth a line per connection but at debug. */
    if (err == ESHUTDOWN)
        log_debug("conn=%llu kernel relay: %s: relaying in user space", (unsigned long long)c->id,
                  why);
    else
        log_info("conn=%llu kernel relay refused (%s: %s): relaying in user space",
                 (unsigned long long)c->id, why, strerror(err));
}

void krelay_start(struct conn *c)
{
    if (!c->route || c->route->relay != RELAY_KERNEL || c->krelay)
        return;
    /* TLS-terminated legs carry records, not the client's bytes: user space relays them. */
    if (c->terminated || !c->client.tp.ops->raw || !c->backend_leg.tp.ops->raw)
        return;
    if (!sm) {
        MX_INC(mx.krelay_fallback);
        if (!atomic_exchange(&told, true))
            log_warnx("kernel relay not loaded (no route had relay = kernel at start): "
                      "relaying in user space until a restart");
        return;
    }
    if (!(c->krelay = calloc(1, sizeof(*c->krelay))))
        fallback(c, "out of memory", ENOMEM);
    else
        c->krelay->waiting = true; /* krelay_after inserts the sockets */
}

static void give_up(struct conn *c, const char *why, int err)
{
    fallback(c, why, err);
    free(c->krelay);
    c->krelay = NULL;
}

/* Reads leg l until its receive queue is empty, passing the bytes on: true when it is
 * (the program must never be handed a segment user space has read the head of: it would
 * move those bytes again). False to try again after the next step (the peer cannot take
 * more now, or enough was read for one go), or when the connection was handed back to
 * user space (c->krelay NULL). */
static bool drain(struct conn *c, struct leg *l)
{
    uint8_t *buf = c->pool->scratch;

    for (int round = 0; round < 16; round++) {
        ssize_t n = l->tp.ops->read(&l->tp, buf, RELAY_BUF);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        if (n <= 0) {
            /* An end or an error: the relay phase deals with it, in user space. */
            if (n == 0)
                l->rd_eof = true;
            give_up(c,
                    n == 0 ? "a side ended before the sockets could enter the map" : "read error",
                    n == 0 ? ESHUTDOWN : errno);
            conn_wake(c);
            return false;
        }
        l->bytes += (uint64_t)n;
        c->last_io = ev_now(c->pool->loop);
        if (leg_pass_on(l, buf, (size_t)n) != STEP_AGAIN) {
            /* A write error or no memory (the reason is set): the relay phase fails the
             * connection on the wake (krelay_doomed), as it would have itself. */
            c->krelay->doomed = true;
            conn_wake(c);
            return false;
        }
        if (leg_pending(l)) /* the peer is full: on after the next step */
            return false;
    }
    return false;
}

/* Both sockets into the map, once user space has passed on every byte it read and has
 * emptied both receive queues: the program is then given only whole segments. */
static void insert(struct conn *c)
{
    struct krelay *kr = c->krelay;
    uint64_t written[2], acked;
    uint8_t state;

    if (c->client.rd_eof || c->backend_leg.rd_eof) {
        give_up(c, "a side ended before the sockets could enter the map", ESHUTDOWN);
        return;
    }
    if (leg_pending(&c->client) || leg_pending(&c->backend_leg))
        return; /* user space still relays: after the next step */
    if (!drain(c, &c->client) || !c->krelay || !drain(c, &c->backend_leg) || !c->krelay)
        return;
    for (int i = 0; i < 2; i++) {
        int fd = leg_of(c, i)->tp.fd;
        /* Only an ESTABLISHED socket can enter the map (EOPNOTSUPP otherwise); one still
         * connecting (TCP Fast Open sends the preread with the SYN) may later. */
        state = 0;
        if (tcp_counts(fd, &acked, &written[i], &state) && (state == 2 || state == 3))
            return; /* TCP_SYN_SENT, TCP_SYN_RECV: after the next step */
        if (state != 1 /* TCP_ESTABLISHED */ || !(kr->cookie[i] = sockmap_cookie(fd))) {
            give_up(c, "socket not ESTABLISHED", EOPNOTSUPP);
            return;
        }
        kr->acked[i ^ 1] = acked;
        /* The kernel sends what it moves at once: no Nagle delay on small packets,
         * whatever the connect phase chose. */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    for (int i = 0; i < 2; i++) {
        struct leg *l = leg_of(c, i);
        kr->read0[i] = l->bytes;
        kr->base[i] = (int64_t)written[i ^ 1] - (int64_t)l->bytes;
    }
    uint64_t limit = 2ull * c->snap->cfg->krelay_backlog;
    if (!(kr->slot[0] = sockmap_add(sm, c->client.tp.fd, kr->cookie[0], kr->cookie[1], limit))) {
        give_up(c, "sockmap insertion", errno);
        return;
    }
    kr->waiting = false;
    if (!(kr->slot[1] =
              sockmap_add(sm, c->backend_leg.tp.fd, kr->cookie[1], kr->cookie[0], limit))) {
        /* The client's socket stays in the map, never armed: what it receives is passed to
         * user space, in order (taking it out now could lose what it holds). */
        fallback(c, "sockmap insertion", errno);
        return;
    }
    MX_INC(mx.krelay_started);
    log_debug("conn=%llu kernel relay: both sockets in the map", (unsigned long long)c->id);
    struct conn_pool *p = c->pool;
    if (!p->nkrelay++) {
        ev_timer_init(&p->krelay_watch, watch_cb, WATCH_EVERY, WATCH_EVERY);
        p->krelay_watch.data = p;
        ev_timer_start(p->loop, &p->krelay_watch);
        int ep = epoll_create1(EPOLL_CLOEXEC);
        ev_io_init(&p->krelay_ends, ends_cb, ep, EV_READ);
        p->krelay_ends.data = p;
        if (ep >= 0)
            ev_io_start(p->loop, &p->krelay_ends);
    }
    /* Armed, a socket's own watcher stops reading (krelay_quiet): every segment the
     * kernel moves would wake this thread for nothing. This set reports only what
     * matters then: the end of stream (EPOLLRDHUP) or an error, once. */
    kr->quiet_ok = p->krelay_ends.fd >= 0;
    for (int i = 0; i < 2 && kr->quiet_ok; i++) {
        struct epoll_event e = {.events = EPOLLRDHUP | EPOLLONESHOT, .data.ptr = leg_of(c, i)};
        kr->quiet_ok = epoll_ctl(p->krelay_ends.fd, EPOLL_CTL_ADD, leg_of(c, i)->tp.fd, &e) == 0;
    }
    /* Both or neither: one left in the set goes when its descriptor is closed. */
}

static bool active(const struct krelay *kr)
{
    return kr && kr->slot[0] && kr->slot[1];
}

void krelay_after(struct conn *c)
{
    struct krelay *kr = c->krelay;

    if (kr && kr->waiting)
        insert(c);
    if (!active(kr = c->krelay))
        return;
    for (int i = 0; i < 2; i++) {
        struct leg *l = leg_of(c, i);
        if (!l->rd_eof && !leg_pending(l))
            sockmap_arm(kr->slot[i], l->bytes - kr->read0[i]);
    }
}

/* What the peer of leg i must be given in all: what user space read from leg i (and its
 * pending bytes at insertion) and what the kernel moved. */
static uint64_t expected(const struct krelay *kr, const struct leg *l, int i)
{
    return (uint64_t)(kr->base[i] + (int64_t)l->bytes) + sockmap_load(&kr->slot[i]->bytes);
}

bool krelay_quiet(const struct leg *l)
{
    const struct krelay *kr = leg_conn(l)->krelay;
    int i = l->backend;
    if (!active(kr) || !kr->quiet_ok || kr->ended[i])
        return false;
    uint64_t read = l->bytes - kr->read0[i], passed = sockmap_load(&kr->slot[i]->passed);
    /* Bytes passed to user space (not armed yet, or a redirect failed) must be read. */
    return passed == read && sockmap_load(&kr->slot[i]->armed_at) == read;
}

bool krelay_unwatched(const struct leg *l)
{
    const struct krelay *kr = leg_conn(l)->krelay;
    return active(kr) && kr->quiet_ok;
}

bool krelay_doomed(const struct conn *c)
{
    return c->krelay && c->krelay->doomed;
}

bool krelay_fin_ready(const struct leg *from)
{
    struct conn *c = leg_conn(from);
    struct krelay *kr = c->krelay;
    uint64_t acked, written;

    if (!active(kr))
        return true;
    int i = from->backend;
    if (!tcp_counts(leg_peer(from)->tp.fd, &acked, &written, NULL))
        return true; /* the peer socket is gone: nothing more can reach it */
    return written >= expected(kr, from, i);
}

void krelay_stop(struct conn *c)
{
    struct krelay *kr = c->krelay;

    if (!kr)
        return;
    bool was_active = active(kr);
    for (int i = 0; i < 2; i++) {
        if (!kr->slot[i])
            continue;
        leg_of(c, i)->bytes += sockmap_load(&kr->slot[i]->bytes);
        sockmap_remove(sm, kr->cookie[i], kr->slot[i]);
    }
    if (was_active) {
        struct conn_pool *p = c->pool;
        int64_t held = (int64_t)(kr->backlog[0] + kr->backlog[1]);
        p->krelay_backlog -= held;
        atomic_fetch_sub(&mx.krelay_backlog, held);
        if (kr->quiet_ok) /* out of the set before the descriptor can be reused */
            for (int i = 0; i < 2; i++)
                epoll_ctl(p->krelay_ends.fd, EPOLL_CTL_DEL, leg_of(c, i)->tp.fd, NULL);
        if (!--p->nkrelay) {
            ev_timer_stop(p->loop, &p->krelay_watch);
            ev_io_stop(p->loop, &p->krelay_ends);
            if (p->krelay_ends.fd >= 0)
                close(p->krelay_ends.fd);
        }
    }
    free(kr);
    c->krelay = NULL;
}

/* One connection's tick: activity for the idle timeout, backlog per direction, the
 * program's limit. False when it was closed. */
static bool watch_one(struct conn *c, ev_tstamp now)
{
    struct krelay *kr = c->krelay;
    uint32_t cap = c->snap->cfg->krelay_backlog;

    for (int i = 0; i < 2; i++) {
        struct leg *l = leg_of(c, i);
        struct sockmap_slot *s = kr->slot[i];
        uint64_t passed = sockmap_load(&s->passed), read = l->bytes - kr->read0[i];
        uint64_t moved = sockmap_load(&s->bytes) + passed, acked;
        if (__atomic_load_n(&s->over, __ATOMIC_ACQUIRE)) {
            DOOM(c,
                 "kernel backlog: the %s does not read (twice kernel_relay_backlog %u "
                 "waited for it): bytes dropped",
                 leg_name(leg_peer(l)), cap);
            return false;
        }
        if (passed != read && kr->quiet_ok)
            conn_wake(c); /* bytes were passed to user space: its watcher must read */
        if (moved == kr->seen[i] && !kr->backlog[i])
            continue; /* idle direction: nothing waits */
        if (moved != kr->seen[i])
            c->last_io = now;
        kr->seen[i] = moved;
        if (!tcp_counts(leg_peer(l)->tp.fd, &acked, NULL, NULL))
            continue;
        /* Moved by the kernel or read by us and not acknowledged, plus passed to us and
         * not read yet: both are kernel memory nothing else bounds. */
        uint64_t want = expected(kr, l, i);
        uint64_t backlog = (want > acked ? want - acked : 0) + (passed > read ? passed - read : 0);
        uint64_t progress = acked > kr->acked[i] ? acked - kr->acked[i] : 0;
        kr->acked[i] = acked;
        if (backlog > cap) {
            DOOM(c,
                 "kernel backlog: %llu bytes not acknowledged by the %s "
                 "(kernel_relay_backlog %u)",
                 (unsigned long long)backlog, leg_name(leg_peer(l)), cap);
            return false;
        }
        kr->backlog[i] = backlog;
        /* Room until the next tick: twice the cap, plus what the receiver took in the last
         * period (a fast reader is not cut off by a stale acknowledgement count). */
        __atomic_store_n(&s->limit, moved - backlog + 2ull * cap + progress, __ATOMIC_RELEASE);
    }
    return true;
}

/* The connection of this worker whose kernel backlog is largest, or NULL. */
static struct conn *worst_of(struct conn_pool *p, uint64_t *held)
{
    struct conn *worst = NULL;

    *held = 0;
    for (struct conn *c = p->conns; c; c = c->next) {
        struct krelay *kr = c->krelay;
        if (active(kr) && !kr->doomed && kr->backlog[0] + kr->backlog[1] > *held) {
            *held = kr->backlog[0] + kr->backlog[1];
            worst = c;
        }
    }
    return worst;
}

static void watch_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct conn_pool *p = t->data;
    struct conn *next, *worst;
    uint64_t held;
    int64_t total = 0;
    ev_tstamp now = ev_now(loop);
    (void)revents;

    for (struct conn *c = p->conns; c; c = next) {
        next = c->next;
        struct krelay *kr = c->krelay;
        if (!active(kr) || kr->doomed || !watch_one(c, now))
            continue;
        total += (int64_t)(kr->backlog[0] + kr->backlog[1]);
        /* An end of stream waits for the peer socket to take the kernel's bytes: look
         * again (relay.c passes it on once they are). */
        if ((c->client.rd_eof && !c->backend_leg.wr_shut) ||
            (c->backend_leg.rd_eof && !c->client.wr_shut))
            conn_wake(c);
    }
    int64_t all =
        atomic_fetch_add(&mx.krelay_backlog, total - p->krelay_backlog) + total - p->krelay_backlog;
    p->krelay_backlog = total;
    /* Over the budget of all workers: this worker closes its largest until the sum it
     * knows of is back under (the others do the same on their ticks). */
    while (all > 0 && (worst = worst_of(p, &held))) {
        uint32_t budget = worst->snap->cfg->krelay_budget;
        if (all <= (int64_t)budget)
            break;
        DOOM(worst,
             "kernel backlog: %llu bytes not acknowledged, the most of this worker, "
             "while all kernel-relayed connections hold %lld (kernel_relay_budget %u)",
             (unsigned long long)held, (long long)all, budget);
        all -= (int64_t)held;
    }
}
