/* Route selection: walks the snapshot's ordered rules (named rules in file order, then
 * the [route] class map) and returns the first whose every criterion matches. */
#include <string.h>
#include <strings.h>

#include "mux443/core/route.h"
#include "mux443/lib/ice.h"
#include "mux443/lib/names.h"

static bool any_name(const struct cfg_strlist *l, const char *name, size_t len)
{
    if (!len)
        return false;
    for (size_t i = 0; i < l->n; i++)
        if (name_match(l->v[i], name, len))
            return true;
    return false;
}

static bool any_alpn(const struct cfg_strlist *l, const struct probe_out *p)
{
    for (size_t i = 0; i < l->n; i++)
        if (probe_alpn_offers(p, l->v[i], strlen(l->v[i])))
            return true;
    return false;
}

static bool prefix(const char *pfx, const char *s, size_t len)
{
    size_t pl = strlen(pfx);
    return pl <= len && memcmp(pfx, s, pl) == 0;
}

/* True when one of the client's comma-separated Sec-WebSocket-Protocol values is in l. */
static bool any_ws_protocol(const struct cfg_strlist *l, const struct probe_out *p)
{
    size_t i = 0, len = p->ws_protocol_len;

    while (i < len) {
        size_t e = i;
        while (e < len && p->ws_protocol[e] != ',')
            e++;
        size_t s = i, t = e;
        while (s < t && (p->ws_protocol[s] == ' ' || p->ws_protocol[s] == '\t'))
            s++;
        while (t > s && (p->ws_protocol[t - 1] == ' ' || p->ws_protocol[t - 1] == '\t'))
            t--;
        for (size_t k = 0; k < l->n; k++)
            if (strlen(l->v[k]) == t - s && memcmp(l->v[k], p->ws_protocol + s, t - s) == 0)
                return true;
        i = e + 1;
    }
    return false;
}

/* tls_used: the client spoke TLS (a ClientHello being passed through, or terminated). */
static bool route_matches(const struct cfg_route *r, const struct probe_out *p, bool tls_used)
{
    if (r->inside_default)
        return false; /* chosen by route_inside_fallback only */
    if (r->classes ? !(r->classes & (1u << p->cls))
                   : (p->cls == CLASS_UNKNOWN || p->cls == CLASS_TIMEOUT))
        return false;
    if ((r->tls != TLSM_ANY && r->tls != TLSM_NO && !tls_used) || (r->tls == TLSM_NO && tls_used))
        return false;
    if (r->sni.n && !any_name(&r->sni, p->sni, p->sni_len))
        return false;
    if (r->alpn.n && !any_alpn(&r->alpn, p))
        return false;
    if (r->host.n && !any_name(&r->host, p->host, p->host_len))
        return false;
    if (r->path && !prefix(r->path, p->path, p->path_len))
        return false;
    if (r->ufrag && !prefix(r->ufrag, p->ufrag, p->ufrag_len))
        return false;
    if (r->ws_protocol.n && !any_ws_protocol(&r->ws_protocol, p))
        return false;
    if (r->mqtt_client && !prefix(r->mqtt_client, p->mqtt_client, p->mqtt_client_len))
        return false;
    return true;
}

const struct cfg_route *route_select(const struct cfg *c, const struct probe_out *p,
                                     enum route_via via)
{
    if (via == VIA_TERMINATED && (p->cls == CLASS_UNKNOWN || p->cls == CLASS_TIMEOUT))
        return NULL;
    for (size_t i = 0; i < c->nroutes; i++)
        if (route_matches(&c->routes[i], p, via == VIA_TERMINATED))
            return &c->routes[i];
    return NULL;
}

const struct cfg_route *route_tls_hello(const struct cfg *c, const struct probe_out *p,
                                        const struct cfg_tls **terminate)
{
    *terminate = NULL;
    for (size_t i = 0; i < c->nroutes; i++) {
        const struct cfg_route *r = &c->routes[i];
        if (r->map || !route_matches(r, p, true))
            continue;
        if (r->tls == TLSM_TERMINATE && !p->tls_sslv2)
            *terminate = route_cert_for(c, p->sni, p->sni_len);
        return r;
    }
    /* An SSLv2-format hello cannot be terminated (TLS 1.2+ only): pass it on. */
    if (!p->tls_sslv2 && (*terminate = route_cert_for(c, p->sni, p->sni_len)))
        return NULL;
    return c->route_map[CLASS_TLS] ? c->route_map[CLASS_TLS] : c->route_map[CLASS_UNKNOWN];
}

const struct cfg_route *route_inside_fallback(const struct cfg *c,
                                              const struct cfg_route *terminated_by)
{
    return terminated_by ? terminated_by : c->tls_inside_default;
}

const struct cfg_tls *route_cert_for(const struct cfg *c, const char *sni, size_t len)
{
    /* Exact names win over wildcards, whatever the order of the sections. */
    for (int pass = 0; pass < 2 && len; pass++)
        for (size_t i = 0; i < c->ntls; i++)
            for (size_t k = 0; k < c->tls[i].names.n; k++) {
                const char *n = c->tls[i].names.v[k];
                if ((n[0] == '*') == (pass == 1) && name_match(n, sni, len))
                    return &c->tls[i];
            }
    return c->tls_default;
}

int route_ufrag_prefix(const struct cfg_backend *b, const char *u, size_t len)
{
    /* Only a well-formed ufrag is routed by it: it comes from the client. */
    if (!b->ufrag_prefix || !ufrag_valid(u, len))
        return -1;
    for (size_t i = 0; i < b->servers.n; i++) {
        const char *pfx = b->ufrag_prefix[i];
        if (pfx && prefix(pfx, u, len))
            return (int)i;
    }
    return -1;
}
