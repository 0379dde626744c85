/* The ICE ufrag table: server ufrag -> (backend, server), fed by registrations through
 * the admin API and by fan-out results. Process-wide (outside the config snapshot, so it
 * survives reloads); entries expire. Thread-safe. */
#ifndef MUX443_UFRAG_H
#define MUX443_UFRAG_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>

#include "mux443/conf/config.h"

#define UFRAG_MAX_ENTRIES 200000 /* registrations beyond this are refused (507-like 409) */

/* Looks u up for backend b. On a hit returns the server's index in b (the entry now counts
 * one more live connection: ufrag_release it), else -1. */
int ufrag_acquire(const char *u, const struct cfg_backend *b);
/* Records what a fan-out found (source "fanout"), counting one live connection. */
void ufrag_learn(const char *u, const struct cfg_backend *b, size_t idx);
/* A connection that held u closed: after the last one, the entry lives `grace` more. */
void ufrag_release(const char *u);

/* Starts the periodic expiry on the main loop with the snapshot's timings (call again on
 * reload). */
void ufrag_configure(struct ev_loop *loop, const struct cfg *c);

/* True when s is a valid ufrag: 4 to 256 ice-chars (RFC 8445: ALPHA DIGIT + /). */
bool ufrag_valid(const char *s, size_t len);
/* True when s is one or more ice-chars (e.g. a ufrag prefix). */
bool ufrag_charset(const char *s, size_t len);

#endif
