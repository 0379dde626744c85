/* ICE-TCP fan-out: for a ufrag nobody registered, offer the client's first Binding
 * request to every server of the pool and keep the one that answers with a Binding
 * success for that transaction; the others are closed. */
#ifndef MUX443_CORE_FANOUT_H
#define MUX443_CORE_FANOUT_H

#include <stddef.h>

#include "mux443/core/session.h"

/* Before entering CONN_FANOUT: the client's first frame is the first frame_len bytes of
 * its preread buffer. */
void fanout_prepare(struct conn *c, size_t frame_len);

/* CONN_FANOUT: starts the candidates when entered; DONE once a server won (it is the
 * backend leg now, its answer waiting for the client, the first frame consumed); FAIL
 * when every candidate lost or fanout_timeout passed. Candidate events call
 * conn_wake. */
enum step fanout_step(struct conn *c, int revents);

/* Closes the candidates and frees the fan-out (conn_close). */
void fanout_free(struct conn *c);

#endif
