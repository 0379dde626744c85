/* UDP on 443: the relay of one worker. A client datagram goes to its flow's upstream
 * socket for the datagram's side (TURN or media; in a QUIC flow, always the QUIC side);
 * a datagram from an upstream goes back to the client from the listening socket the flow
 * came in on. Flows are opened only by a STUN request that routes (udp_demux: a TURN
 * method, a Binding with or without USERNAME) or by a QUIC client Initial that routes
 * (class quic), end after their routes' idle timeout, and are logged at the end, one
 * line per side, like a TCP connection. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mux443/core/backend.h"
#include "mux443/core/fanout.h"
#include "mux443/core/route.h"
#include "mux443/core/udp_flow.h"
#include "mux443/core/udp_kernel.h"
#include "mux443/core/udp_relay.h"
#include "mux443/lib/log.h"
#include "mux443/lib/udp_demux.h"
#include "mux443/lib/uring.h"
#include "mux443/state/limits.h"
#include "mux443/lib/ice.h"
#include "mux443/state/ufrag.h"
#include "mux443/state/udp_metrics.h"

#define UDP_BATCH     32
#define UDP_DGRAM_MAX 4096 /* larger datagrams are dropped (MTU-sized media and STUN fit) */
#define UDP_SWEEP     1.0  /* seconds between idle sweeps */
#define UDP_ROUNDS    4    /* batches per readiness, so one socket cannot starve the rest */
/* A flow none of whose servers has answered yet ends after this (or the route's idle
 * timeout, when shorter): spoofed sources cannot hold slots for the full idle timeout. */
#define UDP_UNVERIFIED_IDLE_MS 30000u
/* io_uring receive buffers: one more byte than a datagram may have, so a longer one is
 * seen as such (cut short). As many as the CQEs of a few loop turns at full speed. */
#define UDP_RING_BUFS   1024
#define UDP_RING_BUFLEN (UDP_DGRAM_MAX + 1)

struct udp_relay {
    struct ev_loop *loop;
    unsigned worker;
    struct udp_ftab t;
    ev_timer sweep;
    uint32_t cursor;
    uint64_t next_id;
    uint32_t budget;
    bool transparent; /* udp_transparent */
    /* udp_io: with io_uring (ring != NULL), upstream sends are queued on the ring and
     * issued once per batch read from a listening socket, and every upstream socket has a
     * multishot receive whose datagrams ring_cb reaps; else each has its ev_io. */
    struct uring *ring;
    ev_io ring_io;
    struct mmsghdr msg[UDP_BATCH];
    struct iovec iov[UDP_BATCH];
    struct sockaddr_storage from[UDP_BATCH];
    uint8_t buf[UDP_BATCH][UDP_DGRAM_MAX];
    /* Replies to clients, gathered from every upstream that was readable in this loop
     * iteration and sent with one sendmmsg on the listening socket (flush_cb, before the
     * loop waits again; or when full, or for another listening socket). */
    ev_prepare flush;
    int out_lfd;
    unsigned nout;
    struct mmsghdr out_msg[UDP_BATCH];
    struct iovec out_iov[UDP_BATCH];
    struct sockaddr_storage out_to[UDP_BATCH];
    struct {
        struct udp_flow *f; /* counted if f is still flow `id` when sent */
        uint64_t id;
        int side;
    } out_of[UDP_BATCH];
    uint8_t out_buf[UDP_BATCH][UDP_DGRAM_MAX];
};

static uint64_t now_ms(const struct udp_relay *u)
{
    return (uint64_t)(ev_now(u->loop) * 1000.0);
}

static void drop(enum mxu_drop why)
{
    MX_INC(mxu.drops[why]);
}

/* An io_uring tag names a side of a flow: its slot (24 bits), the side (2), a datagram
 * length (13: a failed send's, to uncount it) and the low 23 bits of the flow's id (a
 * completion for a flow that ended, its slot reused, is recognised and ignored). */
#define TAG_ID_BITS 23
static uint64_t side_tag(const struct udp_relay *u, const struct udp_flow *f, int side, size_t len)
{
    return (f->id & ((UINT64_C(1) << TAG_ID_BITS) - 1)) << 39 | (uint64_t)len << 26 |
           (uint64_t)(f - u->t.flows) << 2 | (uint64_t)side;
}

/* The flow whose side the tag names, if that side is still open; else NULL. */
static struct udp_flow *tag_flow(struct udp_relay *u, uint64_t tag, int *side, size_t *len)
{
    uint64_t idx = (tag >> 2) & 0xffffff;
    struct udp_flow *f = idx < u->t.lim.max_flows ? &u->t.flows[idx] : NULL;

    *side = (int)(tag & 3);
    *len = (size_t)(tag >> 26) & 0x1fff;
    if (f == NULL || !f->used || *side >= UDP_UPS || f->up[*side].fd < 0 ||
        (f->id & ((UINT64_C(1) << TAG_ID_BITS) - 1)) != tag >> 39)
        return NULL;
    return f;
}

static uint32_t share(unsigned total, unsigned n)
{
    return total == 0 ? 0 : (uint32_t)((total + n - 1) / n);
}

static void limits_of(struct udp_limits *lim, const struct cfg *c, unsigned nworkers)
{
    lim->max_flows = share(c->udp_max_flows, nworkers);
    lim->per_prefix = share(c->udp_per_prefix, nworkers);
    lim->new_per_sec = share(c->udp_new_per_sec, nworkers);
}

/* The metrics class of a side. */
static enum mxu_class side_class(int side)
{
    return side == UDP_UP_MEDIA ? MXU_ICE_UDP : side == UDP_UP_TURN ? MXU_STUN : MXU_QUIC_UDP;
}

static void side_close(struct udp_relay *u, struct udp_flow *f, int side, const char *reason)
{
    struct udp_up *up = &f->up[side];
    const struct cfg_route *r = up->route;
    const struct cfg_listener *l = f->lst;
    struct snap *s = f->snap;
    char client[ADDR_TEXT_MAX], esc[2 * UFRAG_MAX + 8];

    if (up->fd < 0)
        return;
    if (log_get_level() >= LOG_LVL_INFO) {
        addr_format((const struct sockaddr *)&f->addr, client, sizeof(client));
        log_info("udp flow=%llu client=%s listener=%s class=%s ufrag=%s route=%s backend=%s "
                 "server=%s dgrams_in=%llu bytes_in=%llu dgrams_out=%llu bytes_out=%llu "
                 "dur=%.3f reason=\"%s\"",
                 (unsigned long long)f->id, client, l->name, mxu_class_name(side_class(side)),
                 side == UDP_UP_MEDIA && f->ufrag[0]
                     ? log_escape(esc, sizeof(esc), f->ufrag, strlen(f->ufrag))
                     : "-",
                 r->name, r->backend->name, r->backend->servers.v[up->server].text,
                 (unsigned long long)up->dgrams_in, (unsigned long long)up->bytes_in,
                 (unsigned long long)up->dgrams_out, (unsigned long long)up->bytes_out,
                 (double)(now_ms(u) - f->start_ms) / 1000.0, reason);
    }
    MX_ADD(snap_route_mx(s, r)->bytes_in, up->bytes_in);
    MX_ADD(snap_route_mx(s, r)->bytes_out, up->bytes_out);
    atomic_fetch_sub(&mxu.flows_open[side_class(side)], 1);
    ev_io_stop(u->loop, &up->io);
    if (u->ring != NULL) /* its receive holds the socket until the cancellation is issued */
        uring_cancel(u->ring, side_tag(u, f, side, 0));
    close(up->fd);
    up->fd = -1;
    ufrag_release(up->ufrag_held);
    up->ufrag_held = NULL;
}

static void fan_free(struct udp_relay *u, struct udp_flow *f);

static void flow_close(struct udp_relay *u, struct udp_flow *f, const char *reason)
{
    fan_free(u, f);
    udp_kernel_leave(f); /* the kernel's counts join the close lines */
    for (int side = 0; side < UDP_UPS; side++)
        side_close(u, f, side, reason);
    snap_unref(f->snap);
    udp_ftab_close(&u->t, f);
    atomic_fetch_sub(&mxu.table_flows, 1);
}

/* The server of route r for a datagram d of this side from client sa: its index in the
 * backend, or -1 (unroutable; *held gets a ufrag table entry the caller must keep). */
static int pick_server(const struct snap *s, const struct cfg_route *r, const struct udp_first *d,
                       const struct sockaddr *sa, struct ufrag_entry **held)
{
    const struct cfg_backend *b = r->backend;
    size_t idx;
    int pfx;

    *held = NULL;
    if (b->balance != BALANCE_UFRAG || d->ufrag_len == 0)
        return (int)backend_first(s, b, sa);
    pfx = route_ufrag_prefix(b, d->ufrag, d->ufrag_len);
    if (pfx >= 0)
        return pfx;
    *held = ufrag_acquire(b, d->ufrag, d->ufrag_len, &idx);
    return *held != NULL ? (int)idx : -1; /* a miss: the caller may fan out */
}

void udp_probe_of(const struct udp_first *d, int side, struct probe_out *p)
{
    memset(p, 0, sizeof(*p));
    p->cls = side == UDP_UP_MEDIA ? CLASS_ICE_TCP : side == UDP_UP_TURN ? CLASS_STUN : CLASS_QUIC;
    p->stun_type = d->stun_method;
    memcpy(p->ufrag, d->ufrag, d->ufrag_len);
    p->ufrag_len = d->ufrag_len;
}

const struct cfg_route *udp_route(const struct cfg *c, const struct cfg_listener *lst,
                                  const struct udp_first *d, int side)
{
    struct probe_out p;

    udp_probe_of(d, side, &p);
    return route_select(c, lst, &p, VIA_PLAIN);
}

static void up_read_cb(struct ev_loop *loop, ev_io *io, int revents);

/* Starts reading the open side `side` of f: a multishot receive on the ring, or (no
 * ring, !ring_ok, or no receive could be queued) its watcher. */
static void up_start(struct udp_relay *u, struct udp_flow *f, int side, bool ring_ok)
{
    struct udp_up *up = &f->up[side];

    ev_io_init(&up->io, up_read_cb, up->fd, EV_READ);
    up->io.data = f;
    if (u->ring == NULL || !ring_ok || !uring_recv(u->ring, up->fd, side_tag(u, f, side, 0)))
        ev_io_start(u->loop, &up->io);
}

static uint32_t route_idle_ms(const struct cfg_route *r)
{
    return (uint32_t)(r->udp_idle_timeout * 1000.0);
}

static uint32_t unverified_idle_ms(const struct cfg_route *r)
{
    return route_idle_ms(r) < UDP_UNVERIFIED_IDLE_MS ? route_idle_ms(r) : UDP_UNVERIFIED_IDLE_MS;
}

/* Counts a media or TURN side open on server idx of route r. */
static void side_count(struct snap *s, const struct cfg_route *r, int side, size_t idx)
{
    MX_INC(mxu.flows_total[side_class(side)]);
    MX_INC(mxu.flows_open[side_class(side)]);
    MX_INC(snap_route_mx(s, r)->conns);
    MX_INC(snap_server_mx(s, r->backend, idx)->connects);
}

/* A socket connected to server a for flow f: from mux443's own address, or with
 * udp_transparent from the client's address and port (IP_TRANSPARENT; SO_REUSEADDR, as
 * the client's other side and fan-out legs bind the same address to other servers).
 * -1 on failure (logged). */
static int up_socket(const struct udp_relay *u, const struct udp_flow *f, const struct cfg_addr *a)
{
    int one = 1, fd = socket(a->ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    bool v6 = a->ss.ss_family == AF_INET6;

    if (fd >= 0 && u->transparent &&
        (f->addr.ss_family != a->ss.ss_family ||
         setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
         setsockopt(fd, v6 ? SOL_IPV6 : SOL_IP, v6 ? IPV6_TRANSPARENT : IP_TRANSPARENT, &one,
                    sizeof(one)) < 0 ||
         bind(fd, (const struct sockaddr *)&f->addr, f->addr_len) < 0)) {
        log_warn("udp: cannot send to %s from the client's address (udp_transparent): %s", a->text,
                 f->addr.ss_family != a->ss.ss_family ? "other address family" : strerror(errno));
        close(fd);
        return -1;
    }
    if (fd >= 0 && connect(fd, (const struct sockaddr *)&a->ss, a->len) < 0) {
        close(fd);
        fd = -1;
    }
    if (fd < 0)
        log_warn("udp: cannot open a socket to %s: %s", a->text, strerror(errno));
    return fd;
}

/* ------------------------------------------------------------------ fan-out
 * An ICE check whose server ufrag no prefix and no table entry names goes to every
 * server of the pool (in service), each from a connected socket of its own ("leg");
 * the first leg whose server answers one of the relayed Binding requests with a Binding
 * success becomes the flow's media side, the ufrag is learnt (ufrag_learn), the others
 * are closed. Until then only Binding requests go up (to every leg, within the
 * unverified budget) and nothing goes to the client. Bounded like the TCP fan-out: at
 * most fanout_max in progress (UDP's own count), fanout_timeout, one per flow (so per
 * client address+port, itself bounded per prefix and per second by the table). */
#define FAN_REQS 4 /* Binding requests remembered per fan-out (Chromium's checks differ) */

struct udp_leg {
    ev_io io; /* first: io.data is the fan-out */
    int fd;   /* -1: refused or lost */
    uint32_t server;
};

struct udp_fan {
    struct udp_relay *u;
    struct udp_flow *f;
    const struct cfg_route *r;
    ev_timer timer;
    uint8_t req[FAN_REQS][STUN_HEADER]; /* headers of the requests relayed (cookie + tid) */
    unsigned nreq, alive, n, errors;
    uint64_t dgrams_in, bytes_in;
    bool keyed;      /* counted in fanout_per_client under key */
    uint8_t key[16]; /* the client's prefix (limits_client_key) */
    struct udp_leg leg[];
};

static atomic_uint udp_fans_active;

static void leg_close(struct udp_relay *u, struct udp_fan *fan, struct udp_leg *l)
{
    if (l->fd < 0)
        return;
    ev_io_stop(u->loop, &l->io);
    close(l->fd);
    l->fd = -1;
    fan->alive--;
}

static void fan_free(struct udp_relay *u, struct udp_flow *f)
{
    struct udp_fan *fan = f->fan;

    if (fan == NULL)
        return;
    for (unsigned i = 0; i < fan->n; i++)
        leg_close(u, fan, &fan->leg[i]);
    ev_timer_stop(u->loop, &fan->timer);
    atomic_fetch_sub(&udp_fans_active, 1);
    if (fan->keyed)
        limits_client_release(LIMITS_FANOUTS, fan->key);
    f->fan = NULL;
    free(fan);
}

/* No server took the ufrag: the flow ends unless its TURN side is open. */
static void fan_fail(struct udp_relay *u, struct udp_fan *fan, const char *what)
{
    struct udp_flow *f = fan->f;

    MX_INC(mx.fanout_failures);
    drop(MXU_UNROUTABLE);
    log_info("udp flow=%llu fan-out: no server of backend %s took ufrag '%s' (%s; %u answered "
             "with an error)",
             (unsigned long long)f->id, fan->r->backend->name, f->ufrag, what, fan->errors);
    fan_free(u, f);
    if (f->up[UDP_UP_TURN].fd < 0)
        flow_close(u, f, "unroutable");
}

/* Leg w's server answered with a Binding success: its socket becomes the media side,
 * and up_read_cb relays that answer (still queued: it was only peeked) to the client. */
static void fan_win(struct udp_relay *u, struct udp_fan *fan, struct udp_leg *w)
{
    struct udp_flow *f = fan->f;
    const struct cfg_route *r = fan->r;
    struct udp_up *up = &f->up[UDP_UP_MEDIA];
    struct snap *s = f->snap;

    ev_io_stop(u->loop, &w->io);
    memset(up, 0, sizeof(*up));
    up->fd = w->fd;
    w->fd = -1;
    fan->alive--;
    up->server = w->server;
    up->route = r;
    up->dgrams_in = fan->dgrams_in;
    up->bytes_in = fan->bytes_in;
    up->unverified = (uint32_t)fan->dgrams_in;
    up->ufrag_held = ufrag_learn(r->backend, f->ufrag, strlen(f->ufrag), w->server);
    side_count(s, r, UDP_UP_MEDIA, w->server);
    MX_INC(snap_server_mx(s, r->backend, w->server)->fanout_wins);
    log_debug("udp flow=%llu fan-out: %s owns ufrag '%s'", (unsigned long long)f->id,
              r->backend->servers.v[w->server].text, f->ufrag);
    fan_free(u, f);
    up_start(u, f, UDP_UP_MEDIA, true);
    if (u->ring == NULL)
        up_read_cb(u->loop, &up->io, EV_READ);
    /* else the multishot receive reads it */
}

/* What a leg's server sent: peeked, judged against the requests relayed; a datagram
 * that decides nothing is consumed and dropped (nothing reaches the client before a
 * winner). */
static void leg_read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct udp_leg *l = (struct udp_leg *)io;
    struct udp_fan *fan = io->data;
    struct udp_relay *u = fan->u;
    (void)loop;
    (void)revents;

    for (int i = 0; i < UDP_BATCH; i++) {
        ssize_t n = recv(l->fd, u->buf[0], UDP_DGRAM_MAX, MSG_DONTWAIT | MSG_PEEK);
        enum ice_verdict v = ICE_AGAIN;

        if (n < 0 && errno == EAGAIN)
            return;
        for (unsigned k = 0; n >= 0 && k < fan->nreq && k < FAN_REQS && v == ICE_AGAIN; k++)
            v = ice_judge_udp(fan->req[k], u->buf[0], (size_t)n);
        if (v == ICE_WIN) {
            fan_win(u, fan, l);
            return;
        }
        (void)recv(l->fd, u->buf[0], 1, MSG_DONTWAIT); /* consume it */
        if (n < 0 || v == ICE_LOSE) {                  /* ECONNREFUSED (ICMP), or an error answer */
            fan->errors += n >= 0;
            leg_close(u, fan, l);
            if (fan->alive == 0)
                fan_fail(u, fan, "every server refused or answered with an error");
            return;
        }
    }
}

static void fan_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct udp_fan *fan = w->data;
    (void)loop;
    (void)revents;
    fan_fail(fan->u, fan, "fanout_timeout passed");
}

/* A client datagram for the media side while its fan-out runs: Binding requests go to
 * every leg still in the running; anything else waits for a winner (dropped). */
static void fan_send(struct udp_relay *u, struct udp_fan *fan, const struct udp_first *d,
                     const uint8_t *p, size_t n)
{
    if (d->kind != UDP_STUN || d->stun_class != STUN_REQUEST || d->stun_method != STUN_M_BINDING) {
        drop(MXU_NOT_FIRST);
        return;
    }
    if (fan->dgrams_in >= u->budget) {
        drop(MXU_BUDGET);
        return;
    }
    memcpy(fan->req[fan->nreq++ % FAN_REQS], p, STUN_HEADER);
    for (unsigned i = 0; i < fan->n; i++)
        if (fan->leg[i].fd >= 0)
            (void)send(fan->leg[i].fd, p, n, 0);
    fan->dgrams_in++;
    fan->bytes_in += n;
    MX_INC(mxu.dgrams_in);
    MX_ADD(mxu.bytes_in, n);
}

/* A fan-out not started: counted by reason (ICE-TCP's metrics), logged at debug only (a
 * flood of spoofed checks must not flood the log; the counters say it). */
static bool fan_refuse(enum mx_fanout_refuse why, const char *what)
{
    MX_INC(mx.fanout_failures);
    MX_INC(mx.fanout_refused[why]);
    log_debug("udp: fan-out refused: %s", what);
    return false;
}

/* Starts a fan-out for the media side of f on route r with the first datagram d. */
static bool fan_start(struct udp_relay *u, struct udp_flow *f, const struct cfg_route *r,
                      const struct udp_first *d, const uint8_t *p, size_t n)
{
    struct snap *s = f->snap;
    const struct cfg_backend *b = r->backend;
    struct udp_fan *fan;

    const struct cfg *cfg = s->cfg;
    uint8_t key[16];
    bool keyed, log_it;

    if (b->balance != BALANCE_UFRAG || d->ufrag_len == 0 || d->stun_method != STUN_M_BINDING ||
        d->stun_class != STUN_REQUEST)
        return false;
    /* What a browser's check is, as for ICE-TCP: anything else would only cost every
     * server a datagram. */
    if (!d->cufrag_ok)
        return fan_refuse(MXF_BAD_USERNAME, "no USERNAME of two well-formed ufrags");
    if (!d->integrity)
        return fan_refuse(MXF_NO_INTEGRITY, "no MESSAGE-INTEGRITY");
    keyed = limits_client_key((const struct sockaddr *)&f->addr, cfg->client_prefix_v4,
                              cfg->client_prefix_v6, key, NULL, 0);
    switch (fanout_admit(cfg, key, keyed, &log_it)) {
    case MXF_PER_CLIENT:
        return fan_refuse(MXF_PER_CLIENT, "fanout_per_client fan-outs in progress");
    case MXF_RATE:
        return fan_refuse(MXF_RATE, "fanout_rate reached");
    default:
        break;
    }
    if (atomic_fetch_add(&udp_fans_active, 1) >= cfg->fanout_max) {
        atomic_fetch_sub(&udp_fans_active, 1);
        if (keyed)
            limits_client_release(LIMITS_FANOUTS, key);
        return fan_refuse(MXF_FANOUT_MAX, "fanout_max fan-outs already in progress");
    }
    fan = calloc(1, sizeof(*fan) + b->servers.n * sizeof(fan->leg[0]));
    if (fan == NULL) {
        atomic_fetch_sub(&udp_fans_active, 1);
        if (keyed)
            limits_client_release(LIMITS_FANOUTS, key);
        return false;
    }
    fan->keyed = keyed;
    memcpy(fan->key, key, sizeof(key));
    fan->u = u;
    fan->f = f;
    fan->r = r;
    f->fan = fan;
    memcpy(f->ufrag, d->ufrag, d->ufrag_len);
    f->ufrag[d->ufrag_len] = '\0';
    MX_INC(mx.fanouts);
    for (size_t i = 0; i < b->servers.n; i++) {
        const struct cfg_addr *a = &b->servers.v[i];
        struct udp_leg *l = &fan->leg[fan->n];
        struct mx_server *sm = snap_server_mx(s, b, i);

        if (atomic_load(&sm->down))
            continue;
        if ((l->fd = up_socket(u, f, a)) < 0) {
            MX_INC(sm->connect_failures);
            continue;
        }
        l->server = (uint32_t)i;
        ev_io_init(&l->io, leg_read_cb, l->fd, EV_READ);
        l->io.data = fan;
        ev_io_start(u->loop, &l->io);
        fan->n++;
        fan->alive++;
    }
    ev_timer_init(&fan->timer, fan_timer_cb, s->cfg->fanout_timeout, 0);
    fan->timer.data = fan;
    if (fan->alive == 0) {
        fan_free(u, f);
        MX_INC(mx.fanout_failures);
        return false;
    }
    ev_timer_start(u->loop, &fan->timer);
    if (f->idle_ms == 0)
        f->idle_ms = unverified_idle_ms(r);
    fan_send(u, fan, d, p, n);
    return true;
}

enum side_opened { SIDE_FAILED, SIDE_OPEN, SIDE_FANNING };

/* Opens side `side` of f for the datagram d (p, n): route, server, connected socket; or
 * a fan-out for an ICE check of an unknown ufrag, which has relayed d itself. */
static enum side_opened side_open(struct udp_relay *u, struct udp_flow *f, int side,
                                  const struct udp_first *d, const uint8_t *p, size_t n)
{
    struct snap *s = f->snap;
    const struct cfg_route *r = udp_route(s->cfg, f->lst, d, side);
    struct ufrag_entry *held;
    struct udp_up *up = &f->up[side];
    const struct cfg_addr *a;
    int idx, fd;

    if (r == NULL) {
        drop(MXU_UNROUTABLE);
        return SIDE_FAILED;
    }
    if ((idx = pick_server(s, r, d, (const struct sockaddr *)&f->addr, &held)) < 0) {
        if (side == UDP_UP_MEDIA && fan_start(u, f, r, d, p, n))
            return SIDE_FANNING;
        drop(MXU_UNROUTABLE);
        return SIDE_FAILED;
    }
    a = &r->backend->servers.v[idx];
    if ((fd = up_socket(u, f, a)) < 0) {
        ufrag_release(held);
        drop(MXU_UPSTREAM);
        return SIDE_FAILED;
    }
    memset(up, 0, sizeof(*up));
    up->fd = fd;
    up->server = (uint32_t)idx;
    up->route = r;
    up->ufrag_held = held;
    up_start(u, f, side, true);
    if (side == UDP_UP_MEDIA) {
        memcpy(f->ufrag, d->ufrag, d->ufrag_len);
        f->ufrag[d->ufrag_len] = '\0';
    }
    if (f->idle_ms == 0)
        f->idle_ms = unverified_idle_ms(r);
    side_count(s, r, side, (size_t)idx);
    return SIDE_OPEN;
}

static const enum mxu_drop refuse_drop[UDPR_COUNT] = {[UDPR_FULL] = MXU_TABLE_FULL,
                                                      [UDPR_PREFIX] = MXU_PER_PREFIX,
                                                      [UDPR_RATE] = MXU_RATE,
                                                      [UDPR_FAMILY] = MXU_MALFORMED};

/* The side a datagram d of flow f (NULL: none yet) goes to, or -1 after counting the drop. */
static int side_of(struct udp_flow *f, const struct udp_first *d)
{
    int side;

    switch (d->side) {
    case UDP_SIDE_TURN:
        /* A Binding indication is an ICE keepalive (RFC 8445 §11) once media flows. */
        if (f != NULL && d->stun_method == STUN_M_BINDING && d->stun_class == STUN_INDICATION &&
            f->up[UDP_UP_MEDIA].fd >= 0)
            return UDP_UP_MEDIA;
        return UDP_UP_TURN;
    case UDP_SIDE_MEDIA:
        return UDP_UP_MEDIA;
    case UDP_SIDE_QUIC: /* a client Initial: opens a QUIC flow, never a side of another */
        if (f == NULL)
            return UDP_UP_QUIC;
        drop(MXU_QUIC);
        return -1;
    case UDP_SIDE_REPLY:
        /* A response to a request a backend sent the client: by transaction id, else the
         * only side open. */
        if (f != NULL && (side = udp_flow_tid_side(f, d->tid)) >= 0)
            return side;
        if (f != NULL && (f->up[UDP_UP_MEDIA].fd >= 0) != (f->up[UDP_UP_TURN].fd >= 0))
            return f->up[UDP_UP_MEDIA].fd >= 0 ? UDP_UP_MEDIA : UDP_UP_TURN;
        drop(MXU_NOT_FIRST);
        return -1;
    default:
        if (log_debug_enabled())
            log_debug("udp: dropped a %s datagram: %s", udp_kind_name(d->kind),
                      d->why ? d->why : "-");
        drop(d->kind == UDP_OTHER ? MXU_MALFORMED : d->kind == UDP_QUIC ? MXU_QUIC : MXU_NOT_FIRST);
        return -1;
    }
}

/* Only a STUN request or indication can open a flow or one of its sides; a QUIC client
 * Initial only a flow (side_of refuses it in a flow). */
static bool may_open(const struct udp_first *d)
{
    return (d->kind == UDP_STUN && d->side != UDP_SIDE_REPLY) || d->side == UDP_SIDE_QUIC;
}

static void client_datagram(struct udp_relay *u, struct snap *s, const struct cfg_listener *lst,
                            int lfd, const struct sockaddr *sa, socklen_t salen, const uint8_t *p,
                            size_t n)
{
    struct udp_flow *f = udp_ftab_find(&u->t, sa);
    struct udp_first d;
    struct udp_up *up;
    enum udp_refuse why;
    enum side_opened opened = SIDE_OPEN;
    int side;

    /* A QUIC flow is one conversation: short headers (any first byte, RFC 9000 §17.3)
     * and later long headers alike go to its backend, unclassified. */
    if (f != NULL && f->kind == UDP_QUIC) {
        memset(&d, 0, sizeof(d));
        side = UDP_UP_QUIC;
    } else {
        udp_demux(p, n, &d);
        if ((side = side_of(f, &d)) < 0)
            return;
    }
    if (f == NULL) {
        if (!may_open(&d)) {
            drop(MXU_NOT_FIRST);
            return;
        }
        /* Routable before it takes a slot: a datagram nobody serves costs no flow. */
        if (udp_route(s->cfg, lst, &d, side) == NULL) {
            drop(MXU_UNROUTABLE);
            return;
        }
        if ((why = udp_ftab_open(&u->t, sa, salen, now_ms(u), &f)) != UDPR_OK) {
            drop(refuse_drop[why]);
            return;
        }
        f->lfd = lfd;
        f->owner = u;
        f->snap = snap_ref(s);
        f->lst = lst;
        f->kind = (uint8_t)d.kind;
        f->id = ((uint64_t)u->worker << 48) | ++u->next_id;
        atomic_fetch_add(&mxu.table_flows, 1);
        if ((opened = side_open(u, f, side, &d, p, n)) == SIDE_FAILED) {
            flow_close(u, f, "unroutable");
            return;
        }
    } else if (f->up[side].fd < 0 && side == UDP_UP_MEDIA && f->fan != NULL) {
        fan_send(u, f->fan, &d, p, n);
        opened = SIDE_FANNING;
    } else if (f->up[side].fd < 0) {
        if (!may_open(&d)) {
            drop(MXU_NOT_FIRST);
            return;
        }
        if ((opened = side_open(u, f, side, &d, p, n)) == SIDE_FAILED)
            return;
    }
    if (opened == SIDE_FANNING) { /* fan_send relayed it (or dropped it) */
        f->last_ms = now_ms(u);
        return;
    }
    up = &f->up[side];
    if (!udp_up_admit(up, u->budget)) {
        drop(MXU_BUDGET);
        return;
    }
    /* With io_uring, a send that fails is uncounted when its completion says so. */
    if (u->ring != NULL ? !uring_send(u->ring, up->fd, p, n, side_tag(u, f, side, n))
                        : send(up->fd, p, n, 0) < 0) {
        drop(MXU_UPSTREAM);
        return;
    }
    f->last_ms = now_ms(u);
    up->dgrams_in++;
    up->bytes_in += n;
    MX_INC(mxu.dgrams_in);
    MX_ADD(mxu.bytes_in, n);
}

void udp_relay_read(struct udp_relay *u, struct snap *s, const struct cfg_listener *lst, int lfd)
{
    for (int round = 0; round < UDP_ROUNDS; round++) {
        int n;

        for (int i = 0; i < UDP_BATCH; i++) {
            u->iov[i] = (struct iovec){u->buf[i], UDP_DGRAM_MAX};
            u->msg[i].msg_hdr = (struct msghdr){.msg_name = &u->from[i],
                                                .msg_namelen = sizeof(u->from[i]),
                                                .msg_iov = &u->iov[i],
                                                .msg_iovlen = 1};
        }
        n = recvmmsg(lfd, u->msg, UDP_BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0)
            return;
        for (int i = 0; i < n; i++) {
            if (u->msg[i].msg_hdr.msg_flags & MSG_TRUNC) {
                drop(MXU_TOO_BIG);
                continue;
            }
            client_datagram(u, s, lst, lfd, (const struct sockaddr *)&u->from[i],
                            u->msg[i].msg_hdr.msg_namelen, u->buf[i], u->msg[i].msg_len);
        }
        if (u->ring != NULL) /* the sends queued read u->buf: issued before it is reused */
            uring_submit(u->ring);
        if (n < UDP_BATCH)
            return;
    }
}

/* A STUN request from a backend to the client (ICE-lite servers check the browser's
 * candidate too): remember its transaction id, so the answer goes back to this side. */
static void note_backend_request(struct udp_flow *f, int side, const uint8_t *p, size_t n)
{
    struct udp_first d;

    if (n < STUN_HEADER || p[0] > 3)
        return;
    udp_demux(p, n, &d);
    if (d.kind == UDP_STUN && d.stun_class == STUN_REQUEST)
        udp_flow_note_tid(f, (enum udp_up_side)side, d.tid);
}

/* Sends the gathered replies; each one the kernel took is counted on its flow's side
 * (unless the flow ended meanwhile: then only in the totals). */
static void flush_out(struct udp_relay *u)
{
    int sent = u->nout > 0 ? sendmmsg(u->out_lfd, u->out_msg, u->nout, MSG_DONTWAIT) : 0;

    for (int i = 0; i < sent; i++) {
        struct udp_flow *f = u->out_of[i].f;
        size_t len = u->out_iov[i].iov_len;

        if (f->used && f->id == u->out_of[i].id) {
            f->up[u->out_of[i].side].dgrams_out++;
            f->up[u->out_of[i].side].bytes_out += len;
        }
        MX_INC(mxu.dgrams_out);
        MX_ADD(mxu.bytes_out, len);
    }
    u->nout = 0;
}

static void ring_event(void *arg, const struct uring_event *ev);

/* Before the loop waits: what the ring completed joins the batch, the batch leaves, and
 * what was queued on the ring meanwhile (rearmed receives, cancellations) is issued. */
static void flush_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    struct udp_relay *u = w->data;
    (void)loop;
    (void)revents;

    if (u->ring != NULL)
        uring_reap(u->ring, ring_event, u);
    flush_out(u);
    if (u->ring != NULL)
        uring_submit(u->ring);
}

/* Appends the datagram of len bytes in u->out_buf[u->nout], from side `side` of f, to
 * the batch for f's client. */
static void out_add(struct udp_relay *u, struct udp_flow *f, int side, size_t len)
{
    unsigned k = u->nout;

    if (side != UDP_UP_QUIC)
        note_backend_request(f, side, u->out_buf[k], len);
    memcpy(&u->out_to[k], &f->addr, f->addr_len);
    u->out_iov[k] = (struct iovec){u->out_buf[k], len};
    u->out_msg[k].msg_hdr = (struct msghdr){.msg_name = &u->out_to[k],
                                            .msg_namelen = f->addr_len,
                                            .msg_iov = &u->out_iov[k],
                                            .msg_iovlen = 1};
    u->out_of[k].f = f;
    u->out_of[k].id = f->id;
    u->out_of[k].side = side;
    u->nout++;
}

/* Room in the batch for a datagram to f's client: the batch leaves first when full or
 * gathered for another listening socket. */
static void out_room(struct udp_relay *u, const struct udp_flow *f)
{
    if (u->nout > 0 && (u->out_lfd != f->lfd || u->nout == UDP_BATCH))
        flush_out(u);
    u->out_lfd = f->lfd;
}

/* Side up of f has answered. */
static void up_answered(struct udp_relay *u, struct udp_flow *f, struct udp_up *up)
{
    if (!up->verified) { /* the server answered: the flow gets its route's idle timeout */
        up->verified = true;
        if (route_idle_ms(up->route) > f->idle_ms)
            f->idle_ms = route_idle_ms(up->route);
        /* relay = kernel: from now on the kernel may move its datagrams. */
        udp_kernel_enter(f, (int)(up - f->up),
                         u->worker * u->t.lim.max_flows + (uint32_t)(f - u->t.flows),
                         u->transparent);
    }
    f->last_ms = now_ms(u);
}

/* Datagrams from a backend: each goes to the client, one for one (mux443 never sends a
 * client more than its backend sent), in the batch flush_out sends. */
static void up_read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct udp_up *up = (struct udp_up *)io;
    struct udp_flow *f = io->data;
    struct udp_relay *u = f->owner;
    int side = (int)(up - f->up);
    unsigned room, end;
    int n;
    (void)loop;
    (void)revents;

    out_room(u, f);
    room = UDP_BATCH - u->nout;
    for (unsigned i = u->nout; i < UDP_BATCH; i++) {
        u->out_iov[i] = (struct iovec){u->out_buf[i], UDP_DGRAM_MAX};
        u->out_msg[i].msg_hdr = (struct msghdr){.msg_iov = &u->out_iov[i], .msg_iovlen = 1};
    }
    n = recvmmsg(up->fd, u->out_msg + u->nout, room, MSG_DONTWAIT, NULL);
    if (n <= 0) /* ECONNREFUSED: the server's port is closed (ICMP); the flow idles out */
        return;
    /* Appended to the batch: truncated datagrams are left out. */
    end = u->nout + (unsigned)n;
    for (unsigned i = u->nout; i < end; i++) {
        size_t len = u->out_msg[i].msg_len;

        if (u->out_msg[i].msg_hdr.msg_flags & MSG_TRUNC)
            continue;
        if (u->nout != i)
            memcpy(u->out_buf[u->nout], u->out_buf[i], len);
        out_add(u, f, side, len);
    }
    up_answered(u, f, up);
}

/* A completion on the ring: a datagram from a backend (as up_read_cb, truncated ones
 * left out), a receive that ended (rearmed while its side is open: it ends when the
 * ring ran out of buffers, or on an error such as ECONNREFUSED), or a send that failed
 * (counted as a drop, no longer as relayed). */
static void ring_event(void *arg, const struct uring_event *ev)
{
    struct udp_relay *u = arg;
    size_t len;
    int side;
    struct udp_flow *f = tag_flow(u, ev->tag, &side, &len);

    if (!ev->recv) {
        drop(MXU_UPSTREAM);
        if (f != NULL) {
            f->up[side].dgrams_in--;
            f->up[side].bytes_in -= len;
        }
        atomic_fetch_sub_explicit(&mxu.dgrams_in, 1, memory_order_relaxed);
        atomic_fetch_sub_explicit(&mxu.bytes_in, len, memory_order_relaxed);
        return;
    }
    if (f == NULL) /* its side closed: the receive was cancelled */
        return;
    if (ev->data != NULL && ev->res > 0 && ev->res <= UDP_DGRAM_MAX) {
        out_room(u, f);
        memcpy(u->out_buf[u->nout], ev->data, (size_t)ev->res);
        out_add(u, f, side, (size_t)ev->res);
        up_answered(u, f, &f->up[side]);
    }
    /* Rearmed on the ring after the usual ends; after an unexpected error, read with
     * the side's watcher instead (a receive failing at once must not spin). */
    if (!ev->more)
        up_start(u, f, side, ev->res >= 0 || ev->res == -ENOBUFS || ev->res == -ECONNREFUSED);
}

static void ring_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct udp_relay *u = w->data;
    (void)loop;
    (void)revents;
    uring_reap(u->ring, ring_event, u);
}

static void sweep_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct udp_relay *u = w->data;
    struct udp_flow *v[64];
    size_t n;
    (void)loop;
    (void)revents;

    /* What the kernel moved counts as activity, and keeps its entries valid. */
    if (atomic_load_explicit(&mxu.kernel_sides, memory_order_relaxed) > 0)
        for (uint32_t i = 0; i < u->t.lim.max_flows; i++)
            if (u->t.flows[i].used && udp_kernel_has(&u->t.flows[i]))
                udp_kernel_sweep(&u->t.flows[i], now_ms(u));
    do {
        n = udp_ftab_expired(&u->t, now_ms(u), &u->cursor, u->t.lim.max_flows, v, 64);
        for (size_t i = 0; i < n; i++)
            flow_close(u, v[i], "idle timeout");
    } while (n == 64);
}

/* udp_io: the ring, when wanted and the kernel allows it. Said once per process (every
 * worker decides alike). */
static void ring_open(struct udp_relay *u, int mode)
{
    static atomic_flag said = ATOMIC_FLAG_INIT;
    char why[160];

    if (mode == UDP_IO_EPOLL)
        return;
    if ((u->ring = uring_new(UDP_RING_BUFS, UDP_RING_BUFLEN, why, sizeof(why))) == NULL) {
        if (atomic_flag_test_and_set(&said))
            return;
        if (mode == UDP_IO_URING)
            log_warn("udp: io_uring unavailable (%s): relaying with epoll", why);
        else
            log_info("udp: io_uring unavailable (%s): relaying with epoll", why);
        return;
    }
    if (!atomic_flag_test_and_set(&said))
        log_info("udp: relaying with io_uring");
    ev_io_init(&u->ring_io, ring_cb, uring_fd(u->ring), EV_READ);
    u->ring_io.data = u;
    ev_io_start(u->loop, &u->ring_io);
}

struct udp_relay *udp_relay_new(struct ev_loop *loop, unsigned worker, const struct cfg *c,
                                unsigned nworkers)
{
    struct udp_relay *u = calloc(1, sizeof(*u));
    struct udp_limits lim;

    limits_of(&lim, c, nworkers);
    if (u == NULL || udp_ftab_init(&u->t, &lim) < 0) {
        log_error("worker %u: no memory for %u UDP flows", worker, lim.max_flows);
        free(u);
        return NULL;
    }
    u->loop = loop;
    u->worker = worker;
    u->budget = c->udp_budget;
    u->transparent = c->udp_transparent;
    MX_ADD(mxu.table_slots, lim.max_flows);
    ev_timer_init(&u->sweep, sweep_cb, UDP_SWEEP, UDP_SWEEP);
    u->sweep.data = u;
    ev_timer_start(loop, &u->sweep);
    ev_prepare_init(&u->flush, flush_cb);
    u->flush.data = u;
    ev_prepare_start(loop, &u->flush);
    ring_open(u, c->udp_io);
    return u;
}

void udp_relay_kernel_init(const struct cfg *c, unsigned nworkers)
{
    struct udp_limits lim;

    limits_of(&lim, c, nworkers);
    udp_kernel_init(c, lim.max_flows * nworkers);
}

void udp_relay_limits(struct udp_relay *u, const struct cfg *c, unsigned nworkers)
{
    struct udp_limits lim;

    if (u == NULL)
        return;
    limits_of(&lim, c, nworkers);
    udp_ftab_set_limits(&u->t, &lim);
    u->budget = c->udp_budget;
    u->transparent = c->udp_transparent;
}

static void close_where(struct udp_relay *u, int lfd, const char *reason)
{
    for (uint32_t i = 0; i < u->t.lim.max_flows; i++) {
        struct udp_flow *f = &u->t.flows[i];

        if (f->used && (lfd < 0 || f->lfd == lfd))
            flow_close(u, f, reason);
    }
}

void udp_relay_forget(struct udp_relay *u, int lfd)
{
    if (u == NULL)
        return;
    flush_out(u); /* replies gathered for lfd leave before it closes */
    close_where(u, lfd, "listener removed");
}

void udp_relay_free(struct udp_relay *u, const char *reason)
{
    if (u == NULL)
        return;
    flush_out(u);
    close_where(u, -1, reason);
    ev_timer_stop(u->loop, &u->sweep);
    ev_prepare_stop(u->loop, &u->flush);
    if (u->ring != NULL) {
        ev_io_stop(u->loop, &u->ring_io);
        uring_free(u->ring);
    }
    atomic_fetch_sub(&mxu.table_slots, u->t.lim.max_flows);
    udp_ftab_free(&u->t);
    free(u);
}
