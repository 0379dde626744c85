/* --explain: runs detection and routing over captured bytes and prints what was found and
 * the route that would be chosen, without any network I/O. */
#ifndef MUX443_CORE_EXPLAIN_H
#define MUX443_CORE_EXPLAIN_H

#include <stdio.h>

#include "mux443/conf/desc.h"
#include "mux443/lib/probe.h"

/* Reads the first bytes of a connection from `in` (up to the listener's preread_max) and
 * prints the analysis to `out`. `listener` names the listener (NULL: the first). Returns
 * 0, or 1 when the listener does not exist. */
int explain_run(const struct cfg *c, const char *listener, FILE *in, FILE *out);

/* Prints the route rt (NULL: none matched) chosen for what p found, its backend's
 * servers, and for a balance = ufrag pool the server the ufrag leads to. */
void explain_route(FILE *out, const struct cfg *c, const struct cfg_route *rt,
                   const struct probe_out *p);

#endif
