/* Active health checks of backend servers, run on the main thread's loop: a TCP connect,
 * a STUN Binding request, or an HTTP GET, with rise/fall hysteresis. The verdict is the
 * server's `down` flag in the metrics registry, which workers read when choosing. */
#ifndef MUX443_RUNTIME_HEALTH_H
#define MUX443_RUNTIME_HEALTH_H

#include <ev.h>

#include "mux443/core/snapshot.h"

/* (Re)starts the checks for snapshot s (NULL: stop them all). Servers without checks are
 * put back in service. */
void health_configure(struct ev_loop *loop, struct snap *s);

#endif
