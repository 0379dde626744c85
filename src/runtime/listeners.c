/* Listening sockets and their hand-over between snapshots. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mux443/core/route.h"
#include "mux443/lib/log.h"
#include "mux443/runtime/listeners.h"

/* Receive and send buffer of a UDP listening socket (one per worker and address). */
#define UDP_SOCKBUF (4 << 20)

static int open_listen_socket(const struct cfg_addr *a, bool udp)
{
    int one = 1;
    int fd =
        socket(a->ss.ss_family, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC,
               udp ? IPPROTO_UDP : IPPROTO_TCP);
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
        goto fail;
    /* Accepted sockets inherit it: signalling and STUN are small messages that Nagle
     * would hold back. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    /* [::]:443 next to 0.0.0.0:443 must not also claim the IPv4 port. */
    if (a->ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    /* UDP: one socket per worker in the address's SO_REUSEPORT group; the kernel keeps a
     * client address+port on one of them (README "UDP on 443"). Media arrives in bursts
     * (a video frame is tens of datagrams; RTCP and ICE checks of many calls line up) and
     * the default receive buffer (rmem_default, ~208 KiB, ~200 datagrams of any size once
     * the kernel's own overhead is counted) overflows on them: ask for UDP_SOCKBUF, past
     * net.core.rmem_max/wmem_max when started with CAP_NET_ADMIN (the *FORCE options),
     * else up to those limits. */
    if (udp)
        for (int i = 0; i < 2; i++) {
            int size = UDP_SOCKBUF, force = i ? SO_SNDBUFFORCE : SO_RCVBUFFORCE;
            if (setsockopt(fd, SOL_SOCKET, force, &size, sizeof(size)) < 0)
                setsockopt(fd, SOL_SOCKET, i ? SO_SNDBUF : SO_RCVBUF, &size, sizeof(size));
        }
    if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0 || (!udp && listen(fd, 1024) < 0))
        goto fail;
    return fd;
fail:;
    int e = errno;
    close(fd);
    errno = e;
    return -1;
}

void lsocks_drop(struct lsock_set *set, const struct lsock_set *keep)
{
    for (size_t i = 0; i < set->n; i++) {
        bool kept = false;
        for (size_t k = 0; keep && k < keep->n; k++)
            kept |= keep->v[k].fd == set->v[i].fd;
        if (!kept && set->v[i].fd >= 0)
            close(set->v[i].fd);
    }
    free(set->v);
    set->v = NULL;
    set->n = 0;
}

/* TCP_DEFER_ACCEPT: the kernel hands a connection over once its first bytes have come
 * (or its FIN), so the read right after accept finds the first flight. A client that
 * waits for the server to speak first is handed over after about a second (the kernel's
 * first SYN-ACK retransmission) instead: that is only done when no route serves silent
 * clients (on_timeout), which must get their peek_timeout from the connect on. Applied
 * to kept sockets too, since a reload may add or remove such a route. */
static void set_defer_accept(int fd, const struct cfg *c, const struct cfg_listener *l)
{
    struct probe_out silent = {.cls = CLASS_TIMEOUT};
    int secs = route_select(c, l, &silent, VIA_PLAIN) ? 0 : 1;
    setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &secs, sizeof(secs));
}

bool lsocks_open(struct lsock_set *out, const struct cfg *c, const struct lsock_set *old)
{
    size_t total = 0;
    for (size_t i = 0; i < c->nlisteners; i++)
        total += c->listeners[i].addrs.n * (c->listeners[i].udp ? 2 : 1);
    out->n = 0;
    out->v = calloc(total ? total : 1, sizeof(*out->v));
    if (!out->v) {
        log_warnx("listeners: out of memory");
        return false;
    }
    for (size_t i = 0; i < c->nlisteners; i++) {
        const struct cfg_listener *l = &c->listeners[i];
        for (size_t k = 0; k < l->addrs.n * (l->udp ? 2 : 1); k++) {
            struct lsock *s = &out->v[out->n];
            s->lst = l;
            s->addr = &l->addrs.v[k % l->addrs.n];
            s->udp = k >= l->addrs.n;
            s->fd = -1;
            for (size_t j = 0; old && j < old->n; j++)
                if (old->v[j].fd >= 0 && old->v[j].udp == s->udp &&
                    strcmp(old->v[j].addr->text, s->addr->text) == 0)
                    s->fd = old->v[j].fd;
            if (s->fd < 0 && (s->fd = open_listen_socket(s->addr, s->udp)) < 0) {
                log_warn("listener %s: cannot listen on %s%s", l->name, s->addr->text,
                         s->udp ? "/udp" : "");
                lsocks_drop(out, old);
                return false;
            }
            if (!s->udp)
                set_defer_accept(s->fd, c, l);
            out->n++;
        }
    }
    return true;
}
