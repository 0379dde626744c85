/* Listening sockets: opened per worker with SO_REUSEPORT (the kernel spreads incoming
 * connections; for UDP, keeps each client address+port on one worker), and carried over from one
 * snapshot to the next when the address stays, so that a reload never closes a listener it keeps.
 */
#ifndef MUX443_RUNTIME_LISTENERS_H
#define MUX443_RUNTIME_LISTENERS_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>

#include "mux443/conf/desc.h"

struct lsock {
    ev_io io; /* the owner's watcher (io.data is the owner's) */
    int fd;
    bool udp;                       /* a UDP socket (listener `udp = yes`), read by runtime/udp.c */
    const struct cfg_listener *lst; /* in the configuration the set was opened for */
    const struct cfg_addr *addr;
    /* TCP, the owner's accept batching (workers.c): the most to accept per wakeup, and
     * the loop iteration at which the last batch used all of it (0: it did not). */
    unsigned accept_batch, full_at;
};

struct lsock_set {
    struct lsock *v;
    size_t n;
};

/* Opens the listening sockets of configuration c into *out, reusing the sockets of `old`
 * (NULL: none) bound to the same addresses; TCP ones get TCP_DEFER_ACCEPT unless a route
 * serves silent clients (on_timeout). False after logging when an address cannot
 * be bound (sockets opened for it are closed again, `old` is untouched). */
bool lsocks_open(struct lsock_set *out, const struct cfg *c, const struct lsock_set *old);

/* Frees set, closing its sockets that `keep` (NULL: none) does not also hold. */
void lsocks_drop(struct lsock_set *set, const struct lsock_set *keep);

#endif
