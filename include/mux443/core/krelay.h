/* The kernel relay (routes with relay = kernel, README "Kernel relay"): once both legs of
 * a connection are plain TCP, both sockets go into the sockmap and the kernel moves the
 * bytes (lib/sockmap.c); the relay phase (relay.c) keeps running for what the kernel
 * passes to user space, the ends of stream and the idle timeout. A watchdog per worker
 * bounds what the kernel holds for receivers that do not read. */
#ifndef MUX443_CORE_KRELAY_H
#define MUX443_CORE_KRELAY_H

#include <stdbool.h>

#include "mux443/conf/desc.h"
#include "mux443/core/session.h"

/* At start, still privileged: loads the program when a route has relay = kernel. Logs one
 * line: ready, or why not (those routes then relay in user space). */
void krelay_init(const struct cfg *cfg);

/* At exit: unloads it. */
void krelay_fini(void);

/* Entering the relay phase: hands the connection to the kernel when its route asks for it
 * and both legs are plain TCP; otherwise (or when the kernel refuses) nothing changes. */
void krelay_start(struct conn *c);

/* After each relay step: lets the kernel move a leg's bytes once user space has passed on
 * all it was given. */
void krelay_after(struct conn *c);

/* Leg l's socket needs no read interest: the kernel moves its bytes and an end of stream
 * is reported apart. */
bool krelay_quiet(const struct leg *l);

/* Leg l's socket is in the map with its end of stream watched apart: it may leave the
 * pool's set of sockets (conn.c). */
bool krelay_unwatched(const struct leg *l);
/* The kernel relay ended the connection (its watchdog, or a write error while it drained
 * the sockets before insertion; c->reason says why): the relay phase fails it. */
bool krelay_doomed(const struct conn *c);

/* May from's end of stream go to its peer: has the peer socket taken every byte the
 * kernel moved for it (else shutting it down would lose them)? True without kernel relay. */
bool krelay_fin_ready(const struct leg *from);

/* At close, before the close line: adds the kernel's byte counts to the legs' and takes
 * the sockets out of the map. */
void krelay_stop(struct conn *c);

#endif
