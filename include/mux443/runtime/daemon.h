/* Running: bind (workers), drop privileges, start the workers, and run the main thread's
 * loop — signals (SIGHUP reload, SIGTERM/SIGINT drain), the admin listener, health
 * checks and the ufrag table's expiry — until every worker has drained. */
#ifndef MUX443_RUNTIME_DAEMON_H
#define MUX443_RUNTIME_DAEMON_H

#include "mux443/core/snapshot.h"

/* Runs snapshot s (loaded from path) until drained; takes over the caller's reference to
 * s. Returns the exit status: 0 after a drain, 3 when a listener or the admin address
 * cannot be bound. */
int daemon_run(struct snap *s, const char *path);

#endif
