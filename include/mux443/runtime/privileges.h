/* Dropping root after the listening sockets are bound. */
#ifndef MUX443_RUNTIME_PRIVILEGES_H
#define MUX443_RUNTIME_PRIVILEGES_H

#include "mux443/conf/desc.h"

/* Becomes c->user (and c->group) when running as root; exits when that fails or root
 * could be regained. Nothing to do without `user =`. */
void privileges_drop(const struct cfg *c);

#endif
