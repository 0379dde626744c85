/* A short memory for the status page: per-second samples of the open connections by
 * class and of the connections accepted (the last HISTORY_LEN seconds), the latest
 * ICE-TCP fan-outs and the latest reloads. Samples are taken on the main thread; fan-outs
 * are recorded by the workers (under a lock: rare events). */
#ifndef MUX443_STATE_HISTORY_H
#define MUX443_STATE_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "mux443/lib/addr.h"
#include "mux443/lib/classes.h"
#include "mux443/lib/names.h"

#define HISTORY_LEN    300 /* seconds of samples */
#define HISTORY_EVENTS 8
#define HISTORY_ROUTES 32 /* routes followed; more are shown without a sparkline */

struct mx_route;

struct history_sample {
    uint32_t open[LABEL_COUNT];     /* mux443_connections_open by class */
    uint32_t accepted;              /* connections accepted during that second */
    uint32_t route[HISTORY_ROUTES]; /* connections per route during that second */
};

/* Takes one sample of mx and of the given routes (those of the running snapshot) (main
 * thread, once a second). A route keeps its slot while it is given; a slot given up is
 * reused. */
void history_sample(struct mx_route *const *routes, size_t nroutes);
/* The slot of a route in history_sample.route[], or -1 if it has none. */
int history_route_slot(const struct mx_route *r);
/* Copies up to max samples, oldest first; returns how many. */
size_t history_samples(struct history_sample *out, size_t max);

struct history_fanout {
    time_t at;
    char ufrag[64]; /* a valid ufrag (ice-chars) or "" */
    char backend[NAME_MAX_LEN + 1];
    char winner[ADDR_TEXT_MAX]; /* "" when no server took it */
};
/* Records a fan-out's outcome (winner NULL: it failed). Thread-safe. */
void history_fanout(const char *backend, const char *ufrag, const char *winner);

struct history_reload {
    time_t at;
    bool ok;
    char error[256]; /* the first error line of a failed reload */
};
/* Records a reload's outcome (main thread). */
void history_reload(bool ok, const char *first_error);

/* Copy the latest events, newest first; return how many. Thread-safe. */
size_t history_fanouts(struct history_fanout *out, size_t max);
size_t history_reloads(struct history_reload *out, size_t max);

#endif
