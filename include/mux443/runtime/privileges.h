/* Dropping root after the listening sockets are bound. Capabilities are per thread in
 * Linux: the main thread keeps CAP_NET_BIND_SERVICE and CAP_DAC_READ_SEARCH permitted
 * (for reloads), never effective while serving; worker threads keep none. */
#ifndef MUX443_RUNTIME_PRIVILEGES_H
#define MUX443_RUNTIME_PRIVILEGES_H

#include "mux443/conf/desc.h"

/* Becomes c->user (and c->group) when running as root; exits when that fails or root
 * could be regained. Also trims the bounding set to the two capabilities, sets
 * no_new_privs and leaves no capability effective. Started without root (a container
 * with a file capability), keeps what it was given, not effective. Started as root
 * without `user =`: nothing changes. Call before any other thread exists. */
void privileges_drop(const struct cfg *c);

/* Around what a reload reads and binds, on the main thread: the permitted capabilities
 * become effective, then none again. No-ops unless privileges_drop limited them. */
void privileges_raise(void);
void privileges_lower(void);

/* First thing in a thread started after privileges_drop: no capability at all. */
void privileges_thread(void);

#endif
