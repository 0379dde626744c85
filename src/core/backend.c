/* Server choice within a backend pool. */
#include "mux443/core/backend.h"
#include "mux443/lib/addr.h"
#include "mux443/lib/hash.h"

unsigned backend_first(const struct snap *s, const struct cfg_backend *b,
                       const struct sockaddr *client)
{
    uint8_t key[16];
    if (b->servers.n <= 1)
        return 0;
    if (b->balance == BALANCE_SOURCE)
        return addr_key(client, key) ? (unsigned)(hash_bytes(key, 16) % b->servers.n) : 0;
    atomic_uint *rr = &s->rr[CFG_INDEX(s->cfg->backends, b)];
    return atomic_fetch_add_explicit(rr, 1, memory_order_relaxed) % b->servers.n;
}

unsigned backend_index(const struct cfg_backend *b, unsigned first, unsigned attempt)
{
    return (first + attempt) % (unsigned)b->servers.n;
}
