/* Route selection: ordered rules, first match wins, like a firewall. Pure over the
 * snapshot and what the probes found. */
#ifndef MUX443_CORE_ROUTE_H
#define MUX443_CORE_ROUTE_H

#include <stdbool.h>

#include "mux443/conf/desc.h"
#include "mux443/lib/probe.h"

/* How the bytes being routed reached mux443. */
enum route_via {
    VIA_PLAIN,      /* plain text from the client */
    VIA_TERMINATED, /* plain text from inside TLS that mux443 terminated */
};

/* Returns the first route matching the probe result, NULL when none does. For VIA_PLAIN,
 * CLASS_UNKNOWN gives [route] default and CLASS_TIMEOUT [route] on_timeout (either may be
 * NULL); inside terminated TLS those two never route (the bytes are decrypted: what
 * waits behind `default` expects the client's own bytes), so NULL. For a ClientHello use
 * route_tls_hello instead. For VIA_TERMINATED, p carries the SNI and ALPN of the
 * ClientHello as well as what was found inside. */
const struct cfg_route *route_select(const struct cfg *c, const struct probe_out *p,
                                     enum route_via via);

/* A TLS ClientHello: a named rule that matches it wins: passthrough (it is returned), or
 * for tls = terminate, *terminate is set to the certificate for the SNI (NULL when none
 * covers it: the connection cannot be served) and the rule is returned, as the route of
 * what is inside that no class rule takes. Otherwise, when a certificate covers the SNI
 * (or a default one exists), *terminate is set and NULL is returned; otherwise the
 * [route] tls entry, then [route] default, pass it through (NULL if neither exists). */
const struct cfg_route *route_tls_hello(const struct cfg *c, const struct probe_out *p,
                                        const struct cfg_tls **terminate);

/* Inside terminated TLS, when route_select found nothing (the bytes were unrecognised,
 * silent, or of a class no rule takes): the tls = terminate rule that terminated the
 * connection, else [route] tls_default, else NULL (closed). */
const struct cfg_route *route_inside_fallback(const struct cfg *c,
                                              const struct cfg_route *terminated_by);

/* The certificate section serving `sni` (exact names first, then wildcards), else the
 * default one, else NULL. */
const struct cfg_tls *route_cert_for(const struct cfg *c, const char *sni, size_t len);

/* ICE-TCP to a balance = ufrag pool: the index of the server whose static ufrag_prefix
 * starts the server ufrag u, or -1 (also for a malformed ufrag). The daemon and
 * --explain both decide with this. */
int route_ufrag_prefix(const struct cfg_backend *b, const char *u, size_t len);

#endif
