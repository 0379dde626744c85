/* The admin listener: a small HTTP/1.1 server on the main thread's loop for operators
 * and orchestrators (the endpoints are in admin_api.c). One request per connection. */
#ifndef MUX443_RUNTIME_ADMIN_H
#define MUX443_RUNTIME_ADMIN_H

#include <ev.h>

#include "mux443/conf/desc.h"

/* Binds `addr` and serves on `loop`. Returns 0, or -1 after logging. */
int admin_start(struct ev_loop *loop, const struct cfg_addr *addr);

#endif
