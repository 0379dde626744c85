/* Per-client-address connection counts: a hash table striped over several locks so that
 * workers accepting at once rarely wait for each other. Entries vanish at count 0. */
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mux443/state/limits.h"

#define STRIPES 64
#define BUCKETS 4096 /* per table; chains grow past that */

struct entry {
    uint8_t addr[16];
    unsigned count;
    time_t last_log;
    struct entry *next;
};

static struct {
    pthread_mutex_t lock;
    struct entry *b[BUCKETS / STRIPES];
} stripes[STRIPES];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init(void)
{
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_init(&stripes[i].lock, NULL);
}

/* The address as 16 bytes (IPv4 as v4-mapped IPv6, so both forms count together). */
static bool key_of(const struct sockaddr *sa, uint8_t k[16])
{
    memset(k, 0, 16);
    if (sa->sa_family == AF_INET) {
        k[10] = k[11] = 0xff;
        memcpy(k + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        memcpy(k, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        return true;
    }
    return false;
}

static uint32_t hash(const uint8_t k[16])
{
    uint32_t h = 2166136261u;
    for (int i = 0; i < 16; i++)
        h = (h ^ k[i]) * 16777619u;
    return h;
}

bool limits_acquire(const struct sockaddr *sa, unsigned max, bool *log_it)
{
    uint8_t k[16];
    *log_it = false;
    if (!max || !key_of(sa, k))
        return true;
    pthread_once(&once, init);
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

void limits_release(const struct sockaddr *sa)
{
    uint8_t k[16];
    if (!key_of(sa, k))
        return;
    pthread_once(&once, init);
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
