/* The ICE ufrag table: (backend, server ufrag) -> server, fed by registrations through
 * the admin API and by fan-out results. Process-wide and outside the configuration
 * snapshots (so it survives reloads); entries expire. Thread-safe: striped locks, and no
 * lock is held while a listing is formatted. */
#ifndef MUX443_STATE_UFRAG_H
#define MUX443_STATE_UFRAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "mux443/conf/desc.h"
#include "mux443/lib/ufrag_req.h"

#define UFRAG_MAX_ENTRIES 200000 /* registrations beyond this are refused (409) */

/* An entry as held by a connection: it stays valid (and its ufrag is not forgotten)
 * until ufrag_release, even if it is deleted or replaced meanwhile. */
struct ufrag_entry;

/* Looks ufrag u (len bytes, ufrag_valid) up for backend b. On a hit returns the entry,
 * counting one more live connection on it, and the server's index in b in *idx; NULL on
 * a miss (counted in the metrics). An entry whose server left b in a reload is dropped
 * when nothing holds it. */
struct ufrag_entry *ufrag_acquire(const struct cfg_backend *b, const char *u, size_t len,
                                  size_t *idx);
/* Records what a fan-out found: u belongs to server idx of b. Returns the entry with one
 * live connection counted (NULL when the table is full or out of memory). */
struct ufrag_entry *ufrag_learn(const struct cfg_backend *b, const char *u, size_t len, size_t idx);
/* A connection that held e closed: after the last one, the entry lives `grace` more
 * (a registration keeps a longer lifetime it was given). NULL ok. */
void ufrag_release(struct ufrag_entry *e);

/* Lifetimes: ttl of an entry without connections, grace after its last one closed. */
void ufrag_set_timing(double ttl, double grace);
/* Forgets entries that expired (called every second by the runtime). */
void ufrag_sweep(void);

/* Registers regs (already checked: each names a server of a balance = ufrag backend) all
 * or nothing. Returns false, registering nothing, when the table has no room for them. */
bool ufrag_register(const struct ufrag_reg *regs, size_t n);
/* Forgets ufrag u in every backend. Connections holding it keep their entry. Returns the
 * number of entries removed. */
size_t ufrag_unregister(const char *u, size_t len);
/* Entries in the table. */
size_t ufrag_count(void);
/* Writes the table as a JSON array. The table is copied one stripe at a time under that
 * stripe's lock and formatted with no lock held. */
void ufrag_list_json(FILE *f);

#endif
