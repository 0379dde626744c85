/* Loading a configuration for the daemon (file, certificates, activation) and SIGHUP:
 * a new snapshot is built and validated completely before anything changes; on success
 * every worker switches to it (connections keep theirs), on failure the old one stays. */
#ifndef MUX443_RUNTIME_RELOAD_H
#define MUX443_RUNTIME_RELOAD_H

#include <ev.h>
#include <stdio.h>

#include "mux443/core/snapshot.h"

/* Loads and checks `path`, certificates included, without making it live (mux443 -t,
 * --explain). NULL after writing every error to errs. */
struct cfg *reload_describe(const char *path, FILE *errs);
/* The same, then activated. */
struct snap *reload_load(const char *path, FILE *errs);

/* Remembers the running snapshot and the file to reload. */
void reload_init(struct snap *s, const char *path, struct ev_loop *main_loop);
/* SIGHUP: load, validate, activate, hand over. Logs the outcome. */
void reload_now(void);
/* The snapshot new connections get (a reference: snap_unref it). */
struct snap *reload_current(void);
/* Drops the running snapshot (at exit). */
void reload_fini(void);

#endif
