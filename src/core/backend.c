/* Backend pools: server choice (round robin shared by all workers, or a hash of the
 * client address so a client keeps its server) and the non-blocking connect. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <unistd.h>

#include "mux443/core/backend.h"

static uint32_t addr_hash(const struct sockaddr *sa)
{
    const uint8_t *p;
    size_t n;
    uint32_t h = 2166136261u; /* FNV-1a */

    if (sa->sa_family == AF_INET) {
        p = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
        n = 4;
    } else if (sa->sa_family == AF_INET6) {
        p = (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
        n = 16;
    } else {
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

unsigned backend_first(const struct cfg_backend *b, const struct sockaddr *client)
{
    if (b->servers.n <= 1)
        return 0;
    if (b->balance == BALANCE_SOURCE)
        return addr_hash(client) % b->servers.n;
    /* The cursor is the one mutable field of the otherwise frozen snapshot. */
    atomic_uint *rr = (atomic_uint *)&b->rr;
    return atomic_fetch_add_explicit(rr, 1, memory_order_relaxed) % b->servers.n;
}

unsigned backend_index(const struct cfg_backend *b, unsigned first, unsigned attempt)
{
    return (first + attempt) % (unsigned)b->servers.n;
}

int backend_connect(const struct cfg_addr *a)
{
    int one = 1;
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd < 0)
        return -1;
    /* Signalling and STUN are small messages: do not let Nagle hold them back. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (const struct sockaddr *)&a->ss, a->len) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}
