/* Backend pools: choosing a server (round robin or source hash) and failing over to the
 * next one; non-blocking connects. */
#ifndef MUX443_BACKEND_H
#define MUX443_BACKEND_H

#include <sys/socket.h>

#include "mux443/conf/config.h"

/* Index of the first server to try for a new connection from `client`. */
unsigned backend_first(const struct cfg_backend *b, const struct sockaddr *client);

/* Index of the server to use on attempt `attempt` (0-based) when starting at `first`. */
unsigned backend_index(const struct cfg_backend *b, unsigned first, unsigned attempt);

/* Starts a non-blocking connect to `a`. Returns the socket (connect in progress or done),
 * or -1 with errno set when it failed at once (e.g. ECONNREFUSED, ENETUNREACH). */
int backend_connect(const struct cfg_addr *a);

#endif
