/* What a connection's phases share: ending with a reason, the phase's deadline, the
 * backend socket, per-client admission, waking the driver. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mux443/core/connect.h"
#include "mux443/core/session.h"
#include "mux443/lib/log.h"
#include "mux443/state/limits.h"
#include "mux443/state/metrics.h"

bool conn_admit_client(const struct cfg *cfg, const struct sockaddr *peer, uint8_t key[16],
                       bool *held)
{
    char text[ADDR_TEXT_MAX];
    bool log_it;

    *held = false;
    if (!cfg->max_per_client ||
        !limits_client_key(peer, cfg->client_prefix_v4, cfg->client_prefix_v6, key, NULL, 0))
        return true;
    if (limits_client_acquire(LIMITS_CONNS, key, cfg->max_per_client, &log_it)) {
        *held = true;
        return true;
    }
    MX_INC(mx.refused[MXR_PER_CLIENT]);
    if (log_it && limits_client_key(peer, cfg->client_prefix_v4, cfg->client_prefix_v6, key, text,
                                    sizeof(text)))
        log_warnx("client %s: max_connections_per_client (%u) reached: refusing its new "
                  "connections (logged once per %ds)",
                  text, cfg->max_per_client, LIMITS_LOG_INTERVAL);
    return false;
}

__attribute__((format(printf, 3, 0))) static enum step conn_vreason(struct conn *c, enum step st,
                                                                    const char *fmt, va_list ap)
{
    free(c->reason);
    if (vasprintf(&c->reason, fmt, ap) < 0)
        c->reason = NULL;
    return st;
}

enum step conn_fail(struct conn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    enum step st = conn_vreason(c, STEP_FAIL, fmt, ap);
    va_end(ap);
    return st;
}

enum step conn_end(struct conn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    enum step st = conn_vreason(c, STEP_END, fmt, ap);
    va_end(ap);
    return st;
}

void conn_deadline(struct conn *c, double after)
{
    ev_timer_stop(c->pool->loop, &c->timer);
    if (after > 0) {
        ev_timer_set(&c->timer, after, 0);
        ev_timer_start(c->pool->loop, &c->timer);
    }
}

/* Gives the backend leg a new socket: closing the old one takes it out of the pool's set
 * (conn.c registers the new one when its phase first waits, with nothing known ready). */
void conn_backend_socket(struct conn *c, int fd)
{
    struct leg *l = &c->backend_leg;
    if (l->tp.fd >= 0)
        close(l->tp.fd);
    transport_init(&l->tp, fd); /* the backend leg is always plain */
    l->tp.tcp = c->server && addr_family_ip(c->server->ss.ss_family);
    l->watched = false;
    l->want = 0;
}

bool conn_client_key(const struct conn *c, uint8_t key[16])
{
    const struct cfg *cfg = c->snap->cfg;
    return limits_client_key(&c->peer_addr.sa, cfg->client_prefix_v4, cfg->client_prefix_v6, key,
                             NULL, 0);
}

const char *conn_peer_text(const struct conn *c, char buf[ADDR_TEXT_MAX])
{
    addr_format(&c->peer_addr.sa, buf, ADDR_TEXT_MAX);
    return buf;
}

const struct sockaddr *conn_local_addr(struct conn *c)
{
    /* Asked for only when a PROXY header is built: most connections never need it. */
    if (c->local_addr.sa.sa_family == AF_UNSPEC) {
        socklen_t sl = sizeof(c->local_addr);
        getsockname(c->client.tp.fd, &c->local_addr.sa, &sl);
    }
    return &c->local_addr.sa;
}

void conn_queue(struct conn *c)
{
    struct conn_link *head = &c->pool->runq, *k = &c->queued;
    if (k->prev)
        return;
    k->prev = head->prev;
    k->next = head;
    head->prev->next = k;
    head->prev = k;
}

void conn_wake(struct conn *c)
{
    c->woken = true;
    conn_queue(c);
}

const char *leg_name(const struct leg *l)
{
    return l->backend ? "backend" : "client";
}

void leg_before_write(struct leg *to)
{
    if (to->nagle_on) {
        connect_nodelay(to->tp.fd);
        to->nagle_on = false;
    }
}

enum step leg_pass_on(struct leg *from, const uint8_t *buf, size_t n)
{
    struct leg *to = leg_peer(from);

    leg_before_write(to);
    ssize_t w = to->tp.ops->write(&to->tp, buf, n);
    if (w < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return conn_fail(leg_conn(from), "%s write error: %s", leg_name(to), strerror(errno));
        w = 0;
    }
    if ((size_t)w < n) {
        if (!buf_reserve(&from->pend, n - (size_t)w, RELAY_BUF))
            return conn_fail(leg_conn(from), "out of memory");
        buf_put(&from->pend, buf + w, n - (size_t)w);
    }
    return STEP_AGAIN;
}
