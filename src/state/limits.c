/* Admission counters, and per-client counts (connections, fan-outs in progress): one
 * hash table per kind (keyed hash: clients choose their addresses, not their buckets)
 * striped over several locks so that workers accepting at once rarely wait for each
 * other. Entries vanish at 0. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mux443/lib/addr.h"
#include "mux443/lib/hash.h"
#include "mux443/state/limits.h"

#define STRIPES 64
#define BUCKETS 4096 /* per table; chains grow past that */

struct entry {
    uint8_t addr[16];
    unsigned count;
    time_t last_log;
    struct entry *next;
};

struct stripe {
    pthread_mutex_t lock;
    struct entry *b[BUCKETS / STRIPES];
};

static struct stripe tables[LIMITS_KINDS][STRIPES];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init(void)
{
    for (int k = 0; k < LIMITS_KINDS; k++)
        for (int i = 0; i < STRIPES; i++)
            pthread_mutex_init(&tables[k][i].lock, NULL);
}

bool limits_admit(atomic_uint *open, unsigned max)
{
    unsigned cur = atomic_load_explicit(open, memory_order_relaxed);
    do {
        if (max && cur >= max)
            return false;
    } while (!atomic_compare_exchange_weak(open, &cur, cur + 1));
    return true;
}

void limits_leave(atomic_uint *open)
{
    atomic_fetch_sub(open, 1);
}

static uint32_t hash(const uint8_t k[16])
{
    return (uint32_t)hash_bytes(k, 16);
}

bool limits_client_key(const struct sockaddr *sa, unsigned v4_prefix, unsigned v6_prefix,
                       uint8_t key[16], char *text, size_t cap)
{
    if (!addr_key(sa, key))
        return false;
    /* An IPv4 client of a dual-stack listener arrives v4-mapped: still IPv4. */
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    bool v4 = memcmp(key, mapped, sizeof(mapped)) == 0;
    addr_mask(key, v4 ? 96 + v4_prefix : v6_prefix);
    if (text) {
        char ip[INET6_ADDRSTRLEN];
        inet_ntop(v4 ? AF_INET : AF_INET6, v4 ? key + 12 : key, ip, sizeof(ip));
        snprintf(text, cap, "%s/%u", ip, v4 ? v4_prefix : v6_prefix);
    }
    return true;
}

bool limits_client_acquire(enum limits_kind kind, const uint8_t k[16], unsigned max, bool *log_it)
{
    *log_it = false;
    if (!max)
        return true;
    pthread_once(&once, init);
    struct stripe *stripes = tables[kind];
    uint32_t h = hash(k);
    unsigned s = h % STRIPES, bk = (h / STRIPES) % (BUCKETS / STRIPES);
    bool ok = true;

    pthread_mutex_lock(&stripes[s].lock);
    struct entry *e = stripes[s].b[bk];
    while (e && memcmp(e->addr, k, 16) != 0)
        e = e->next;
    if (!e && (e = calloc(1, sizeof(*e)))) {
        memcpy(e->addr, k, 16);
        e->next = stripes[s].b[bk];
        stripes[s].b[bk] = e;
    }
    if (!e) {
        ok = true; /* out of memory: do not refuse for that */
    } else if (e->count >= max) {
        time_t now = time(NULL);
        ok = false;
        if (now - e->last_log >= LIMITS_LOG_INTERVAL) {
            e->last_log = now;
            *log_it = true;
        }
    } else {
        e->count++;
    }
    pthread_mutex_unlock(&stripes[s].lock);
    return ok;
}

void limits_client_release(enum limits_kind kind, const uint8_t k[16])
{
    pthread_once(&once, init);
    struct stripe *stripes = tables[kind];
    uint32_t h = hash(k);
    unsigned s = h % STRIPES, bk = (h / STRIPES) % (BUCKETS / STRIPES);

    pthread_mutex_lock(&stripes[s].lock);
    struct entry **pp = &stripes[s].b[bk];
    while (*pp && memcmp((*pp)->addr, k, 16) != 0)
        pp = &(*pp)->next;
    struct entry *e = *pp;
    /* Refusals only happen while the address holds max connections, so its entry (and
     * last_log) lives exactly as long as there is something to refuse. */
    if (e && e->count > 0 && --e->count == 0) {
        *pp = e->next;
        free(e);
    }
    pthread_mutex_unlock(&stripes[s].lock);
}

static atomic_size_t preread_held;

bool limits_preread_take(size_t n, size_t budget, bool first)
{
    size_t limit = first ? budget : budget - budget / LIMITS_BUDGET_RESERVE;
    size_t cur = atomic_load_explicit(&preread_held, memory_order_relaxed);
    do {
        if (cur + n > limit)
            return false;
    } while (!atomic_compare_exchange_weak(&preread_held, &cur, cur + n));
    return true;
}

void limits_preread_give(size_t n)
{
    atomic_fetch_sub(&preread_held, n);
}

size_t limits_preread_held(void)
{
    return atomic_load_explicit(&preread_held, memory_order_relaxed);
}
