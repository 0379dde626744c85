/* The status page's memory: rings of samples and events. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "mux443/state/history.h"
#include "mux443/state/metrics.h"

static struct history_sample samples[HISTORY_LEN];
static size_t nsamples, next_sample; /* main thread only */
static unsigned long long last_accepted;
static struct {
    const struct mx_route *r; /* registry entries are never freed: the pointer is the key */
    unsigned long long last;
    bool seen;
} slots[HISTORY_ROUTES];

static pthread_mutex_t events_lock = PTHREAD_MUTEX_INITIALIZER;
static struct history_fanout fanouts[HISTORY_EVENTS];
static struct history_reload reloads[HISTORY_EVENTS];
static size_t nfanouts, nreloads; /* events recorded so far; the ring holds the latest */

int history_route_slot(const struct mx_route *r)
{
    for (int i = 0; i < HISTORY_ROUTES; i++)
        if (slots[i].r == r)
            return i;
    return -1;
}

/* The slot of r, taken from a route no longer sampled if need be (its series restarts). */
static int route_slot(const struct mx_route *r)
{
    int i = history_route_slot(r);
    if (i >= 0)
        return i;
    for (i = 0; i < HISTORY_ROUTES; i++)
        if (!slots[i].r || !slots[i].seen) {
            slots[i].r = r;
            slots[i].last = atomic_load(&((struct mx_route *)r)->conns);
            for (size_t k = 0; k < HISTORY_LEN; k++)
                samples[k].route[i] = 0;
            return i;
        }
    return -1;
}

void history_sample(struct mx_route *const *routes, size_t nroutes)
{
    struct history_sample *s = &samples[next_sample];
    unsigned long long acc = atomic_load(&mx.accepted);

    for (int i = 0; i < HISTORY_ROUTES; i++) {
        slots[i].seen = false;
        s->route[i] = 0;
    }
    for (size_t k = 0; k < nroutes; k++)
        if (history_route_slot(routes[k]) >= 0)
            slots[history_route_slot(routes[k])].seen = true;
    for (size_t k = 0; k < nroutes; k++) {
        int i = route_slot(routes[k]);
        if (i < 0)
            continue;
        unsigned long long n = atomic_load(&routes[k]->conns);
        s->route[i] = (uint32_t)(n - slots[i].last);
        slots[i].last = n;
        slots[i].seen = true;
    }

    for (int i = 0; i < LABEL_COUNT; i++) {
        long long v = atomic_load(&mx.conns_open[i]);
        s->open[i] = v < 0 ? 0 : (uint32_t)v;
    }
    s->accepted = nsamples ? (uint32_t)(acc - last_accepted) : 0;
    last_accepted = acc;
    next_sample = (next_sample + 1) % HISTORY_LEN;
    if (nsamples < HISTORY_LEN)
        nsamples++;
}

size_t history_samples(struct history_sample *out, size_t max)
{
    size_t n = nsamples < max ? nsamples : max;
    for (size_t i = 0; i < n; i++)
        out[i] = samples[(next_sample + HISTORY_LEN - n + i) % HISTORY_LEN];
    return n;
}

void history_fanout(const char *backend, const char *ufrag, const char *winner)
{
    struct history_fanout e = {.at = time(NULL)};
    snprintf(e.backend, sizeof(e.backend), "%s", backend);
    snprintf(e.ufrag, sizeof(e.ufrag), "%s", ufrag ? ufrag : "");
    snprintf(e.winner, sizeof(e.winner), "%s", winner ? winner : "");
    pthread_mutex_lock(&events_lock);
    fanouts[nfanouts++ % HISTORY_EVENTS] = e;
    pthread_mutex_unlock(&events_lock);
}

void history_reload(bool ok, const char *first_error)
{
    struct history_reload e = {.at = time(NULL), .ok = ok};
    snprintf(e.error, sizeof(e.error), "%s", first_error ? first_error : "");
    pthread_mutex_lock(&events_lock);
    reloads[nreloads++ % HISTORY_EVENTS] = e;
    pthread_mutex_unlock(&events_lock);
}

/* The latest events of a ring, newest first. */
#define LATEST(ring, count, out, max)                                                              \
    do {                                                                                           \
        pthread_mutex_lock(&events_lock);                                                          \
        size_t have = (count) < HISTORY_EVENTS ? (count) : HISTORY_EVENTS;                         \
        size_t n = have < (max) ? have : (max);                                                    \
        for (size_t i = 0; i < n; i++)                                                             \
            (out)[i] = (ring)[((count)-1 - i) % HISTORY_EVENTS];                                   \
        pthread_mutex_unlock(&events_lock);                                                        \
        return n;                                                                                  \
    } while (0)

size_t history_fanouts(struct history_fanout *out, size_t max)
{
    LATEST(fanouts, nfanouts, out, max);
}

size_t history_reloads(struct history_reload *out, size_t max)
{
    LATEST(reloads, nreloads, out, max);
}
