/* A connection's life before relaying: accept, read and recognise the first bytes
 * (after an inbound PROXY header), choose the route, connect with failover; and its end. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mux443/core/backend.h"
#include "mux443/core/conn.h"
#include "mux443/runtime/listener.h"
#include "mux443/core/fanout.h"
#include "mux443/state/limits.h"
#include "mux443/lib/log.h"
#include "mux443/state/metrics.h"
#include "mux443/lib/proxy_proto.h"
#include "mux443/core/route.h"
#include "mux443/tls/tls_ctx.h"
#include "mux443/state/ufrag.h"

#define PREREAD_FIRST 4096 /* most first flights fit: Chromium's ClientHello is ~2 KB */

static void preread_cb(struct ev_loop *loop, ev_io *io, int revents);
static void connect_cb(struct ev_loop *loop, ev_io *io, int revents);
static void peek_timeout_cb(struct ev_loop *loop, ev_timer *t, int revents);
static void connect_timeout_cb(struct ev_loop *loop, ev_timer *t, int revents);
static void connect_next(struct conn *c, const char *failure);

static void leg_init(struct leg *l, struct conn *c, struct leg *peer, int fd)
{
    l->fd = fd;
    l->pipe[0] = l->pipe[1] = -1;
    l->conn = c;
    l->peer = peer;
    l->tp = &transport_plain;
    ev_io_init(&l->io, relay_io_cb, fd, 0);
    l->io.data = l;
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

/* The per-client limit, once the client's real address is known (after PROXY). */
static bool conn_admit_client(struct conn *c)
{
    bool log_it;
    if (!limits_acquire((struct sockaddr *)&c->peer_addr, c->cfg->max_per_client, &log_it)) {
        MX_INC(mx.refused[MXR_PER_CLIENT]);
        if (log_it)
            log_warnx("client %s: max_connections_per_client (%u) reached: refusing its new "
                      "connections (logged once per %ds)",
                      c->peer_text, c->cfg->max_per_client, LIMITS_LOG_INTERVAL);
        return false;
    }
    c->limit_held = c->cfg->max_per_client != 0;
    return true;
}

void conn_accept(struct worker *w, struct cfg_listener *lst, int fd, const struct sockaddr *peer,
                 socklen_t peerlen)
{
    unsigned max = w->cfg->max_connections;

    MX_INC(mx.accepted);
    if (max && atomic_load(&listener_open_conns) >= max) {
        refuse_log(MXR_MAX_CONNECTIONS, "max_connections (%u) reached: refusing new connections",
                   max);
        close(fd);
        return;
    }
    if (lst->max_connections && atomic_load(&lst->open) >= lst->max_connections) {
        refuse_log(MXR_LISTENER_MAX,
                   "listener %s: max_connections (%u) reached: refusing new "
                   "connections",
                   lst->name, lst->max_connections);
        close(fd);
        return;
    }
    struct conn *c = calloc(1, sizeof(*c));
    if (!c) {
        log_warnx("accept: out of memory, connection dropped");
        close(fd);
        return;
    }
    c->id = ++w->next_id * 256 + w->id; /* unique across workers, increasing per worker */
    c->w = w;
    c->cfg = cfg_ref(w->cfg);
    c->lst = lst;
    c->started = c->last_io = ev_now(w->loop);
    c->cls = CLASS_NONE;
    c->proxy_done = !lst->proxy_in;
    memcpy(&c->peer_addr, peer, peerlen < sizeof(c->peer_addr) ? peerlen : sizeof(c->peer_addr));
    cfg_addr_format(peer, c->peer_text, sizeof(c->peer_text));
    if (!lst->proxy_in && !conn_admit_client(c)) {
        cfg_unref(c->cfg);
        free(c);
        close(fd);
        return;
    }
    leg_init(&c->client, c, &c->backend_leg, fd);
    leg_init(&c->backend_leg, c, &c->client, -1);
    atomic_fetch_add(&listener_open_conns, 1);
    atomic_fetch_add(&lst->open, 1);

    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    w->nconns++;

    ev_io_init(&c->client.io, preread_cb, fd, EV_READ);
    c->client.io.data = c;
    ev_io_start(w->loop, &c->client.io);
    ev_timer_init(&c->timer, peek_timeout_cb, lst->peek_timeout, 0);
    c->timer.data = c;
    ev_timer_start(w->loop, &c->timer);
}

/* Builds the escaped fields that the close line shows for what was recognised. */
static void conn_describe(struct conn *c, const struct probe_out *p)
{
    char buf[2048], esc[1100];
    size_t n = 0;

#define ADD(key, ptr, len)                                                                         \
    do {                                                                                           \
        if ((len) && n < sizeof(buf))                                                              \
            n += (size_t)snprintf(buf + n, sizeof(buf) - n, " " key "=\"%s\"",                     \
                                  log_escape(esc, sizeof(esc), ptr, len));                         \
    } while (0)

    buf[0] = '\0';
    ADD("sni", p->sni, p->sni_len);
    if (p->alpn_len) {
        char alpn[600];
        probe_alpn_format(p, alpn, sizeof(alpn));
        ADD("alpn", alpn, strlen(alpn));
    }
    ADD("host", p->host, p->host_len);
    ADD("path", p->path, p->path_len);
    ADD("ufrag", p->ufrag, p->ufrag_len);
    if (p->cls == CLASS_UNKNOWN && p->why)
        ADD("why", p->why, strlen(p->why));
#undef ADD
    free(c->desc);
    c->desc = n ? strdup(buf) : NULL;
}

const struct sockaddr *conn_local_addr(struct conn *c)
{
    /* Asked for only when a PROXY header is built: most connections never need it. */
    if (c->local_addr.ss_family == AF_UNSPEC) {
        socklen_t sl = sizeof(c->local_addr);
        getsockname(c->client.fd, (struct sockaddr *)&c->local_addr, &sl);
    }
    return (const struct sockaddr *)&c->local_addr;
}

const char *conn_class_name(const struct conn *c)
{
    if (c->terminated) {
        switch (c->cls) {
        case CLASS_HTTP:
            return "https";
        case CLASS_WEBSOCKET:
            return "wss";
        case CLASS_STUN:
            return "turns";
        case CLASS_UNKNOWN:
            return "tls-unknown";
        case CLASS_TIMEOUT:
            return "tls-timeout";
        default:
            return "tls"; /* handshake done (or under way), nothing recognised yet */
        }
    }
    return c->cls == CLASS_NONE ? "none" : probe_class_name(c->cls);
}

static void handshake_cb(struct ev_loop *loop, ev_io *io, int revents);

/* Waits on the client socket for `events` with callback cb (during detection). */
static void client_watch(struct conn *c, void (*cb)(struct ev_loop *, ev_io *, int), int events)
{
    struct ev_loop *loop = c->w->loop;
    ev_io_stop(loop, &c->client.io);
    ev_set_cb(&c->client.io, cb); /* same descriptor: ev_io_modify, not ev_io_init */
    ev_io_modify(&c->client.io, events);
    c->client.io.data = c;
    ev_io_start(loop, &c->client.io);
}

/* The route wants TLS terminated with certificate section t: hand the ClientHello to
 * OpenSSL and run the handshake; what comes out is detected again (preread_cb). */
static void conn_terminate(struct conn *c, const struct cfg_tls *t, const struct probe_out *p)
{
    struct pend *b = &c->client.pend;

    c->hello = malloc(sizeof(*c->hello));
    if (!c->hello || !tls_leg_start(&c->client, t->ctx, b->data, b->len)) {
        conn_close(c, true, "out of memory starting TLS");
        return;
    }
    memcpy(c->hello, p, sizeof(*p));
    pend_release(b);     /* OpenSSL holds the bytes now; the buffer will carry plain text */
    c->client.bytes = 0; /* from here on, bytes_in counts what the client sent inside TLS */
    c->state = CONN_HANDSHAKE;
    handshake_cb(c->w->loop, &c->client.io, 0);
}

static void handshake_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct conn *c = io->data;
    const char *why = NULL;

    (void)revents;
    int r = tls_handshake(&c->client, &why);
    if (r < 0) {
        MX_INC(mx.tls_failures);
        conn_close(c, true, "TLS handshake failed: %s", why);
        return;
    }
    if (r == 0) {
        client_watch(c, handshake_cb, c->client.tp->wants(&c->client));
        return;
    }
    c->terminated = true;
    c->state = CONN_PREREAD;
    MX_INC(mx.tls_handshakes);
    if (log_debug_enabled()) {
        char alpn[64];
        bool tx, rx;
        tls_leg_alpn(&c->client, alpn, sizeof(alpn));
        tls_leg_ktls(&c->client, &tx, &rx);
        log_debug("conn=%llu TLS %s established, alpn=\"%s\", kTLS send %s receive %s",
                  (unsigned long long)c->id, tls_leg_version(&c->client), alpn, tx ? "on" : "off",
                  rx ? "on" : "off");
    }
    /* A fresh peek_timeout for the first bytes inside, which may already be decrypted. */
    ev_timer_stop(loop, &c->timer);
    ev_timer_set(&c->timer, c->lst->peek_timeout, 0);
    ev_timer_start(loop, &c->timer);
    client_watch(c, preread_cb, EV_READ);
    preread_cb(loop, &c->client.io, 0);
}

/* ICE-TCP to a pool with balance = ufrag: the server is named by a static prefix, or by
 * the ufrag table; else a fan-out finds it. Returns true to connect to c->first only,
 * false when a fan-out took over. */
static bool conn_ufrag_server(struct conn *c, const struct probe_out *p)
{
    const struct cfg_backend *b = c->backend;

    /* Only a well-formed ufrag (RFC 8445 ice-chars) is looked up or cached: it comes from
     * the client. Anything else still fans out, uncached. */
    if (ufrag_valid(p->ufrag, p->ufrag_len) && !(c->ufrag = strndup(p->ufrag, p->ufrag_len))) {
        conn_close(c, true, "out of memory");
        return false;
    }
    for (size_t i = 0; c->ufrag && i < b->servers.n; i++) {
        const char *pfx = b->ufrag_prefix ? b->ufrag_prefix[i] : NULL;
        if (pfx && strncmp(c->ufrag, pfx, strlen(pfx)) == 0) {
            c->first = (unsigned)i;
            c->nattempts = 1;
            return true;
        }
    }
    int idx = c->ufrag ? ufrag_acquire(c->ufrag, b) : -1;
    if (idx >= 0) {
        c->ufrag_held = true;
        c->first = (unsigned)idx;
        c->nattempts = 1;
        return true;
    }
    fanout_start(c, p->consumed);
    return false;
}

/* Detection is over: pick the route and start connecting (or terminate TLS), or close. */
static void conn_route(struct conn *c, struct probe_out *p)
{
    struct ev_loop *loop = c->w->loop;
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
        c->route = route_select(c->cfg, p, VIA_TERMINATED);
    } else if (p->cls == CLASS_TLS) {
        c->route = route_tls_hello(c->cfg, p, &term);
    } else {
        c->route = route_select(c->cfg, p, VIA_PLAIN);
    }
    conn_describe(c, p);
    if (term) {
        conn_terminate(c, term, p);
        return;
    }
    /* Detection is final here: count it once. */
    c->mx_cls = mx_class_of(conn_class_name(c));
    MX_INC(mx.conns_total[c->mx_cls]);
    atomic_fetch_add(&mx.conns_open[c->mx_cls], 1);
    MX_INC(mx.detect[p->cls == CLASS_TIMEOUT   ? MXD_TIMEOUT
                     : p->cls != CLASS_UNKNOWN ? MXD_MATCHED
                     : c->preread_full         ? MXD_PREREAD_LIMIT
                                               : MXD_UNKNOWN]);
    if (c->route)
        MX_INC(c->route->mx->conns);
    if (!c->route) {
        if (p->cls == CLASS_UNKNOWN)
            conn_close(c, true, "unrecognised protocol%s: %s%s", c->terminated ? " inside TLS" : "",
                       p->why ? p->why : "no probe matched",
                       c->terminated ? "" : ", and no [route] default");
        else if (p->cls == CLASS_TIMEOUT)
            conn_close(c, true, "peek timeout after %u bytes%s", c->client.pend.len,
                       c->terminated ? " inside TLS" : ", and no [route] on_timeout");
        else if (p->cls == CLASS_TLS)
            conn_close(c, true, "no certificate for this SNI and no [route] tls or default");
        else
            conn_close(c, true, "no route for class %s", conn_class_name(c));
        return;
    }
    c->backend = c->route->backend;
    c->first = backend_first(c->backend, (struct sockaddr *)&c->peer_addr);
    c->attempt = 0;
    c->nattempts = (unsigned)c->backend->servers.n;
    c->state = CONN_CONNECTING;
    ev_io_stop(loop, &c->client.io); /* bytes after the first flight wait in the socket */
    ev_timer_stop(loop, &c->timer);
    if (c->backend->balance == BALANCE_UFRAG && p->cls == CLASS_ICE_TCP && !conn_ufrag_server(c, p))
        return; /* fan-out started (or the connection closed) */
    connect_next(c, NULL);
}

/* Consumes an inbound PROXY header from the preread buffer. Returns false if the
 * connection was closed, true otherwise (*ready = header complete). */
static bool conn_proxy_header(struct conn *c, bool *ready)
{
    struct pend *b = &c->client.pend;
    struct proxy_info pi;
    const char *why = "not a PROXY header";

    *ready = false;
    switch (proxy_parse(b->data, b->len, &pi, &why)) {
    case PROBE_AGAIN:
        return true;
    case PROBE_NOMATCH:
        MX_INC(mx.detect[MXD_PROXY_ERROR]);
        conn_close(c, true, "listener %s expects a PROXY header: %s", c->lst->name, why);
        return false;
    case PROBE_MATCH:
        break;
    }
    if (!pi.local) {
        c->peer_addr = pi.src;
        c->local_addr = pi.dst;
        char via[64];
        memcpy(via, c->peer_text, sizeof(via));
        cfg_addr_format((struct sockaddr *)&c->peer_addr, c->peer_text, sizeof(c->peer_text));
        log_debug("conn=%llu client=%s via PROXY header from %s", (unsigned long long)c->id,
                  c->peer_text, via);
    }
    memmove(b->data, b->data + pi.hdr_len, b->len - pi.hdr_len);
    b->len -= (uint32_t)pi.hdr_len;
    c->proxy_done = true;
    if (!conn_admit_client(c)) {
        conn_close(c, true, "max_connections_per_client reached for %s", c->peer_text);
        return false;
    }
    *ready = true;
    return true;
}

/* Reads the client's first bytes (plain, or decrypted inside terminated TLS) until the
 * probes decide, the buffer is full, or peek_timeout fires. */
static void preread_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct conn *c = io->data;
    struct pend *b = &c->client.pend;
    struct probe_out p;
    size_t max = c->lst->preread_max;

    (void)loop;
    (void)revents;
    do {
        /* Start small, double while the first flight is incomplete (len < max here: a
         * full buffer has already been routed). */
        if (!pend_reserve(b, b->len ? b->len : PREREAD_FIRST, max)) {
            conn_close(c, true, "out of memory during detection");
            return;
        }
        ssize_t n = c->client.tp->read(&c->client, b->data + b->len, b->cap - b->len);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                conn_close(c, true, "client error during detection: %s", strerror(errno));
                return;
            }
            /* TLS may need to write before it can read on. */
            int ev = EV_READ | c->client.tp->wants(&c->client);
            if ((c->client.io.events & (EV_READ | EV_WRITE)) != ev)
                client_watch(c, preread_cb, ev);
            return;
        }
        if (n == 0) {
            MX_INC(mx.detect[MXD_CLOSED]);
            conn_close(c, true, "client closed during detection after %u bytes", b->len);
            return;
        }
        b->len += (uint32_t)n;
        c->client.bytes += (uint64_t)n;

        if (!c->proxy_done) {
            bool ready;
            if (!conn_proxy_header(c, &ready))
                return;
            if (!ready) {
                if (b->len >= max) {
                    conn_close(c, true, "PROXY header longer than preread_max");
                    return;
                }
                continue;
            }
            if (b->len == 0)
                continue;
        }
        enum probe_result r = probe_detect(b->data, b->len, &p);
        if (r == PROBE_AGAIN && b->len < max)
            continue;
        if (r == PROBE_AGAIN) {
            p.cls = CLASS_UNKNOWN;
            p.why = "preread_max reached before the first message was complete";
            c->preread_full = true;
        }
        if (c->terminated && p.cls == CLASS_TLS) {
            p.cls = CLASS_UNKNOWN;
            p.why = "TLS inside TLS";
        }
        conn_route(c, &p);
        return;
    } while (c->client.tp->pending(&c->client)); /* decrypted bytes wait for no event */
}

static void peek_timeout_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct conn *c = t->data;
    struct probe_out p;

    (void)loop;
    (void)revents;
    if (!c->proxy_done) {
        conn_close(c, true, "peek timeout waiting for the PROXY header");
        return;
    }
    memset(&p, 0, sizeof(p));
    p.cls = CLASS_TIMEOUT;
    if (c->state == CONN_HANDSHAKE) {
        MX_INC(mx.tls_failures_timeout);
        conn_close(c, true, "peek timeout during the TLS handshake");
        return;
    }
    conn_route(c, &p);
}

/* Tries the next server of the pool that is in service; `failure` says why the previous
 * one failed. */
static void connect_next(struct conn *c, const char *failure)
{
    struct ev_loop *loop = c->w->loop;
    const struct cfg_backend *b = c->backend;
    const char *prev = c->server ? c->server->text : NULL;

    if (failure && c->server)
        MX_INC(b->mx[c->server - b->servers.v]->connect_failures);
    while (c->attempt < c->nattempts) {
        unsigned idx = backend_index(b, c->first, c->attempt++);
        if (atomic_load(&b->mx[idx]->down))
            continue; /* taken out of service by its health checks */
        const struct cfg_addr *a = &b->servers.v[idx];
        if (failure)
            log_info("conn=%llu backend %s server %s: %s; trying %s", (unsigned long long)c->id,
                     b->name, prev, failure, a->text);
        c->server = a;
        int fd = backend_connect(a);
        if (fd < 0) {
            failure = strerror(errno);
            prev = a->text;
            MX_INC(b->mx[idx]->connect_failures);
            continue;
        }
        c->backend_leg.fd = fd;
        ev_io_init(&c->backend_leg.io, connect_cb, fd, EV_WRITE);
        c->backend_leg.io.data = c;
        ev_io_start(loop, &c->backend_leg.io);
        ev_timer_init(&c->timer, connect_timeout_cb, b->connect_timeout, 0);
        ev_timer_start(loop, &c->timer);
        return;
    }
    if (!failure)
        conn_close(c, true, "backend %s: all %zu servers are out of service (health checks)",
                   b->name, b->servers.n);
    else
        conn_close(c, true, "backend %s: all servers failed (last %s: %s)", b->name,
                   prev ? prev : "-", failure);
}

static void connect_failed(struct conn *c, const char *why)
{
    struct ev_loop *loop = c->w->loop;
    ev_io_stop(loop, &c->backend_leg.io);
    ev_timer_stop(loop, &c->timer);
    close(c->backend_leg.fd);
    c->backend_leg.fd = -1;
    connect_next(c, why);
}

static void connect_timeout_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    connect_failed(t->data, "connect timeout");
}

static void connect_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct conn *c = io->data;
    int err = 0;
    socklen_t len = sizeof(err);

    (void)revents;
    if (getsockopt(c->backend_leg.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err) {
        connect_failed(c, strerror(err));
        return;
    }
    ev_io_stop(loop, &c->backend_leg.io);
    ev_timer_stop(loop, &c->timer);
    MX_INC(c->backend->mx[c->server - c->backend->servers.v]->connects);
    if (c->backend->proxy_protocol) {
        uint8_t hdr[PROXY_HDR_MAX];
        size_t n = proxy_build(hdr, sizeof(hdr), c->backend->proxy_protocol,
                               (struct sockaddr *)&c->peer_addr, conn_local_addr(c));
        /* A fresh socket's send buffer is empty: a short header always goes in one send. */
        if (c->backend_leg.tp->write(&c->backend_leg, hdr, n) != (ssize_t)n) {
            connect_failed(c, "cannot send the PROXY header");
            return;
        }
    }
    c->state = CONN_RELAY;
    relay_start(c);
}

void conn_close(struct conn *c, bool failure, const char *fmt, ...)
{
    struct worker *w = c->w;
    char reason[512], esc[600];
    va_list ap;

    /* Formatting is skipped when the level would drop the line (benchmarks, log_level =
     * warn and a successful connection). */
    if (log_get_level() >= (failure ? LOG_LVL_WARN : LOG_LVL_INFO)) {
        va_start(ap, fmt);
        vsnprintf(reason, sizeof(reason), fmt, ap);
        va_end(ap);
        (failure ? log_warnx : log_info)(
            "conn=%llu client=%s listener=%s class=%s%s route=%s backend=%s server=%s "
            "bytes_in=%llu bytes_out=%llu dur=%.3f reason=\"%s\"",
            (unsigned long long)c->id, c->peer_text, c->lst->name, conn_class_name(c),
            c->desc ? c->desc : "", c->route ? c->route->name : "-",
            c->backend ? c->backend->name : "-",
            c->server && c->backend_leg.fd >= 0 ? c->server->text : "-",
            (unsigned long long)c->client.bytes, (unsigned long long)c->backend_leg.bytes,
            ev_now(w->loop) - c->started, log_escape(esc, sizeof(esc), reason, strlen(reason)));
    }

    ev_timer_stop(w->loop, &c->timer);
    struct leg *legs[2] = {&c->client, &c->backend_leg};
    for (int i = 0; i < 2; i++) {
        struct leg *l = legs[i];
        ev_io_stop(w->loop, &l->io);
        if (l->fd >= 0) {
            l->tp->release(l);
            close(l->fd);
        }
        pend_release(&l->pend);
        leg_release_pipe(l);
    }
    if (c->mx_cls != MXC_NONE)
        atomic_fetch_sub(&mx.conns_open[c->mx_cls], 1);
    if (c->route) {
        MX_ADD(c->route->mx->bytes_in, c->client.bytes);
        MX_ADD(c->route->mx->bytes_out, c->backend_leg.bytes);
    }
    if (c->limit_held)
        limits_release((struct sockaddr *)&c->peer_addr);
    fanout_free(c->fanout);
    if (c->ufrag_held)
        ufrag_release(c->ufrag);
    free(c->ufrag);
    atomic_fetch_sub(&listener_open_conns, 1);
    atomic_fetch_sub(&((struct cfg_listener *)c->lst)->open, 1);
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    cfg_unref(c->cfg);
    free(c->hello);
    free(c->desc);
    free(c);
    worker_conn_closed(w);
}
