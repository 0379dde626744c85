/* A configuration made live: the plain description (conf) plus what running it needs —
 * a TLS context per [tls] section and the metric series, listener counters and
 * round-robin cursors of its names. Immutable once activated and reference-counted: a
 * connection keeps the snapshot it was accepted under. */
#ifndef MUX443_CORE_SNAPSHOT_H
#define MUX443_CORE_SNAPSHOT_H

#include <stdatomic.h>
#include <stdio.h>

#include <openssl/ssl.h>

#include "mux443/conf/desc.h"
#include "mux443/state/metrics.h"

struct snap {
    atomic_int refs;
    struct cfg *cfg;                  /* owned */
    SSL_CTX **tls_ctx;                /* per cfg->tls[i] */
    struct mx_route **route_mx;       /* per cfg->routes[i] */
    struct mx_server ***server_mx;    /* per cfg->backends[i], per server */
    struct mx_listener **listener_mx; /* per cfg->listeners[i] */
    atomic_uint *rr;                  /* per cfg->backends[i]: round-robin cursor */
};

/* Makes c live: builds its TLS contexts and binds its metric series (only now: a
 * configuration that is rejected registers nothing). Takes ownership of c. Returns the
 * snapshot with one reference, or NULL after writing why to errs (c is freed then). */
struct snap *snap_activate(struct cfg *c, FILE *errs);

struct snap *snap_ref(struct snap *s);
void snap_unref(struct snap *s); /* frees with the last reference; NULL ok */

static inline struct mx_route *snap_route_mx(const struct snap *s, const struct cfg_route *r)
{
    return s->route_mx[CFG_INDEX(s->cfg->routes, r)];
}

static inline struct mx_server *snap_server_mx(const struct snap *s, const struct cfg_backend *b,
                                               size_t idx)
{
    return s->server_mx[CFG_INDEX(s->cfg->backends, b)][idx];
}

static inline struct mx_listener *snap_listener_mx(const struct snap *s,
                                                   const struct cfg_listener *l)
{
    return s->listener_mx[CFG_INDEX(s->cfg->listeners, l)];
}

static inline SSL_CTX *snap_tls_ctx(const struct snap *s, const struct cfg_tls *t)
{
    return s->tls_ctx[CFG_INDEX(s->cfg->tls, t)];
}

#endif
