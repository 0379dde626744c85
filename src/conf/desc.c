/* The configuration description: freeing it and looking things up in it. */
#include <stdlib.h>
#include <string.h>

#include "mux443/conf/desc.h"
#include "mux443/lib/log.h"

void cfg_strlist_add(struct cfg_strlist *l, const char *s)
{
    char **v = realloc(l->v, (l->n + 1) * sizeof(char *));
    char *d = strdup(s);
    if (!v || !d)
        fatal("out of memory");
    l->v = v;
    l->v[l->n++] = d;
}

static void free_strlist(struct cfg_strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
}

void cfg_route_clear(struct cfg_route *r)
{
    free(r->name);
    free_strlist(&r->sni);
    free_strlist(&r->alpn);
    free_strlist(&r->host);
    free_strlist(&r->listeners);
    free(r->path);
    free(r->ufrag);
    free_strlist(&r->ws_protocol);
    free(r->mqtt_client);
}

void cfg_tls_clear(struct cfg_tls *t)
{
    free(t->name);
    free_strlist(&t->certs);
    free_strlist(&t->keys);
    free_strlist(&t->names);
    free(t->ciphers);
    free(t->ciphersuites);
}

void cfg_free(struct cfg *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nlisteners; i++) {
        free(c->listeners[i].name);
        free(c->listeners[i].addrs.v);
        free(c->listeners[i].proxy_from.v);
    }
    for (size_t i = 0; i < c->nbackends; i++) {
        struct cfg_backend *b = &c->backends[i];
        for (size_t k = 0; b->ufrag_prefix && k < b->servers.n; k++)
            free(b->ufrag_prefix[k]);
        free(b->ufrag_prefix);
        free(b->health_path);
        free(b->name);
        free(b->servers.v);
    }
    free(c->user);
    free(c->group);
    free(c->admin.v);
    free_strlist(&c->admin_hosts);
    free_strlist(&c->admin_origins);
    free_strlist(&c->krelay_devices);
    free(c->admin_token);
    for (size_t i = 0; i < c->nroutes; i++)
        cfg_route_clear(&c->routes[i]);
    for (size_t i = 0; i < c->ntls; i++)
        cfg_tls_clear(&c->tls[i]);
    free(c->tls);
    free(c->listeners);
    free(c->backends);
    free(c->routes);
    free(c->path);
    free(c);
}

const struct cfg_backend *cfg_backend_find(const struct cfg *c, const char *name)
{
    for (size_t i = 0; i < c->nbackends; i++)
        if (strcmp(c->backends[i].name, name) == 0)
            return &c->backends[i];
    return NULL;
}

const struct cfg_listener *cfg_listener_find(const struct cfg *c, const char *name)
{
    for (size_t i = 0; i < c->nlisteners; i++)
        if (strcmp(c->listeners[i].name, name) == 0)
            return &c->listeners[i];
    return NULL;
}
