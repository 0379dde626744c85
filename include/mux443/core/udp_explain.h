/* --explain --udp: what the UDP relay would do with a captured first datagram. */
#ifndef MUX443_CORE_UDP_EXPLAIN_H
#define MUX443_CORE_UDP_EXPLAIN_H

#include <stdio.h>

#include "mux443/conf/desc.h"

/* Reads one datagram (up to 64 KiB) from `in`, prints its kind, STUN fields, the side of
 * a flow it belongs to, and the route and server a new flow would take. Returns 0. */
int udp_explain_run(const struct cfg *c, const char *listener, FILE *in, FILE *out);

#endif
