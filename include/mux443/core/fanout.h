/* ICE-TCP fan-out: for a ufrag nobody registered, offer the client's first Binding
 * request to every server of the pool and keep the one that answers with a Binding
 * success for that transaction; the others are closed. */
#ifndef MUX443_FANOUT_H
#define MUX443_FANOUT_H

#include <stddef.h>

struct conn;
struct fanout;

/* Starts a fan-out for c (state CONN_CONNECTING, client pend holding the first frame of
 * frame_len bytes). Ends in relay_start(c) with the winner as backend, or conn_close. */
void fanout_start(struct conn *c, size_t frame_len);
/* Called by conn_close: closes the candidate connections. */
void fanout_free(struct fanout *f);

#endif
