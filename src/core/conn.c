/* A connection's life: admission, the driver that moves it from phase to phase, routing
 * (where detection's verdict picks a route, TLS termination, a server or a fan-out),
 * connecting with failover, and the one teardown. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>

#include "mux443/core/backend.h"
#include "mux443/core/conn.h"
#include "mux443/core/connect.h"
#include "mux443/core/detect.h"
#include "mux443/core/fanout.h"
#include "mux443/core/krelay.h"
#include "mux443/core/relay.h"
#include "mux443/core/route.h"
#include "mux443/lib/ice.h"
#include "mux443/lib/log.h"
#include "mux443/state/limits.h"
#include "mux443/state/metrics.h"
#include "mux443/state/ufrag.h"
#include "mux443/tls/tls_conn.h"

_Static_assert((int)TP_WANT_READ == (int)EV_READ && (int)TP_WANT_WRITE == (int)EV_WRITE,
               "transports speak libev's event bits");

static void conn_timer_cb(struct ev_loop *loop, ev_timer *t, int revents);
static bool conn_run(struct conn *c, struct leg *l, int revents);

static void leg_init(struct leg *l, bool backend, int fd)
{
    transport_init(&l->tp, fd);
    l->pipe[0] = l->pipe[1] = -1;
    l->backend = backend;
}

/* ---- the pool: one edge-triggered set for its sockets, one run queue ---------------- */

/* Events taken from the set per epoll_wait, and how many times one pass over the run
 * queue serves each connection at most before the loop looks at its other watchers (a
 * leg that stays ready, bulk at full speed, must not hold the worker). */
#define EVENTS_AT_ONCE 128
#define RUN_ROUNDS     8

static struct conn *conn_of(struct conn_link *k)
{
    return (struct conn *)(void *)((char *)k - offsetof(struct conn, queued));
}

static void link_out(struct conn_link *k)
{
    k->prev->next = k->next;
    k->next->prev = k->prev;
    k->prev = k->next = NULL;
}

/* Runs a queued connection: for conn_wake, then for each leg ready for what it waits for.
 * Edge-triggered, nothing else would say so: a leg read only in part, or one that became
 * wanted after its event (a peer that drained). */
static void conn_serve(struct conn *c)
{
    struct leg *legs[2] = {&c->client, &c->backend_leg};

    if (c->woken) {
        c->woken = false;
        if (!conn_run(c, &c->backend_leg, EV_CUSTOM))
            return;
    }
    for (int i = 0; i < 2; i++) {
        int ev = legs[i]->want & (int)legs[i]->tp.ready;
        if (ev && !conn_run(c, legs[i], ev))
            return;
    }
}

static void pool_run(struct conn_pool *p)
{
    struct conn_link round;

    if (p->running)
        return;
    p->running = true;
    for (int r = 0; r < RUN_ROUNDS && p->runq.next != &p->runq; r++) {
        /* This round serves what is queued now; what it queues waits for the next. */
        round.next = p->runq.next;
        round.prev = p->runq.prev;
        round.next->prev = round.prev->next = &round;
        p->runq.next = p->runq.prev = &p->runq;
        while (round.next != &round) {
            struct conn *c = conn_of(round.next);
            link_out(&c->queued);
            conn_serve(c); /* may close c, or others of the round: they leave it */
        }
    }
    p->running = false;
    if (p->runq.next != &p->runq)
        ev_idle_start(p->loop, &p->run_more);
    else
        ev_idle_stop(p->loop, &p->run_more);
}

static void run_prep_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop;
    (void)revents;
    pool_run(w->data);
}

static void run_more_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
    /* Only keeps the loop from waiting: the prepare watcher runs the queue. */
    (void)loop;
    (void)w;
    (void)revents;
}

/* The set's events: what each leg is ready for now. Nothing runs while they are read (a
 * connection closed by one event would leave the next ones pointing at freed legs): the
 * legs ready for what they wait for are queued, then the queue runs. A closed socket
 * leaves the set with its descriptor, so no event names a connection closed before. */
static void ready_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct epoll_event evs[EVENTS_AT_ONCE];
    int n;
    (void)loop;
    (void)revents;

    do {
        n = epoll_wait(w->fd, evs, EVENTS_AT_ONCE, 0);
        for (int i = 0; i < n; i++) {
            struct leg *l = evs[i].data.ptr;
            uint32_t e = evs[i].events;
            if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
                l->tp.ready |= TP_WANT_READ;
            if (e & (EPOLLOUT | EPOLLHUP | EPOLLERR))
                l->tp.ready |= TP_WANT_WRITE;
            if (e & EPOLLRDHUP)
                l->tp.rdhup = true;
            if (e & EPOLLERR)
                l->tp.error = true;
            if (l->want & (int)l->tp.ready)
                conn_queue(leg_conn(l));
        }
    } while (n == EVENTS_AT_ONCE);
    pool_run(w->data); /* now rather than before the next wait: no later */
}

bool conn_pool_init(struct conn_pool *p)
{
    int fd = epoll_create1(EPOLL_CLOEXEC);
    if (fd < 0)
        return false;
    ev_io_init(&p->ready, ready_cb, fd, EV_READ);
    p->ready.data = p;
    ev_io_start(p->loop, &p->ready);
    ev_prepare_init(&p->run_prep, run_prep_cb);
    p->run_prep.data = p;
    ev_prepare_start(p->loop, &p->run_prep);
    ev_unref(p->loop); /* it alone does not keep the loop running */
    ev_idle_init(&p->run_more, run_more_cb);
    p->run_more.data = p;
    p->runq.prev = p->runq.next = &p->runq;
    p->running = false;
    return true;
}

void conn_pool_fini(struct conn_pool *p)
{
    ev_ref(p->loop);
    ev_prepare_stop(p->loop, &p->run_prep);
    ev_idle_stop(p->loop, &p->run_more);
    ev_io_stop(p->loop, &p->ready);
    close(p->ready.fd);
}

/* Logs a refusal at most once per second per limit: a flood must not flood the log
 * (per-client refusals are limited per address instead, by limits.c). */
static void refuse_log(enum mx_refuse why, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void refuse_log(enum mx_refuse why, const char *fmt, ...)
{
    static _Atomic long last[MXR_COUNT];
    char msg[256];
    va_list ap;
    long now = (long)time(NULL);

    MX_INC(mx.refused[why]);
    if (atomic_exchange(&last[why], now) == now)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_warnx("%s", msg);
}

/* Connection ids: one sequence for the process, so that they follow acceptance. */
static atomic_ullong next_conn_id;

static bool proxy_sender_trusted(const struct cfg_listener *lst, const struct sockaddr *peer)
{
    for (size_t i = 0; i < lst->proxy_from.n; i++)
        if (addr_cidr_match(&lst->proxy_from.v[i], peer))
            return true;
    return false;
}

void conn_accept(struct conn_pool *pool, struct snap *s, const struct cfg_listener *lst, int fd,
                 const struct sockaddr *peer, socklen_t peerlen)
{
    const struct cfg *cfg = s->cfg;
    struct mx_listener *lm = snap_listener_mx(s, lst);
    char text[ADDR_TEXT_MAX];

    MX_INC(mx.accepted);
    if (!limits_admit(&mx.open_all, cfg->max_connections)) {
        refuse_log(MXR_MAX_CONNECTIONS, "max_connections (%u) reached: refusing new connections",
                   cfg->max_connections);
        MX_INC(mx.conns_outcome[MXO_REFUSED]);
        close(fd);
        return;
    }
    if (!limits_admit(&lm->open, lst->max_connections)) {
        limits_leave(&mx.open_all);
        refuse_log(MXR_LISTENER_MAX,
                   "listener %s: max_connections (%u) reached: refusing new connections", lst->name,
                   lst->max_connections);
        MX_INC(mx.conns_outcome[MXO_REFUSED]);
        close(fd);
        return;
    }
    /* Unrecognised clients already hold the whole preread budget: a new one could not
     * even be read. */
    if (limits_preread_held() + DETECT_FIRST_BLOCK > cfg->preread_budget) {
        refuse_log(MXR_PREREAD_BUDGET,
                   "preread_budget (%u bytes) spent by clients still being recognised: "
                   "refusing new connections",
                   cfg->preread_budget);
        goto refused;
    }
    /* Only the load balancers in proxy_from may claim to speak for a client: the others
     * are refused before a byte is read. */
    if (lst->proxy_in && lst->proxy_from.n && !proxy_sender_trusted(lst, peer)) {
        addr_format(peer, text, sizeof(text));
        refuse_log(MXR_PROXY_UNTRUSTED,
                   "listener %s: %s is not in proxy_from: refusing its connections", lst->name,
                   text);
        goto refused;
    }
    /* Without a PROXY header the client's address is known now: refuse before
     * anything is allocated (and logged per connection). */
    uint8_t key[16];
    bool held = false;
    struct conn *c = NULL;
    if (!lst->proxy_in && !conn_admit_client(cfg, peer, key, &held))
        goto refused;
    if (!(c = calloc(1, sizeof(*c)))) {
        if (held)
            limits_client_release(LIMITS_CONNS, key);
        log_warnx("accept: out of memory, connection dropped");
        goto refused;
    }
    c->limit_held = held;
    c->id = atomic_fetch_add(&next_conn_id, 1) + 1; /* in order of acceptance, all workers */
    c->pool = pool;
    c->snap = snap_ref(s);
    c->lst = lst;
    c->started = c->last_io = ev_now(pool->loop);
    c->cls = CLASS_NONE;
    addr_ip_set(&c->peer_addr, peer, peerlen);
    leg_init(&c->client, false, fd);
    leg_init(&c->backend_leg, true, -1);
    c->client.tp.tcp = addr_family_ip(peer->sa_family);
    ev_init(&c->timer, conn_timer_cb);
    c->timer.data = c;
    c->next = pool->conns;
    if (pool->conns)
        pool->conns->prev = c;
    pool->conns = c;
    pool->nconns++;

    c->phase = lst->proxy_in ? CONN_PROXY : CONN_DETECT;
    conn_deadline(c, lst->peek_timeout);
    /* The first flight is usually there already: read it now. The socket is registered
     * after (conn_update_io): the registration itself reports what is left to read. */
    conn_run(c, &c->client, EV_READ);
    return;
refused:
    MX_INC(mx.conns_outcome[MXO_REFUSED]);
    limits_leave(&lm->open);
    limits_leave(&mx.open_all);
    close(fd);
}

/* Keeps the fields that the close line shows for what was recognised, escaped, as
 * "key\0value\0" pairs ending with an empty key. */
static void conn_describe(struct conn *c, const struct probe_out *p)
{
    char buf[2048];
    size_t n = 0;

#define ADD(key, ptr, len)                                                                         \
    do {                                                                                           \
        if ((len) && n + sizeof(key) + 1 < sizeof(buf)) {                                          \
            memcpy(buf + n, key, sizeof(key));                                                     \
            n += sizeof(key);                                                                      \
            log_escape(buf + n, sizeof(buf) - n - 1, ptr, len);                                    \
            n += strlen(buf + n) + 1;                                                              \
        }                                                                                          \
    } while (0)

    ADD("sni", p->sni, p->sni_len);
    if (p->alpn_len) {
        char alpn[600];
        probe_alpn_format(p, alpn, sizeof(alpn));
        ADD("alpn", alpn, strlen(alpn));
    }
    ADD("host", p->host, p->host_len);
    ADD("path", p->path, p->path_len);
    ADD("ufrag", p->ufrag, p->ufrag_len);
    ADD("ws_protocol", p->ws_protocol, p->ws_protocol_len);
    if (p->cls == CLASS_SIP)
        ADD("sip_method", p->method, strlen(p->method));
    ADD("mqtt_client", p->mqtt_client, p->mqtt_client_len);
    if (p->cls == CLASS_UNKNOWN && p->why)
        ADD("why", p->why, strlen(p->why));
#undef ADD
    free(c->desc);
    c->desc = NULL;
    if (n && (c->desc = malloc(n + 1))) {
        memcpy(c->desc, buf, n);
        c->desc[n] = '\0';
    }
}

/* Detection is final: count the connection under its label once. */
static void conn_count(struct conn *c, const struct probe_out *p)
{
    c->label = class_label_of(p->cls, c->terminated);
    c->counted = true;
    MX_INC(mx.conns_total[c->label]);
    atomic_fetch_add(&mx.conns_open[c->label], 1);
    MX_INC(mx.detect[p->refuse                 ? MXD_REFUSED
                     : p->cls == CLASS_TIMEOUT ? MXD_TIMEOUT
                     : p->cls != CLASS_UNKNOWN ? MXD_MATCHED
                     : c->preread_full         ? MXD_PREREAD_LIMIT
                                               : MXD_UNKNOWN]);
    if (c->route)
        MX_INC(snap_route_mx(c->snap, c->route)->conns);
}

/* The route wants TLS terminated with certificate section t: hand the ClientHello to
 * OpenSSL; the handshake phase follows. */
static enum step conn_terminate(struct conn *c, const struct cfg_tls *t, const struct probe_out *p)
{
    struct buf *b = &c->client.pend;

    if (!(c->hello = malloc(sizeof(*c->hello))) ||
        !tls_conn_start(&c->client.tp, snap_tls_ctx(c->snap, t), b->data + b->off, buf_unread(b)))
        return conn_fail(c, "out of memory starting TLS");
    memcpy(c->hello, p, sizeof(*p));
    buf_release(b);      /* OpenSSL holds the bytes now; the buffer will carry plain text */
    c->client.bytes = 0; /* from here on, bytes_in counts what the client sent inside TLS */
    c->phase = CONN_HANDSHAKE;
    return STEP_DONE;
}

/* ICE-TCP to a pool with balance = ufrag: the server is named by a static prefix, or by
 * the ufrag table; else (false) a fan-out must find it. */
static bool conn_ufrag_server(struct conn *c, const struct probe_out *p)
{
    const struct cfg_backend *b = c->backend;
    size_t idx;

    /* Only a well-formed ufrag (RFC 8445 ice-chars) is looked up or cached: it comes from
     * the client. Anything else is refused by fanout_prepare. */
    if (!ufrag_valid(p->ufrag, p->ufrag_len))
        return false;
    c->ufrag = strndup(p->ufrag, p->ufrag_len);
    int pfx = route_ufrag_prefix(b, p->ufrag, p->ufrag_len);
    if (pfx >= 0) {
        c->first = (unsigned)pfx;
        c->nattempts = 1;
        return true;
    }
    if ((c->ufrag_held = ufrag_acquire(b, p->ufrag, p->ufrag_len, &idx))) {
        c->first = (unsigned)idx;
        c->nattempts = 1;
        return true;
    }
    return false;
}

/* Detection is over: pick the route, then terminate TLS, connect or fan out. */
static enum step conn_route(struct conn *c, struct probe_out *p)
{
    const struct cfg_tls *term = NULL;

    c->cls = p->cls;
    if (c->terminated) {
        /* Rules may match the names the client sent in its ClientHello. */
        memcpy(p->sni, c->hello->sni, sizeof(p->sni));
        p->sni_len = c->hello->sni_len;
        memcpy(p->alpn, c->hello->alpn, sizeof(p->alpn));
        p->alpn_len = c->hello->alpn_len;
        free(c->hello);
        c->hello = NULL;
        c->route = route_select(c->snap->cfg, c->lst, p, VIA_TERMINATED);
        if (!c->route)
            c->route = route_inside_fallback(c->snap->cfg, c->term_route);
    } else if (p->cls == CLASS_TLS) {
        c->route = route_tls_hello(c->snap->cfg, c->lst, p, &term);
        if (c->route && c->route->tls == TLSM_TERMINATE) {
            c->term_route = c->route; /* routes what is inside, once decrypted */
            c->route = NULL;
            if (!term) {
                conn_describe(c, p);
                conn_count(c, p);
                return conn_fail(c, "[route %s] tls = terminate: no certificate for this SNI",
                                 c->term_route->name);
            }
        }
    } else {
        c->route = route_select(c->snap->cfg, c->lst, p, VIA_PLAIN);
    }
    conn_describe(c, p);
    if (term)
        return conn_terminate(c, term, p);
    conn_count(c, p);
    if (p->refuse)
        return conn_fail(c, "refused: %s", p->refuse);
    if (!c->route) {
        if (p->cls == CLASS_UNKNOWN)
            /* The probe's explanation is the close line's why= field: not repeated here. */
            return conn_fail(c, "unrecognised protocol%s%s%s", c->terminated ? " inside TLS" : "",
                             p->why ? "" : ": no probe matched",
                             c->terminated ? "" : ", and no [route] default");
        if (p->cls == CLASS_TIMEOUT)
            return conn_fail(c, "peek timeout after %zu bytes%s", buf_unread(&c->client.pend),
                             c->terminated ? " inside TLS" : ", and no [route] on_timeout");
        if (p->cls == CLASS_TLS)
            return conn_fail(c, "no certificate for this SNI and no [route] tls or default");
        return conn_fail(c, "no route for class %s", class_log_name(c->cls, c->terminated));
    }
    c->backend = c->route->backend;
    c->first = backend_first(c->snap, c->backend, &c->peer_addr.sa);
    c->attempt = 0;
    c->nattempts = (unsigned)c->backend->servers.n;
    if (c->backend->balance == BALANCE_UFRAG && p->cls == CLASS_ICE_TCP &&
        !conn_ufrag_server(c, p)) {
        if (!fanout_prepare(c, p))
            return STEP_FAIL;
        c->phase = CONN_FANOUT;
        return STEP_DONE;
    }
    c->phase = CONN_CONNECT;
    return STEP_DONE;
}

/* What a backend socket's first write told. */
enum first_write { FW_CONNECTED, FW_WAIT, FW_FAILED };

/* The backend socket's first write (the PROXY header, else the preread bytes) also tells
 * whether the connect succeeded, as getsockopt(SO_ERROR) would (a refused connect fails
 * it with ECONNREFUSED), without a system call of its own. `eager`: tried right after
 * connect(), before the socket said it is writable; EAGAIN then means "not connected
 * yet" (FW_WAIT). On loopback and same-host servers the handshake is usually complete
 * by then: the connection goes straight to the relay, and the backend socket is
 * registered once, for reading. `deferred`: TCP Fast Open, the socket is not connecting
 * yet: the write connects (connect_fastopen, the bytes in the SYN when the kernel holds a
 * cookie) and only writability will confirm it (FW_WAIT too). On
 * FW_FAILED *why says why; nothing of the preread is consumed unless connected, so the
 * next server gets it whole. */
static enum first_write conn_first_write(struct conn *c, bool eager, bool deferred,
                                         const char **why)
{
    struct transport *t = &c->backend_leg.tp;
    struct buf *p = &c->client.pend;
    uint8_t hdr[PROXY_HDR_MAX];
    const uint8_t *data = hdr;
    size_t n = 0;
    ssize_t w;
    int err;

    /* The local address (a getsockname) is looked up only for a header that carries it. */
    if (c->backend->proxy_protocol)
        n = connect_proxy_header(c->backend, &c->peer_addr.sa, conn_local_addr(c), hdr);
    if (!n && (n = buf_unread(p)))
        data = p->data + p->off;
    if (!n) { /* nothing to send (a timeout route): ask the socket once it is writable */
        if (eager)
            return FW_WAIT;
        if ((err = connect_result(t->fd))) {
            *why = strerror(err);
            return FW_FAILED;
        }
        return FW_CONNECTED;
    }
    w = deferred ? connect_fastopen(t->fd, c->server, data, n) : t->ops->write(t, data, n);
    if (w < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINPROGRESS)
            return eager ? FW_WAIT : FW_CONNECTED; /* writable yet full: the relay retries */
        *why = strerror(errno);
        return FW_FAILED;
    }
    /* A fresh socket's send buffer is empty: a short header always goes in one send. */
    if (data == hdr && w != (ssize_t)n) {
        *why = "cannot send the PROXY header";
        return FW_FAILED;
    }
    if (deferred) {
        c->tfo_unconfirmed = true;
        c->tfo_sent = data == hdr ? 0 : (uint32_t)w;
        return FW_WAIT;
    }
    if (data != hdr)
        buf_consume(p, (size_t)w); /* the relay sends the rest, if any */
    return FW_CONNECTED;
}

/* After a TFO write: the socket is writable, so the handshake is over; accepted, unless
 * its event came with an error (then the bytes that rode on the SYN are not consumed:
 * the next server gets them). */
static enum first_write conn_tfo_confirm(struct conn *c, const char **why)
{
    const struct transport *t = &c->backend_leg.tp;
    int err = t->error ? connect_result(t->fd) : 0;
    if (err) {
        *why = strerror(err);
        return FW_FAILED;
    }
    buf_consume(&c->client.pend, c->tfo_sent);
    return FW_CONNECTED;
}

/* Whether to try the first write right after connect(): while it finds the handshake
 * complete (loopback, same host), it saves an epoll_ctl and a wakeup; toward a server
 * where it keeps answering EAGAIN (a real network: one system call wasted), it is only
 * tried now and then again. */
#define EAGER_MISSES 4
static bool conn_eager_worth(const struct conn *c, struct mx_server *sm)
{
    return atomic_load_explicit(&sm->eager_miss, memory_order_relaxed) < EAGER_MISSES ||
           (c->id & 63) == 0;
}

/* CONN_CONNECT: tries the servers of the pool in order (skipping those out of service)
 * until one accepts the connection and takes its PROXY header. */
static enum step conn_connect(struct conn *c, int revents)
{
    struct leg *bl = &c->backend_leg;
    const struct cfg_backend *b = c->backend;
    const char *failure = NULL, *prev = c->server ? c->server->text : NULL;
    enum first_write fw;

    if (bl->tp.fd >= 0) {
        if (revents & EV_TIMER) {
            failure = "connect timeout";
            fw = FW_FAILED;
        } else if (!(revents & EV_WRITE)) {
            return STEP_AGAIN;
        } else if (c->tfo_unconfirmed) {
            fw = conn_tfo_confirm(c, &failure);
        } else {
            fw = conn_first_write(c, false, false, &failure);
        }
        struct mx_server *sm = snap_server_mx(c->snap, b, (size_t)(c->server - b->servers.v));
        if (fw == FW_CONNECTED) {
            MX_INC(sm->connects);
            conn_deadline(c, 0);
            return STEP_DONE;
        }
        MX_INC(sm->connect_failures);
        conn_backend_socket(c, -1);
    }
    while (c->attempt < c->nattempts) {
        unsigned idx = backend_index(b, c->first, c->attempt++);
        struct mx_server *sm = snap_server_mx(c->snap, b, idx);
        if (atomic_load(&sm->down))
            continue; /* taken out of service by its health checks */
        const struct cfg_addr *a = &b->servers.v[idx];
        if (failure)
            log_info("conn=%llu backend %s server %s: %s; trying %s", (unsigned long long)c->id,
                     b->name, prev, failure, a->text);
        c->server = a;
        prev = a->text;
        /* TFO only with something to write: a deferred connect sends its SYN with the
         * first write, and a silent client's route (on_timeout) may have a server that
         * speaks first. */
        bool deferred, tfo = b->tcp_fastopen && (b->proxy_protocol || buf_unread(&c->client.pend));
        int fd = connect_begin(a, CONNECT_NODELAY_LATER | (tfo ? CONNECT_FASTOPEN : 0), &deferred);
        if (fd < 0) {
            failure = strerror(errno);
            MX_INC(sm->connect_failures);
            continue;
        }
        conn_backend_socket(c, fd);
        bl->nagle_on = bl->tp.tcp;
        c->tfo_unconfirmed = false;
        if (deferred || conn_eager_worth(c, sm)) {
            fw = conn_first_write(c, true, deferred, &failure);
            if (fw == FW_CONNECTED) {
                atomic_store_explicit(&sm->eager_miss, 0, memory_order_relaxed);
                MX_INC(sm->connects);
                return STEP_DONE;
            }
            if (fw == FW_FAILED) { /* refused at once (loopback): the next server */
                MX_INC(sm->connect_failures);
                conn_backend_socket(c, -1);
                continue;
            }
            if (!deferred)
                atomic_fetch_add_explicit(&sm->eager_miss, 1, memory_order_relaxed);
        }
        conn_deadline(c, b->connect_timeout);
        return STEP_AGAIN;
    }
    if (!failure)
        return conn_fail(c, "backend %s: all %zu servers are out of service (health checks)",
                         b->name, b->servers.n);
    return conn_fail(c, "backend %s: all servers failed (last %s: %s)", b->name, prev ? prev : "-",
                     failure);
}

/* A phase is done: the next one, decided here and only here. */
static enum step conn_next(struct conn *c, struct probe_out *out)
{
    switch (c->phase) {
    case CONN_PROXY:
        c->phase = CONN_DETECT; /* the peek deadline covers both */
        return STEP_DONE;
    case CONN_DETECT:
        return conn_route(c, out);
    case CONN_HANDSHAKE:
        /* What comes out is detected again, with a fresh peek_timeout for it. */
        c->terminated = true;
        c->phase = CONN_DETECT;
        conn_deadline(c, c->lst->peek_timeout);
        return STEP_DONE;
    case CONN_CONNECT:
    case CONN_FANOUT:
        c->phase = CONN_RELAY;
        relay_arm(c);
        return STEP_DONE;
    case CONN_RELAY:
        break;
    }
    return conn_fail(c, "internal error: phase %d has no successor", (int)c->phase);
}

/* The socket events each leg waits for in the current phase. */
static int leg_interest(const struct conn *c, const struct leg *l)
{
    const struct transport *t = &l->tp;
    bool client = !l->backend;

    switch (c->phase) {
    case CONN_PROXY:
    case CONN_DETECT:
        return client ? EV_READ | t->ops->wants(t) : 0;
    case CONN_HANDSHAKE:
        return client ? t->ops->wants(t) : 0;
    case CONN_CONNECT:
        return client ? 0 : EV_WRITE;
    case CONN_FANOUT:
        return 0; /* the fan-out's candidates have their own watchers */
    case CONN_RELAY:
        return relay_interest(l);
    }
    return 0;
}

/* After a step: what each leg waits for now, and whether it is ready for it already
 * (then the connection is queued to run again). A socket is registered once, with
 * everything and EPOLLET, when its phase first waits; interest changes cost no system
 * call. False (errno set) when the set refused a socket. */
static bool conn_update_io(struct conn *c)
{
    struct leg *legs[2] = {&c->client, &c->backend_leg};
    bool run = false;

    for (int i = 0; i < 2; i++) {
        struct leg *l = legs[i];
        if (l->tp.fd < 0) {
            l->want = 0;
            continue;
        }
        l->want = (uint8_t)leg_interest(c, l);
        /* The kernel relay's sockets leave the set (each segment it moves would be an
         * event for nothing), except while they wait for something not known ready. */
        bool watch = !krelay_unwatched(l) || (l->want & ~(int)l->tp.ready);
        if (watch != l->watched) {
            struct epoll_event e = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                                    .data.ptr = l};
            if (epoll_ctl(c->pool->ready.fd, watch ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, l->tp.fd, &e) <
                0)
                return false;
            l->watched = watch;
            /* Registering reports, as an event, what the socket is ready for now; out of
             * the set nothing is known: try (what fails brings it back). */
            l->tp.ready = watch ? 0 : TP_WANT_READ | TP_WANT_WRITE;
        }
        run |= (l->want & (int)l->tp.ready) != 0;
    }
    if (run)
        conn_queue(c);
    return true;
}

/* Runs phases until one has to wait or the connection ends (false: c is freed). `l` is
 * the leg whose socket is ready for `revents` (NULL: the timer, or no event). */
static bool conn_run(struct conn *c, struct leg *l, int revents)
{
    struct probe_out out;
    enum step st;

    for (;;) {
        switch (c->phase) {
        case CONN_PROXY:
            st = detect_proxy(c, revents);
            break;
        case CONN_DETECT:
            st = detect_first_bytes(c, revents, &out);
            break;
        case CONN_HANDSHAKE:
            st = detect_handshake(c, revents);
            break;
        case CONN_CONNECT:
            st = conn_connect(c, revents);
            break;
        case CONN_FANOUT:
            st = fanout_step(c, revents);
            break;
        case CONN_RELAY:
        default:
            st = relay_step(c, l, revents);
            break;
        }
        if (st == STEP_DONE)
            st = conn_next(c, &out);
        if (st == STEP_AGAIN) {
            if (conn_update_io(c))
                return true;
            int err = errno;
            st = conn_fail(c, "cannot watch its sockets: %s", strerror(err));
        }
        if (st != STEP_DONE) {
            conn_close(c, st == STEP_FAIL, "%s", c->reason ? c->reason : "unknown reason");
            return false;
        }
        /* Entering the next phase: it starts with no event. */
        l = NULL;
        revents = 0;
    }
}

static void conn_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct conn *c = t->data;
    struct conn_pool *p = c->pool;
    (void)loop;
    conn_run(c, NULL, revents);
    pool_run(p);
}

/* The close line: the same fields in text and JSON (log_format). */
static void conn_log_close(struct conn *c, bool failure, const char *reason)
{
    struct log_field f[32];
    char id[24], in[24], out[24], dur[32], client[ADDR_TEXT_MAX];
    size_t n = 0;

    snprintf(id, sizeof(id), "%llu", (unsigned long long)c->id);
    snprintf(in, sizeof(in), "%llu", (unsigned long long)c->client.bytes);
    snprintf(out, sizeof(out), "%llu", (unsigned long long)c->backend_leg.bytes);
    snprintf(dur, sizeof(dur), "%.3f", ev_now(c->pool->loop) - c->started);
    f[n++] = (struct log_field){"conn", id, LOG_NUMBER};
    f[n++] = (struct log_field){"client", conn_peer_text(c, client), LOG_BARE};
    f[n++] = (struct log_field){"listener", c->lst->name, LOG_BARE};
    f[n++] = (struct log_field){"class", class_log_name(c->cls, c->terminated), LOG_BARE};
    for (const char *d = c->desc; d && *d && n < 24; d += strlen(d) + 1) {
        const char *val = d + strlen(d) + 1;
        f[n++] = (struct log_field){d, val, LOG_QUOTED};
        d = val;
    }
    f[n++] = (struct log_field){"route", c->route ? c->route->name : "-", LOG_BARE};
    f[n++] = (struct log_field){"backend", c->backend ? c->backend->name : "-", LOG_BARE};
    f[n++] = (struct log_field){
        "server", c->server && c->backend_leg.tp.fd >= 0 ? c->server->text : "-", LOG_BARE};
    f[n++] = (struct log_field){"bytes_in", in, LOG_NUMBER};
    f[n++] = (struct log_field){"bytes_out", out, LOG_NUMBER};
    f[n++] = (struct log_field){"dur", dur, LOG_NUMBER};
    f[n++] = (struct log_field){"reason", reason, LOG_QUOTED};
    log_fields(failure ? LOG_LVL_WARN : LOG_LVL_INFO, f, n);
}

void conn_close(struct conn *c, bool failure, const char *fmt, ...)
{
    struct conn_pool *pool = c->pool;
    char reason[512], esc[600];
    va_list ap;

    krelay_stop(c); /* first: the close line counts the kernel's bytes too */
    /* Formatting is skipped when the level would drop the line (benchmarks, log_level =
     * warn and a successful connection). */
    if (log_get_level() >= (failure ? LOG_LVL_WARN : LOG_LVL_INFO)) {
        va_start(ap, fmt);
        vsnprintf(reason, sizeof(reason), fmt, ap);
        va_end(ap);
        conn_log_close(c, failure, log_escape(esc, sizeof(esc), reason, strlen(reason)));
    }

    ev_timer_stop(pool->loop, &c->timer);
    if (c->queued.prev)
        link_out(&c->queued);
    struct leg *legs[2] = {&c->client, &c->backend_leg};
    for (int i = 0; i < 2; i++) {
        struct leg *l = legs[i];
        if (l->tp.fd >= 0) { /* closing it takes it out of the pool's set */
            l->tp.ops->release(&l->tp);
            close(l->tp.fd);
        }
        buf_release(&l->pend);
        relay_release_pipe(l);
    }
    if (c->counted)
        atomic_fetch_sub(&mx.conns_open[c->label], 1);
    else /* no class: how it ended is its outcome, so that the counts add up */
        MX_INC(mx.conns_outcome[c->refused                   ? MXO_REFUSED
                                : c->phase == CONN_HANDSHAKE ? MXO_TLS_FAILED
                                                             : MXO_CLOSED]);
    if (c->route) {
        struct mx_route *rm = snap_route_mx(c->snap, c->route);
        MX_ADD(rm->bytes_in, c->client.bytes);
        MX_ADD(rm->bytes_out, c->backend_leg.bytes);
    }
    uint8_t key[16];
    if (c->limit_held && conn_client_key(c, key))
        limits_client_release(LIMITS_CONNS, key);
    fanout_free(c);
    detect_release(c);
    ufrag_release(c->ufrag_held);
    free(c->ufrag);
    limits_leave(&mx.open_all);
    limits_leave(&snap_listener_mx(c->snap, c->lst)->open);
    if (c->prev)
        c->prev->next = c->next;
    else
        pool->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pool->nconns--;
    snap_unref(c->snap);
    free(c->hello);
    free(c->desc);
    free(c->reason);
    free(c);
    if (pool->on_close)
        pool->on_close(pool);
}
