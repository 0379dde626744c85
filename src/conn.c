/* A connection's life before relaying: accept, read and recognise the first bytes
 * (after an inbound PROXY header), choose the route, connect with failover; and its end. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mux443/backend.h"
#include "mux443/conn.h"
#include "mux443/listener.h"
#include "mux443/log.h"
#include "mux443/proxy_proto.h"
#include "mux443/route.h"

void cfg_addr_format(const struct sockaddr *sa, char *dst, size_t cap);

#define PREREAD_FIRST 4096 /* most first flights fit: Chromium's ClientHello is ~2 KB */

static void preread_cb(struct ev_loop *loop, ev_io *io, int revents);
static void connect_cb(struct ev_loop *loop, ev_io *io, int revents);
static void peek_timeout_cb(struct ev_loop *loop, ev_timer *t, int revents);
static void connect_timeout_cb(struct ev_loop *loop, ev_timer *t, int revents);
static void connect_next(struct conn *c, const char *failure);

static void leg_init(struct leg *l, struct conn *c, struct leg *peer, int fd)
{
    l->fd = fd;
    l->conn = c;
    l->peer = peer;
    l->tp = &transport_plain;
    ev_io_init(&l->io, relay_io_cb, fd, 0);
    l->io.data = l;
}

void conn_accept(struct worker *w, const struct cfg_listener *lst, int fd,
                 const struct sockaddr *peer, socklen_t peerlen)
{
    struct conn *c = calloc(1, sizeof(*c));
    socklen_t sl = sizeof(c->local_addr);

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
    getsockname(fd, (struct sockaddr *)&c->local_addr, &sl);
    cfg_addr_format(peer, c->peer_text, sizeof(c->peer_text));
    leg_init(&c->client, c, &c->backend_leg, fd);
    leg_init(&c->backend_leg, c, &c->client, -1);

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

/* Detection is over: pick the route and start connecting, or close. */
static void conn_route(struct conn *c, const struct probe_out *p)
{
    struct ev_loop *loop = c->w->loop;

    c->cls = p->cls;
    conn_describe(c, p);
    c->route = route_select(c->cfg, p);
    if (!c->route) {
        if (p->cls == CLASS_UNKNOWN)
            conn_close(c, true, "unrecognised protocol: %s, and no [route] default",
                       p->why ? p->why : "no probe matched");
        else if (p->cls == CLASS_TIMEOUT)
            conn_close(c, true, "peek timeout after %u bytes, and no [route] on_timeout",
                       c->client.pend.len);
        else
            conn_close(c, true, "no route for class %s", probe_class_name(p->cls));
        return;
    }
    c->backend = c->route->backend;
    c->first = backend_first(c->backend, (struct sockaddr *)&c->peer_addr);
    c->attempt = 0;
    c->state = CONN_CONNECTING;
    ev_io_stop(loop, &c->client.io); /* bytes after the first flight wait in the socket */
    ev_timer_stop(loop, &c->timer);
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
    *ready = true;
    return true;
}

static void preread_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct conn *c = io->data;
    struct pend *b = &c->client.pend;
    struct probe_out p;
    size_t max = c->lst->preread_max;

    (void)loop;
    (void)revents;
    /* Start small, double while the first flight is incomplete (len < max here: a full
     * buffer has already been routed). */
    if (!pend_reserve(b, b->len ? b->len : PREREAD_FIRST, max)) {
        conn_close(c, true, "out of memory during detection");
        return;
    }
    ssize_t n = c->client.tp->read(&c->client, b->data + b->len, b->cap - b->len);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        conn_close(c, true, "client error during detection: %s", strerror(errno));
        return;
    }
    if (n == 0) {
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
            if (b->len >= max)
                conn_close(c, true, "PROXY header longer than preread_max");
            return;
        }
        if (b->len == 0)
            return;
    }
    enum probe_result r = probe_detect(b->data, b->len, &p);
    if (r == PROBE_AGAIN) {
        if (b->len < max)
            return;
        p.cls = CLASS_UNKNOWN;
        p.why = "preread_max reached before the first message was complete";
    }
    conn_route(c, &p);
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
    conn_route(c, &p);
}

/* Tries the next server of the pool; `failure` says why the previous one failed. */
static void connect_next(struct conn *c, const char *failure)
{
    struct ev_loop *loop = c->w->loop;
    const struct cfg_backend *b = c->backend;

    while (c->attempt < b->servers.n) {
        const struct cfg_addr *a = backend_server(b, c->first, c->attempt++);
        if (failure)
            log_info("conn=%llu backend %s server %s: %s; trying %s", (unsigned long long)c->id,
                     b->name, c->server->text, failure, a->text);
        c->server = a;
        int fd = backend_connect(a);
        if (fd < 0) {
            failure = strerror(errno);
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
    conn_close(c, true, "backend %s: all %zu servers failed (last %s: %s)", b->name, b->servers.n,
               c->server ? c->server->text : "-", failure ? failure : "?");
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
    if (c->backend->proxy_protocol) {
        uint8_t hdr[PROXY_HDR_MAX];
        size_t n = proxy_build(hdr, sizeof(hdr), c->backend->proxy_protocol,
                               (struct sockaddr *)&c->peer_addr, (struct sockaddr *)&c->local_addr);
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

    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    (failure ? log_warnx : log_info)(
        "conn=%llu client=%s listener=%s class=%s%s route=%s backend=%s server=%s bytes_in=%llu "
        "bytes_out=%llu dur=%.3f reason=\"%s\"",
        (unsigned long long)c->id, c->peer_text, c->lst->name,
        c->cls == CLASS_NONE ? "none" : probe_class_name(c->cls), c->desc ? c->desc : "",
        c->route ? c->route->name : "-", c->backend ? c->backend->name : "-",
        c->server && c->backend_leg.fd >= 0 ? c->server->text : "-",
        (unsigned long long)c->client.bytes, (unsigned long long)c->backend_leg.bytes,
        ev_now(w->loop) - c->started, log_escape(esc, sizeof(esc), reason, strlen(reason)));

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
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    cfg_unref(c->cfg);
    free(c->desc);
    free(c);
    worker_conn_closed(w);
}
