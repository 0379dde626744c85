/* The relay phase: moves bytes between the two legs with back-pressure (a leg is read
 * only while its previous bytes have all been written to the peer), explicit half-close,
 * lazy buffers, splice(2) for plain bulk, and the idle timeout. Knows nothing of TLS:
 * legs have transports. */
#ifndef MUX443_CORE_RELAY_H
#define MUX443_CORE_RELAY_H

#include "mux443/core/session.h"

/* Entering the phase: arms the idle deadline (the route's idle_timeout). */
void relay_arm(struct conn *c);

/* CONN_RELAY. l is the leg whose socket had `revents`; l NULL and no event: the phase was
 * just entered (or resumed): what waits in the buffers goes out first, then what a
 * transport already holds. EV_TIMER: the idle deadline. Never DONE: END when both
 * directions have ended ("done"), a peer reset or the idle timeout; FAIL on errors. */
enum step relay_step(struct conn *c, struct leg *l, int revents);

/* The socket events leg l waits for: read iff it has no bytes waiting for its peer (and
 * has not ended), write iff its peer has bytes for it, plus what its transport wants. */
int relay_interest(const struct leg *l);

/* Closes the leg's splice pipe, if any. */
void relay_release_pipe(struct leg *l);

#endif
