/* Workers: one thread, one libev loop, one set of SO_REUSEPORT listening sockets and
 * one connection pool each. The main thread hands them new snapshots (with their
 * sockets) and the order to drain through a mailbox. */
#ifndef MUX443_RUNTIME_WORKERS_H
#define MUX443_RUNTIME_WORKERS_H

#include <ev.h>
#include <stdbool.h>

#include "mux443/core/snapshot.h"
#include "mux443/runtime/listeners.h"

/* Creates `s->cfg->workers` workers with their listening sockets. Returns 0, or -1
 * after logging what could not be bound. */
int workers_init(struct snap *s);
/* Starts the threads; when every worker has drained, main_loop's ev_run returns. */
void workers_start(struct ev_loop *main_loop);
/* Joins the threads and frees everything (after main_loop returned). */
void workers_free(void);

unsigned workers_count(void);
/* "ADDR, ADDR" of worker 0's listening sockets, for the start-up log. */
void workers_addresses(char *dst, size_t cap);

/* Reload, in two steps so that nothing changes unless every step can be done: open each
 * worker's sockets for s (NULL after logging when one cannot be bound, or when the
 * previous reload is still being applied), then hand them over. */
struct lsock_set *workers_prepare(const struct snap *s);
void workers_post(struct snap *s, struct lsock_set *sets); /* takes sets */

/* Stops accepting and lets connections finish for up to drain_timeout. */
void workers_drain(void);

#endif
