/* Backend pools: which server a new connection tries first (round robin shared by all
 * workers, or a keyed hash of the client address so that a client keeps its server),
 * and the failover order after it. */
#ifndef MUX443_CORE_BACKEND_H
#define MUX443_CORE_BACKEND_H

#include <sys/socket.h>

#include "mux443/core/snapshot.h"

/* Index of the first server of b (in snapshot s) to try for a new connection from
 * `client`. */
unsigned backend_first(const struct snap *s, const struct cfg_backend *b,
                       const struct sockaddr *client);

/* Index of the server to use on attempt `attempt` (0-based) when starting at `first`. */
unsigned backend_index(const struct cfg_backend *b, unsigned first, unsigned attempt);

#endif
