/* The UDP kernel path: which flow sides enter the tc program's NAT, their entries (a
 * forward one per flow, keyed by the client's 4-tuple, a reverse one per side, keyed by
 * the server's datagrams to its upstream socket), and the kernel's counts at the end. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mux443/core/udp_kernel.h"
#include "mux443/lib/log.h"
#include "mux443/lib/udp_demux.h"
#include "mux443/lib/udpnat.h"
#include "mux443/state/metrics.h"
#include "mux443/state/udp_metrics.h"

/* How long an entry outlives its last push (three of the relay's 1 s idle sweeps): if the
 * worker stops sweeping (hung, or lost track of the flow), its datagrams come back to user
 * space within seconds. */
#define UDPK_DEADLINE_NS 3000000000u

static struct udpnat *nat;
static uint32_t nslots;
static atomic_bool told; /* the one line for a reload that adds a kernel route */

/* A UDP listener and a relay = kernel route that UDP flows can take (class ice-tcp, stun
 * or quic, or any class): a TCP-only kernel route loads no tc program, which would see
 * every packet of the devices for nothing. */
static bool wants_kernel(const struct cfg *cfg)
{
    const unsigned udp_classes = 1u << CLASS_ICE_TCP | 1u << CLASS_STUN | 1u << CLASS_QUIC;
    bool udp = false;

    for (size_t i = 0; i < cfg->nlisteners; i++)
        udp |= cfg->listeners[i].udp;
    for (size_t i = 0; udp && i < cfg->nroutes; i++) {
        const struct cfg_route *r = &cfg->routes[i];

        if (r->relay == RELAY_KERNEL && (r->classes == 0 || (r->classes & udp_classes)) &&
            (r->tls == TLSM_ANY || r->tls == TLSM_NO))
            return true;
    }
    return false;
}

/* `auto` (or nothing): every device up now. */
static char *devices_of(const struct cfg *cfg, char *buf, size_t cap)
{
    size_t len = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < cfg->krelay_devices.n; i++) {
        const char *d = cfg->krelay_devices.v[i];

        if (strcmp(d, "auto") == 0)
            return NULL;
        if (len + strlen(d) + 2 < cap)
            len += (size_t)snprintf(buf + len, cap - len, "%s%s", len ? "," : "", d);
    }
    return len ? buf : NULL;
}

void udp_kernel_init(const struct cfg *cfg, uint32_t flows)
{
    char err[768], devs[512];

    if (!wants_kernel(cfg) || flows == 0)
        return;
    nslots = flows * 2; /* a media and a TURN side at most (a QUIC flow: one) */
    /* A forward entry per flow and a reverse one per side: the flow tables bound them. */
    nat = udpnat_open(devices_of(cfg, devs, sizeof(devs)), nslots, flows * 3, err, sizeof(err));
    if (nat == NULL) {
        atomic_store(&told, true);
        log_warnx("udp kernel path unavailable (%s): UDP flows of relay = kernel routes relay "
                  "in user space",
                  err);
        return;
    }
    log_info("udp kernel path ready on %s%s%s: verified flows of relay = kernel routes "
             "move in the kernel",
             udpnat_attached(nat), udpnat_skipped(nat)[0] ? "; not on " : "", udpnat_skipped(nat));
}

void udp_kernel_fini(void)
{
    udpnat_close(nat);
    nat = NULL;
}

/* An IPv4 address and port of ss (IPv4, IPv4 mapped in IPv6, or for a dual-stack
 * wildcard listener [::]), network order. */
static bool v4_of(const struct sockaddr_storage *ss, uint32_t *ip, uint16_t *port)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
        *ip = s4->sin_addr.s_addr;
        *port = s4->sin_port;
        return true;
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
        if (!IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) && !IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr))
            return false;
        memcpy(ip, &s6->sin6_addr.s6_addr[12], 4);
        *port = s6->sin6_port;
        return true;
    }
    return false;
}

static bool sock_v4(int fd, bool peer, uint32_t *ip, uint16_t *port)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if ((peer ? getpeername(fd, (struct sockaddr *)&ss, &len)
              : getsockname(fd, (struct sockaddr *)&ss, &len)) != 0)
        return false;
    return v4_of(&ss, ip, port);
}

/* The address the client sent to: the listener's, or for a wildcard listener the one
 * its replies leave from (the route's source towards the client, as for user space's
 * replies). A client that sent to another address of this host matches no entry: its
 * datagrams stay in user space. */
static bool listen_v4(const struct udp_flow *f, uint32_t client, uint16_t cport, uint32_t *ip,
                      uint16_t *port)
{
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_addr.s_addr = client, .sin_port = cport};
    uint16_t ignored;
    bool ok;
    int fd;

    if (!sock_v4(f->lfd, false, ip, port))
        return false;
    if (*ip != htonl(INADDR_ANY))
        return true;
    if ((fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
        return false;
    ok = connect(fd, (const struct sockaddr *)&to, sizeof(to)) == 0 &&
         sock_v4(fd, false, ip, &ignored);
    close(fd);
    return ok;
}

/* An IPv6 address and port of ss that is not IPv4 mapped, network order; the
 * unspecified address only with `any` (a wildcard listener). Link-local addresses are
 * left to user space: their routes depend on the device, which the entries do not hold. */
static bool v6_of(const struct sockaddr_storage *ss, bool any, uint8_t ip[16], uint16_t *port)
{
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;

    if (ss->ss_family != AF_INET6 || IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) ||
        IN6_IS_ADDR_LINKLOCAL(&s6->sin6_addr) || (!any && IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr)))
        return false;
    memcpy(ip, &s6->sin6_addr, 16);
    *port = s6->sin6_port;
    return true;
}

static bool sock_v6(int fd, bool peer, bool any, uint8_t ip[16], uint16_t *port)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if ((peer ? getpeername(fd, (struct sockaddr *)&ss, &len)
              : getsockname(fd, (struct sockaddr *)&ss, &len)) != 0)
        return false;
    return v6_of(&ss, any, ip, port);
}

/* listen_v4 for an IPv6 client. */
static bool listen_v6(const struct udp_flow *f, uint8_t ip[16], uint16_t *port)
{
    static const uint8_t any[16];
    struct sockaddr_in6 to = {.sin6_family = AF_INET6, .sin6_port = f->k_cport};
    uint16_t ignored;
    bool ok;
    int fd;

    if (!sock_v6(f->lfd, false, true, ip, port))
        return false;
    if (memcmp(ip, any, sizeof(any)) != 0)
        return true;
    memcpy(&to.sin6_addr, f->k6_client, 16);
    if ((fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
        return false;
    ok = connect(fd, (const struct sockaddr *)&to, sizeof(to)) == 0 &&
         sock_v6(fd, false, false, ip, &ignored);
    close(fd);
    return ok;
}

static struct udpnat_key fwd_key(const struct udp_flow *f)
{
    return (struct udpnat_key){f->k_client, f->k_listen, f->k_cport, f->k_lport};
}

static struct udpnat_key6 fwd_key6(const struct udp_flow *f)
{
    struct udpnat_key6 k = {.sport = f->k_cport, .dport = f->k_lport};

    memcpy(k.saddr, f->k6_client, 16);
    memcpy(k.daddr, f->k6_listen, 16);
    return k;
}

/* The key of the server's datagrams to side up's upstream socket: its rewrite's
 * addresses and ports swapped. */
static struct udpnat_key rev_key(const struct udp_up *up)
{
    const struct udpnat_nat *u = &up->knat.v4;

    return (struct udpnat_key){u->daddr, u->saddr, u->dport, u->sport};
}

static struct udpnat_key6 rev_key6(const struct udp_up *up)
{
    const struct udpnat_nat6 *u = &up->knat.v6;
    struct udpnat_key6 k = {.sport = u->dport, .dport = u->sport};

    memcpy(k.saddr, u->daddr, 16);
    memcpy(k.daddr, u->saddr, 16);
    return k;
}

static void count(bool kernel)
{
    MX_INC(mxu.kernel_total[kernel ? 0 : 1]);
}

/* The entries of side `side` (slot + 1: slot1) of an IPv4 flow: its reverse one, then the
 * flow's forward one with every side in the kernel. NULL, or why not. */
static const char *put4(struct udp_flow *f, int side, uint32_t slot1)
{
    struct udp_up *up = &f->up[side];
    struct udpnat_entry rev, fwd;
    struct udpnat_key fk, rk;
    uint32_t server, local;
    uint16_t sport, lport;

    if (!sock_v4(up->fd, true, &server, &sport) || !sock_v4(up->fd, false, &local, &lport))
        return "an IPv4 client, an IPv6 server";
    memset(&rev, 0, sizeof(rev));
    rev.dir = UDPNAT_REV;
    rev.quic = f->kind == UDP_QUIC;
    rev.nat[0] = (struct udpnat_nat){.saddr = f->k_listen,
                                     .daddr = f->k_client,
                                     .sport = f->k_lport,
                                     .dport = f->k_cport,
                                     .slot = slot1};
    up->knat.v4 = (struct udpnat_nat){
        .saddr = local, .daddr = server, .sport = lport, .dport = sport, .slot = slot1};
    if (!udpnat_route(nat, &rev.nat[0]) || !udpnat_route(nat, &up->knat.v4))
        return "no route to the client or the server";
    /* The reverse entry first: the server may answer the first datagram the kernel
     * forwards before this function returns. */
    rk = rev_key(up);
    if (udpnat_put(nat, &rk, &rev) != 0)
        return "the map refused the entry";
    up->kslot = slot1;
    memset(&fwd, 0, sizeof(fwd));
    fwd.dir = UDPNAT_FWD;
    fwd.quic = f->kind == UDP_QUIC;
    for (int i = 0; i < UDP_UPS; i++)
        if (f->up[i].kslot != 0)
            fwd.nat[i] = f->up[i].knat.v4;
    fk = fwd_key(f);
    if (udpnat_put(nat, &fk, &fwd) != 0) {
        int e = errno;
        udpnat_del(nat, &rk);
        up->kslot = 0;
        errno = e;
        return "the map refused the entry";
    }
    return NULL;
}

/* put4 for an IPv6 flow. */
static const char *put6(struct udp_flow *f, int side, uint32_t slot1)
{
    struct udp_up *up = &f->up[side];
    struct udpnat_entry6 rev, fwd;
    struct udpnat_nat6 *r = &rev.nat[0], *u = &up->knat.v6;
    struct udpnat_key6 fk, rk;

    memset(&rev, 0, sizeof(rev));
    memset(u, 0, sizeof(*u));
    if (!sock_v6(up->fd, true, false, u->daddr, &u->dport) ||
        !sock_v6(up->fd, false, false, u->saddr, &u->sport))
        return "an IPv6 client, an IPv4 or link-local server";
    u->slot = slot1;
    rev.dir = UDPNAT_REV;
    rev.quic = f->kind == UDP_QUIC;
    memcpy(r->saddr, f->k6_listen, 16);
    memcpy(r->daddr, f->k6_client, 16);
    r->sport = f->k_lport;
    r->dport = f->k_cport;
    r->slot = slot1;
    if (!udpnat_route6(nat, r) || !udpnat_route6(nat, u))
        return "no route to the client or the server";
    rk = rev_key6(up);
    if (udpnat_put6(nat, &rk, &rev) != 0)
        return "the map refused the entry";
    up->kslot = slot1;
    memset(&fwd, 0, sizeof(fwd));
    fwd.dir = UDPNAT_FWD;
    fwd.quic = f->kind == UDP_QUIC;
    for (int i = 0; i < UDP_UPS; i++)
        if (f->up[i].kslot != 0)
            fwd.nat[i] = f->up[i].knat.v6;
    fk = fwd_key6(f);
    if (udpnat_put6(nat, &fk, &fwd) != 0) {
        int e = errno;
        udpnat_del6(nat, &rk);
        up->kslot = 0;
        errno = e;
        return "the map refused the entry";
    }
    return NULL;
}

void udp_kernel_enter(struct udp_flow *f, int side, uint32_t index, bool transparent)
{
    struct udp_up *up = &f->up[side];
    const struct cfg_route *r = up->route;
    struct udpnat_slot *s;
    uint32_t slot;
    const char *why;

    if (r == NULL || r->relay != RELAY_KERNEL || up->kslot != 0)
        return;
    errno = 0;
    if (nat == NULL) {
        if (!atomic_exchange(&told, true))
            log_warnx("udp kernel path not loaded (the configuration at start had no relay = "
                      "kernel route with a UDP listener): relaying in user space until a restart");
        count(false);
        return;
    }
    why = "udp_transparent";
    if (transparent)
        goto fallback;
    /* The flow's addresses, once: a second side reuses them. */
    why = "no address the kernel path takes (link-local?)";
    if (!udp_kernel_has(f)) {
        if (v4_of(&f->addr, &f->k_client, &f->k_cport))
            f->k_v6 = false;
        else if (v6_of(&f->addr, false, f->k6_client, &f->k_cport))
            f->k_v6 = true;
        else
            goto fallback;
        if (f->k_v6 ? !listen_v6(f, f->k6_listen, &f->k_lport)
                    : !listen_v4(f, f->k_client, f->k_cport, &f->k_listen, &f->k_lport))
            goto fallback;
    }
    why = "no slot";
    slot = index * 2 + (side == UDP_UP_TURN);
    if ((s = udpnat_slot(nat, slot)) == NULL)
        goto fallback;
    memset(s, 0, sizeof(*s));
    __atomic_store_n(&s->deadline_ns, udpnat_now_ns() + UDPK_DEADLINE_NS, __ATOMIC_RELEASE);
    if ((why = f->k_v6 ? put6(f, side, slot + 1) : put4(f, side, slot + 1)) != NULL)
        goto fallback;
    atomic_fetch_add(&mxu.kernel_sides, 1);
    count(true);
    log_debug("udp flow=%llu: side %d in the kernel (IPv%d)", (unsigned long long)f->id, side,
              f->k_v6 ? 6 : 4);
    return;
fallback:
    count(false);
    log_debug("udp flow=%llu: side %d stays in user space (%s%s%s)", (unsigned long long)f->id,
              side, why, errno ? ": " : "", errno ? strerror(errno) : "");
}

bool udp_kernel_has(const struct udp_flow *f)
{
    for (int side = 0; side < UDP_UPS; side++)
        if (f->up[side].kslot != 0)
            return true;
    return false;
}

void udp_kernel_sweep(struct udp_flow *f, uint64_t now_ms)
{
    uint64_t now = udpnat_now_ns();

    for (int side = 0; side < UDP_UPS; side++) {
        struct udpnat_slot *s;
        uint64_t last, age_ms;

        if (f->up[side].kslot == 0 || (s = udpnat_slot(nat, f->up[side].kslot - 1)) == NULL)
            continue;
        last = udpnat_load(&s->last_ns);
        if (last != 0 && last <= now) {
            age_ms = (now - last) / 1000000u;
            if (now_ms > age_ms && now_ms - age_ms > f->last_ms)
                f->last_ms = now_ms - age_ms;
        }
        __atomic_store_n(&s->deadline_ns, now + UDPK_DEADLINE_NS, __ATOMIC_RELEASE);
    }
}

void udp_kernel_leave(struct udp_flow *f)
{
    if (nat == NULL || !udp_kernel_has(f))
        return;
    /* Entries out first: from then on nothing more is counted in the slots. */
    if (f->k_v6) {
        struct udpnat_key6 fk = fwd_key6(f);

        udpnat_del6(nat, &fk);
    } else {
        struct udpnat_key fk = fwd_key(f);

        udpnat_del(nat, &fk);
    }
    for (int side = 0; side < UDP_UPS; side++) {
        if (f->up[side].kslot == 0)
            continue;
        if (f->k_v6) {
            struct udpnat_key6 rk = rev_key6(&f->up[side]);

            udpnat_del6(nat, &rk);
        } else {
            struct udpnat_key rk = rev_key(&f->up[side]);

            udpnat_del(nat, &rk);
        }
    }
    for (int side = 0; side < UDP_UPS; side++) {
        struct udp_up *up = &f->up[side];
        struct udpnat_slot *s;

        if (up->kslot == 0 || (s = udpnat_slot(nat, up->kslot - 1)) == NULL)
            continue;
        uint64_t din = udpnat_load(&s->dgrams[0]), bin = udpnat_load(&s->bytes[0]);
        uint64_t dout = udpnat_load(&s->dgrams[1]), bout = udpnat_load(&s->bytes[1]);
        up->dgrams_in += din;
        up->bytes_in += bin;
        up->dgrams_out += dout;
        up->bytes_out += bout;
        MX_ADD(mxu.dgrams_in, din);
        MX_ADD(mxu.bytes_in, bin);
        MX_ADD(mxu.dgrams_out, dout);
        MX_ADD(mxu.bytes_out, bout);
        MX_ADD(mxu.kernel_dgrams, din + dout);
        up->kslot = 0;
        atomic_fetch_sub(&mxu.kernel_sides, 1);
    }
}
