/* The ICE ufrag table: a hash table keyed (under the process's random key) by the ufrag,
 * chained entries told apart by backend, striped over locks so that workers looking up
 * different ufrags rarely wait for each other, and reference-counted entries so that a
 * connection's handle never points at somebody else's entry. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mux443/lib/hash.h"
#include "mux443/state/metrics.h"
#include "mux443/state/ufrag.h"

#define BUCKETS 8192
#define STRIPES 64 /* bucket b is under lock b % STRIPES */

struct ufrag_entry {
    char backend[NAME_MAX_LEN + 1], server[ADDR_TEXT_MAX]; /* by name: survives reloads */
    bool learnt;                                           /* by fan-out (else registered) */
    bool linked;    /* in the table; false once deleted (then freed at refs 0) */
    unsigned refs;  /* live connections holding it */
    double expires; /* monotonic seconds; meaningful when refs == 0 */
    unsigned bucket;
    struct ufrag_entry *next;
    size_t len;
    char ufrag[]; /* len bytes + NUL */
};

static pthread_mutex_t locks[STRIPES];
static pthread_once_t once = PTHREAD_ONCE_INIT;
static struct ufrag_entry *table[BUCKETS];
static atomic_size_t nentries;
static _Atomic double ttl = 600, grace = 30;

static void init_locks(void)
{
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_init(&locks[i], NULL);
}

static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned bucket_of(const char *u, size_t len)
{
    return (unsigned)(hash_bytes(u, len) % BUCKETS);
}

static pthread_mutex_t *lock_bucket(unsigned b)
{
    pthread_once(&once, init_locks);
    pthread_mutex_lock(&locks[b % STRIPES]);
    return &locks[b % STRIPES];
}

/* The slot holding backend's entry for u in bucket b (caller holds the lock); *slot is
 * NULL when there is none. */
static struct ufrag_entry **find(unsigned b, const char *backend, const char *u, size_t len)
{
    struct ufrag_entry **pp = &table[b];
    while (*pp && !((*pp)->len == len && memcmp((*pp)->ufrag, u, len) == 0 &&
                    strcmp((*pp)->backend, backend) == 0))
        pp = &(*pp)->next;
    return pp;
}

/* Takes the entry at *pp out of the table (caller holds the lock); frees it unless a
 * connection still holds it. */
static void unlink_entry(struct ufrag_entry **pp)
{
    struct ufrag_entry *e = *pp;
    *pp = e->next;
    e->next = NULL;
    e->linked = false;
    atomic_fetch_sub(&nentries, 1);
    atomic_store(&mx.ufrag_entries, (long long)atomic_load(&nentries));
    if (!e->refs)
        free(e);
}

/* Creates or updates the entry for (backend, u); connections holding it keep holding
 * it. Caller holds the lock. NULL when out of memory. */
static struct ufrag_entry *put(unsigned b, const char *backend, const char *server, const char *u,
                               size_t len, bool learnt, double expires)
{
    struct ufrag_entry *e = *find(b, backend, u, len);
    if (!e) {
        if (!(e = calloc(1, sizeof(*e) + len + 1)))
            return NULL;
        memcpy(e->ufrag, u, len);
        e->len = len;
        snprintf(e->backend, sizeof(e->backend), "%s", backend);
        e->bucket = b;
        e->linked = true;
        e->next = table[b];
        table[b] = e;
        atomic_fetch_add(&nentries, 1);
        atomic_store(&mx.ufrag_entries, (long long)atomic_load(&nentries));
    }
    snprintf(e->server, sizeof(e->server), "%s", server);
    e->learnt = learnt;
    e->expires = expires;
    return e;
}

struct ufrag_entry *ufrag_acquire(const struct cfg_backend *b, const char *u, size_t len,
                                  size_t *idx)
{
    unsigned bk = bucket_of(u, len);
    struct ufrag_entry *hit = NULL;
    pthread_mutex_t *l = lock_bucket(bk);
    struct ufrag_entry **pp = find(bk, b->name, u, len), *e = *pp;
    if (e) {
        for (size_t i = 0; i < b->servers.n; i++)
            if (strcmp(b->servers.v[i].text, e->server) == 0) {
                *idx = i;
                hit = e;
                break;
            }
        if (hit)
            e->refs++;
        else if (!e->refs)
            unlink_entry(pp); /* its server left the pool in a reload */
    }
    pthread_mutex_unlock(l);
    if (hit)
        MX_INC(mx.ufrag_hits);
    else
        MX_INC(mx.ufrag_misses);
    return hit;
}

struct ufrag_entry *ufrag_learn(const struct cfg_backend *b, const char *u, size_t len, size_t idx)
{
    unsigned bk = bucket_of(u, len);
    struct ufrag_entry *e = NULL;
    if (atomic_load(&nentries) >= UFRAG_MAX_ENTRIES)
        return NULL;
    pthread_mutex_t *l = lock_bucket(bk);
    e = put(bk, b->name, b->servers.v[idx].text, u, len, true, now_mono() + ttl);
    if (e)
        e->refs++;
    pthread_mutex_unlock(l);
    return e;
}

void ufrag_release(struct ufrag_entry *e)
{
    if (!e)
        return;
    pthread_mutex_t *l = lock_bucket(e->bucket);
    if (e->refs && --e->refs == 0) {
        if (!e->linked) {
            free(e); /* deleted while held: nobody else knows it */
        } else {
            /* A registration keeps the lifetime it was given; otherwise grace from now. */
            double until = now_mono() + grace;
            if (e->expires < until)
                e->expires = until;
        }
    }
    pthread_mutex_unlock(l);
}

void ufrag_set_timing(double t, double g)
{
    ttl = t;
    grace = g;
}

void ufrag_sweep(void)
{
    double now = now_mono();
    for (unsigned s = 0; s < STRIPES; s++) {
        pthread_mutex_t *l = lock_bucket(s);
        for (unsigned b = s; b < BUCKETS; b += STRIPES) {
            struct ufrag_entry **pp = &table[b];
            while (*pp) {
                if (!(*pp)->refs && (*pp)->expires <= now)
                    unlink_entry(pp);
                else
                    pp = &(*pp)->next;
            }
        }
        pthread_mutex_unlock(l);
    }
}

bool ufrag_register(const struct ufrag_reg *regs, size_t n)
{
    /* Approximate (updates need no room, and workers may learn meanwhile): refuse rather
     * than half-do. */
    if (n > UFRAG_MAX_ENTRIES - atomic_load(&nentries))
        return false;
    double now = now_mono();
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(regs[i].ufrag);
        unsigned bk = bucket_of(regs[i].ufrag, len);
        pthread_mutex_t *l = lock_bucket(bk);
        put(bk, regs[i].backend, regs[i].server, regs[i].ufrag, len, false,
            now + (regs[i].ttl > 0 ? regs[i].ttl : ttl));
        pthread_mutex_unlock(l);
    }
    return true;
}

size_t ufrag_unregister(const char *u, size_t len)
{
    unsigned bk = bucket_of(u, len);
    size_t n = 0;
    pthread_mutex_t *l = lock_bucket(bk);
    struct ufrag_entry **pp = &table[bk];
    while (*pp) {
        if ((*pp)->len == len && memcmp((*pp)->ufrag, u, len) == 0) {
            unlink_entry(pp);
            n++;
        } else {
            pp = &(*pp)->next;
        }
    }
    pthread_mutex_unlock(l);
    return n;
}

size_t ufrag_count(void)
{
    return atomic_load(&nentries);
}

/* What a listing shows of an entry, copied out under the lock. */
struct row {
    char *ufrag;
    char backend[NAME_MAX_LEN + 1], server[ADDR_TEXT_MAX];
    bool learnt;
    unsigned refs;
    double expires;
};

/* Nothing here needs JSON escaping: ufrags enter the table only as ice-chars (checked by
 * the admin API and, for fan-outs, by the connection code), backend names and addresses
 * were validated by the configuration loader. */
void ufrag_list_json(FILE *f)
{
    double now = now_mono();
    bool first = true;
    fprintf(f, "[");
    for (unsigned s = 0; s < STRIPES; s++) {
        struct row *rows = NULL;
        size_t n = 0, cap = 0;
        bool oom = false;
        pthread_mutex_t *l = lock_bucket(s);
        for (unsigned b = s; b < BUCKETS && !oom; b += STRIPES)
            for (struct ufrag_entry *e = table[b]; e && !oom; e = e->next) {
                if (n == cap) {
                    struct row *r = realloc(rows, (cap = cap ? cap * 2 : 64) * sizeof(*r));
                    if (!r) {
                        oom = true;
                        break;
                    }
                    rows = r;
                }
                struct row *r = &rows[n];
                if (!(r->ufrag = strdup(e->ufrag))) {
                    oom = true;
                    break;
                }
                memcpy(r->backend, e->backend, sizeof(r->backend));
                memcpy(r->server, e->server, sizeof(r->server));
                r->learnt = e->learnt;
                r->refs = e->refs;
                r->expires = e->expires;
                n++;
            }
        pthread_mutex_unlock(l);
        for (size_t i = 0; i < n; i++) {
            struct row *r = &rows[i];
            fprintf(f,
                    "%s\n{\"ufrag\":\"%s\",\"backend\":\"%s\",\"server\":\"%s\",\"source\":\"%s\","
                    "\"connections\":%u,\"expires_in\":%.0f}",
                    first ? "" : ",", r->ufrag, r->backend, r->server,
                    r->learnt ? "fanout" : "registered", r->refs,
                    r->refs ? -1.0 : r->expires - now);
            first = false;
            free(r->ufrag);
        }
        free(rows);
    }
    fprintf(f, "\n]\n");
}
