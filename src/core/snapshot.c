/* Activating a configuration: TLS contexts and metric bindings; and releasing it. */
#include <stdlib.h>

#include "mux443/core/snapshot.h"
#include "mux443/tls/tls_ctx.h"

static void snap_free(struct snap *s)
{
    const struct cfg *c = s->cfg;
    for (size_t i = 0; s->tls_ctx && i < c->ntls; i++)
        SSL_CTX_free(s->tls_ctx[i]);
    for (size_t i = 0; s->route_mx && i < c->nroutes; i++)
        if (s->route_mx[i])
            atomic_fetch_sub(&s->route_mx[i]->live, 1);
    for (size_t i = 0; s->server_mx && i < c->nbackends; i++) {
        for (size_t k = 0; s->server_mx[i] && k < c->backends[i].servers.n; k++)
            if (s->server_mx[i][k])
                atomic_fetch_sub(&s->server_mx[i][k]->live, 1);
        free(s->server_mx[i]);
    }
    for (size_t i = 0; s->listener_mx && i < c->nlisteners; i++)
        if (s->listener_mx[i])
            atomic_fetch_sub(&s->listener_mx[i]->live, 1);
    free(s->tls_ctx);
    free(s->route_mx);
    free(s->server_mx);
    free(s->listener_mx);
    free(s->rr);
    cfg_free(s->cfg);
    free(s);
}

struct snap *snap_activate(struct cfg *c, FILE *errs)
{
    struct snap *s = calloc(1, sizeof(*s));
    if (!s) {
        fprintf(errs, "%s: out of memory activating the configuration\n", c->path);
        cfg_free(c);
        return NULL;
    }
    atomic_init(&s->refs, 1);
    s->cfg = c;
    s->tls_ctx = calloc(c->ntls ? c->ntls : 1, sizeof(*s->tls_ctx));
    s->route_mx = calloc(c->nroutes ? c->nroutes : 1, sizeof(*s->route_mx));
    s->server_mx = calloc(c->nbackends ? c->nbackends : 1, sizeof(*s->server_mx));
    s->listener_mx = calloc(c->nlisteners ? c->nlisteners : 1, sizeof(*s->listener_mx));
    s->rr = calloc(c->nbackends ? c->nbackends : 1, sizeof(*s->rr));
    bool ok = s->tls_ctx && s->route_mx && s->server_mx && s->listener_mx && s->rr;
    for (size_t i = 0; ok && i < c->nbackends; i++)
        ok = (s->server_mx[i] = calloc(c->backends[i].servers.n + 1, sizeof(**s->server_mx)));
    if (!ok) {
        fprintf(errs, "%s: out of memory activating the configuration\n", c->path);
        snap_free(s);
        return NULL;
    }
    /* Certificates can change between the check and here (a renewal in progress): a
     * failure now is reported like a configuration error. */
    for (size_t i = 0; i < c->ntls; i++) {
        char err[512];
        if (!(s->tls_ctx[i] = tls_ctx_new(c, &c->tls[i], err, sizeof(err)))) {
            fprintf(errs, "%s:%d: [tls%s%s] cert: %s\n", c->path, c->tls[i].cert_line,
                    *c->tls[i].name ? " " : "", c->tls[i].name, err);
            snap_free(s);
            return NULL;
        }
    }
    /* Only a configuration that will run binds metric series. */
    for (size_t i = 0; i < c->nroutes; i++) {
        s->route_mx[i] = mx_route_get(c->routes[i].name);
        atomic_fetch_add(&s->route_mx[i]->live, 1);
    }
    for (size_t i = 0; i < c->nbackends; i++)
        for (size_t k = 0; k < c->backends[i].servers.n; k++) {
            s->server_mx[i][k] =
                mx_server_get(c->backends[i].name, c->backends[i].servers.v[k].text);
            atomic_fetch_add(&s->server_mx[i][k]->live, 1);
            if (c->backends[i].balance == BALANCE_UFRAG)
                atomic_store(&s->server_mx[i][k]->ufrag, true);
        }
    for (size_t i = 0; i < c->nlisteners; i++) {
        s->listener_mx[i] = mx_listener_get(c->listeners[i].name);
        atomic_fetch_add(&s->listener_mx[i]->live, 1);
    }
    return s;
}

struct snap *snap_ref(struct snap *s)
{
    atomic_fetch_add(&s->refs, 1);
    return s;
}

void snap_unref(struct snap *s)
{
    if (s && atomic_fetch_sub(&s->refs, 1) == 1)
        snap_free(s);
}
