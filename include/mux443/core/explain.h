/* --explain: runs detection and routing over captured bytes and prints what was found and
 * the route that would be chosen, without any network I/O. */
#ifndef MUX443_CORE_EXPLAIN_H
#define MUX443_CORE_EXPLAIN_H

#include <stdio.h>

#include "mux443/conf/desc.h"

/* Reads the first bytes of a connection from `in` (up to the listener's preread_max) and
 * prints the analysis to `out`. `listener` names the listener (NULL: the first). Returns
 * 0, or 1 when the listener does not exist. */
int explain_run(const struct cfg *c, const char *listener, FILE *in, FILE *out);

#endif
