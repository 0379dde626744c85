/* Route selection: ordered rules, first match wins, like a firewall. Pure over the
 * snapshot and what the probes found. */
#ifndef MUX443_ROUTE_H
#define MUX443_ROUTE_H

#include <stdbool.h>

#include "mux443/config.h"
#include "mux443/probe.h"

/* Returns the first route matching the probe result, NULL when none does. CLASS_UNKNOWN
 * gives [route] default and CLASS_TIMEOUT [route] on_timeout (either may be NULL). */
const struct cfg_route *route_select(const struct cfg *c, const struct probe_out *p);

/* Case-insensitive host name match; "*.example.com" matches any name ending in
 * ".example.com" with at least one label before it. A trailing dot on name is ignored. */
bool route_name_match(const char *pattern, const char *name, size_t len);

#endif
