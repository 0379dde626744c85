/* A connection's life: accepted, moved from phase to phase by one driver (admission,
 * PROXY header, detection, TLS handshake, detection inside, route, connect or fan-out,
 * relay), and ended by one teardown function that logs why. */
#ifndef MUX443_CORE_CONN_H
#define MUX443_CORE_CONN_H

#include "mux443/core/session.h"

/* The pool's edge-triggered set of connection sockets and its run queue, on pool->loop
 * (set before). False (errno set) if the set cannot be created. */
bool conn_pool_init(struct conn_pool *p);
/* After its last connection closed. */
void conn_pool_fini(struct conn_pool *p);

/* Takes ownership of an accepted socket: admission (max_connections, the listener's and
 * the per-client limits), then the first phase, run at once (the first flight is read
 * before the socket is registered; the connection may even end before this returns). */
void conn_accept(struct conn_pool *pool, struct snap *s, const struct cfg_listener *lst, int fd,
                 const struct sockaddr *peer, socklen_t peerlen);

/* Ends a connection from outside its phases (drain timeout). Logs one line with the
 * reason, closes both sockets, frees everything; `c` is invalid afterwards. */
void conn_close(struct conn *c, bool failure, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
