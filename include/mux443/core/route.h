/* Route selection: ordered rules, first match wins, like a firewall. Pure over the
 * snapshot and what the probes found. */
#ifndef MUX443_ROUTE_H
#define MUX443_ROUTE_H

#include <stdbool.h>

#include "mux443/conf/config.h"
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

/* A TLS ClientHello: a named rule that matches it wins (passthrough); otherwise, when a
 * certificate covers the SNI (or a default one exists), *terminate is set and NULL is
 * returned; otherwise the [route] tls entry, then [route] default, pass it through
 * (NULL if neither exists). */
const struct cfg_route *route_tls_hello(const struct cfg *c, const struct probe_out *p,
                                        const struct cfg_tls **terminate);

/* Case-insensitive host name match; "*.example.com" matches any name ending in
 * ".example.com" with at least one label before it. A trailing dot on name is ignored. */
bool route_name_match(const char *pattern, const char *name, size_t len);

#endif
