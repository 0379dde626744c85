/* The UDP kernel path's tc ingress program (README "UDP on 443", "Kernel relay"): a 1:1
 * NAT for the established flows of routes with relay = kernel. A client's datagram to the
 * listener is rewritten to come from the flow side's upstream socket and go to its server;
 * the server's datagram to that upstream socket is rewritten to come from the listener
 * and go to the client. STUN (first byte 0-3) always goes to user space, both ways: it
 * routes a client's responses by transaction id and must see the backends' requests.
 * Anything without an entry, or that cannot be delivered, goes on untouched (user space
 * relays it, as without the program). Built with clang -target bpf and embedded in mux443
 * (src/lib/udpnat.c loads it). */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

/* The layouts of struct udpnat_key, udpnat_entry and udpnat_slot (lib/udpnat.h). Addresses
 * and ports in network order. */
struct un_key {
    __u32 saddr, daddr;
    __u16 sport, dport;
};

struct un_nat {
    __u32 saddr, daddr;
    __u16 sport, dport;
    __u32 slot;    /* slot index + 1; 0: no such side */
    __u32 ifindex; /* daddr is reached out of this device; 0: daddr is local */
    __u32 flags;   /* UN_LO_OK */
};

/* A local daddr may be reached from another device through lo's input: lo accepts our own
 * source address there (accept_local), and 127/8 (route_localnet) if either address is in
 * it. User space sets it when lo's settings allow, else such datagrams stay its own. */
#define UN_LO_OK 1

#define UN_FWD 0 /* client -> listener: nat[] by side (media, TURN, QUIC) */
#define UN_REV 1 /* server -> upstream socket: nat[0] */

struct un_entry {
    __u8 dir;
    __u8 quic; /* a QUIC flow: every datagram, whatever its first byte */
    __u16 pad;
    struct un_nat nat[3];
};

struct un_slot {
    __u64 dgrams[2], bytes[2]; /* [0] client -> server, [1] server -> client; UDP payload */
    __u64 last_ns;             /* bpf_ktime_get_ns of the last datagram relayed */
    __u64 deadline_ns;         /* relay only before it: user space pushes it on */
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1); /* set by user space from the flow tables' size */
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, struct un_key);
    __type(value, struct un_entry);
} un_flows SEC(".maps");

/* IPv6 flows (lib/udpnat.h's udpnat_key6, udpnat_nat6, udpnat_entry6): a map of their
 * own, so that IPv4's keys and rewrites stay 4-byte ones. */
struct un_key6 {
    __u8 saddr[16], daddr[16];
    __u16 sport, dport;
};

struct un_nat6 {
    __u8 saddr[16], daddr[16];
    __u16 sport, dport;
    __u32 slot, ifindex, flags;
};

struct un_entry6 {
    __u8 dir;
    __u8 quic;
    __u16 pad;
    struct un_nat6 nat[3];
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1); /* as un_flows */
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, struct un_key6);
    __type(value, struct un_entry6);
} un_flows6 SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1); /* likewise */
    __uint(map_flags, BPF_F_MMAPABLE);
    __type(key, __u32);
    __type(value, struct un_slot);
} un_slots SEC(".maps");

#define LOOPBACK_IFINDEX 1 /* lo is 1 in every network namespace */
#define IP_OFF           ETH_HLEN
#define UDP_OFF          (ETH_HLEN + (int)sizeof(struct iphdr))
#define IP_CSUM          (IP_OFF + (int)offsetof(struct iphdr, check))
#define IP_ADDRS         (IP_OFF + (int)offsetof(struct iphdr, saddr))
#define UDP_CSUM         (UDP_OFF + (int)offsetof(struct udphdr, check))
#define FIRST_BYTE       (UDP_OFF + (int)sizeof(struct udphdr))
#define UDP6_OFF         (ETH_HLEN + (int)sizeof(struct ipv6hdr))
#define IP6_ADDRS        (IP_OFF + (int)offsetof(struct ipv6hdr, saddr))
#define UDP6_CSUM        (UDP6_OFF + (int)offsetof(struct udphdr, check))
#define FIRST_BYTE6      (UDP6_OFF + (int)sizeof(struct udphdr))

/* bpf_l4_csum_replace's flag (Linux 6.16; Debian 12's headers predate it): the addresses
 * changed are in the IPv6 header, which a CHECKSUM_COMPLETE sum covers, so that sum is
 * left as it is. Older kernels refuse it: their IPv6 datagrams stay user space's. */
#ifndef BPF_F_IPV6
#define BPF_F_IPV6 (1ULL << 7)
#endif

/* The side of a client's datagram by its first byte, as user space demultiplexes (README
 * "UDP on 443"); -1: user space's (STUN, or what fits no side). */
static __always_inline int side_of(__u8 b)
{
    if ((b >= 20 && b <= 63) || b >= 128 && b <= 191)
        return 0; /* DTLS, RTP/RTCP: media */
    if (b >= 64 && b <= 127)
        return 1; /* ChannelData: TURN */
    return -1;
}

/* The nat[] index an entry's datagram takes, and its direction (0: client -> server);
 * -1: user space's. */
static __always_inline int pick(__u8 edir, __u8 quic, __u8 first, int *dir)
{
    if (edir == UN_FWD) {
        *dir = 0;
        return quic ? 2 : side_of(first);
    }
    *dir = 1;
    /* STUN from the server: user space notes requests */
    return (!quic && first <= 3) ? -1 : 0;
}

/* How the rewritten datagram reaches its destination. */
enum way { WAY_NONE, WAY_HERE, WAY_LO, WAY_OUT };

/* WAY_HERE: a local destination, and the datagram came in on lo, whose route (kept from
 * the sender's output) delivers it here; WAY_LO: a local destination reached from another
 * device, through lo's input; WAY_OUT: out of ifindex, whose neighbour the kernel
 * resolves; WAY_NONE: no way, the datagram is left alone. User space looked the route up
 * (bpf_fib_lookup would want forwarding enabled on the device it came in on). */
static __always_inline enum way route(const struct __sk_buff *skb, __u32 ifindex, __u32 flags)
{
    if (ifindex != 0)
        return WAY_OUT;
    if (skb->ingress_ifindex == LOOPBACK_IFINDEX)
        return WAY_HERE;
    return (flags & UN_LO_OK) ? WAY_LO : WAY_NONE;
}

/* The slot of a nat whose datagram may go (its deadline not passed, a way to deliver it,
 * small enough for the device it leaves by), else NULL: user space's. */
static __always_inline struct un_slot *admit(struct __sk_buff *skb, __u32 slot1, __u32 ifindex,
                                             __u32 flags, __u64 *now, enum way *way)
{
    struct un_slot *s;
    __u32 slot;

    if (slot1 == 0)
        return NULL;
    slot = slot1 - 1;
    s = bpf_map_lookup_elem(&un_slots, &slot);
    if (!s)
        return NULL;
    /* Past the deadline user space stopped pushing on (hung, or lost the flow): the
     * datagrams go to it, as without the program. */
    *now = bpf_ktime_get_ns();
    if (*now > s->deadline_ns)
        return NULL;
    *way = route(skb, ifindex, flags);
    if (*way == WAY_NONE)
        return NULL;
    /* A redirect does not fragment: what the device's MTU does not let out is user
     * space's, whose send does. */
    if (*way == WAY_OUT) {
        __u32 mtu_len = 0;

        if (bpf_check_mtu(skb, ifindex, &mtu_len, 0, 0) != BPF_MTU_CHK_RET_SUCCESS)
            return NULL;
    }
    return s;
}

/* Sends the rewritten datagram on its way and counts it. */
static __always_inline int deliver(struct __sk_buff *skb, enum way way, __u32 ifindex,
                                   struct un_slot *s, int dir, __u32 len, __u64 now)
{
    int rc;

    if (way == WAY_LO) {
        __u8 zero[ETH_ALEN] = {}; /* lo's address: its input would take it for another host's */

        bpf_skb_store_bytes(skb, 0, zero, sizeof(zero), 0);
        rc = bpf_redirect(LOOPBACK_IFINDEX, BPF_F_INGRESS);
    } else if (way == WAY_OUT) {
        rc = bpf_redirect_neigh(ifindex, NULL, 0, 0);
    } else {
        rc = TC_ACT_OK;
    }
    __sync_fetch_and_add(&s->dgrams[dir], 1);
    __sync_fetch_and_add(&s->bytes[dir], len);
    s->last_ns = now;
    return rc;
}

static __always_inline void rewrite(struct __sk_buff *skb, const struct un_key *k,
                                    const struct un_nat *n)
{
    __u32 addrs[2] = {n->saddr, n->daddr};
    __u16 ports[2] = {n->sport, n->dport};

    /* The UDP checksum covers the addresses through its pseudo header; with
     * CHECKSUM_PARTIAL (loopback) the helpers adjust only that part, as they should. */
    bpf_l4_csum_replace(skb, UDP_CSUM, k->saddr, n->saddr,
                        BPF_F_PSEUDO_HDR | BPF_F_MARK_MANGLED_0 | sizeof(__u32));
    bpf_l4_csum_replace(skb, UDP_CSUM, k->daddr, n->daddr,
                        BPF_F_PSEUDO_HDR | BPF_F_MARK_MANGLED_0 | sizeof(__u32));
    bpf_l4_csum_replace(skb, UDP_CSUM, k->sport, n->sport, BPF_F_MARK_MANGLED_0 | sizeof(__u16));
    bpf_l4_csum_replace(skb, UDP_CSUM, k->dport, n->dport, BPF_F_MARK_MANGLED_0 | sizeof(__u16));
    bpf_l3_csum_replace(skb, IP_CSUM, k->saddr, n->saddr, sizeof(__u32));
    bpf_l3_csum_replace(skb, IP_CSUM, k->daddr, n->daddr, sizeof(__u32));
    bpf_skb_store_bytes(skb, IP_ADDRS, addrs, sizeof(addrs), 0);
    bpf_skb_store_bytes(skb, UDP_OFF, ports, sizeof(ports), 0);
}

/* The headers the program reads, copied out of the packet. */
struct hdrs {
    struct iphdr ip;
    struct udphdr udp;
    __u8 first; /* the payload's first byte */
} __attribute__((packed));

static __always_inline int ingress4(struct __sk_buff *skb)
{
    void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
    struct hdrs h;
    struct un_key k;
    struct un_entry *e;
    struct un_nat *n;
    struct un_slot *s;
    __u32 len;
    __u64 now;
    enum way way;
    int side, dir;

    if (skb->len < FIRST_BYTE + 1)
        return TC_ACT_UNSPEC;
    /* Read in place when the headers are in the linear part (always on lo), else copied
     * (no pull: it could reallocate the head of every packet of the device). */
    if (data + FIRST_BYTE + 1 <= end)
        __builtin_memcpy(&h, data + IP_OFF, sizeof(h));
    else if (bpf_skb_load_bytes(skb, IP_OFF, &h, sizeof(h)) != 0)
        return TC_ACT_UNSPEC;
    /* Options, fragments and GSO super-packets are user space's. */
    if (h.ip.protocol != IPPROTO_UDP || h.ip.ihl != 5 || (h.ip.frag_off & bpf_htons(0x3fff)) ||
        skb->gso_segs > 1)
        return TC_ACT_UNSPEC;
    k.saddr = h.ip.saddr;
    k.daddr = h.ip.daddr;
    k.sport = h.udp.source;
    k.dport = h.udp.dest;
    len = bpf_ntohs(h.udp.len);
    if (len < sizeof(struct udphdr))
        return TC_ACT_UNSPEC;
    len -= sizeof(struct udphdr);

    e = bpf_map_lookup_elem(&un_flows, &k);
    if (!e)
        return TC_ACT_UNSPEC;
    side = pick(e->dir, e->quic, h.first, &dir);
    if (side < 0 || side > 2)
        return TC_ACT_UNSPEC;
    n = &e->nat[side];
    s = admit(skb, n->slot, n->ifindex, n->flags, &now, &way);
    if (!s)
        return TC_ACT_UNSPEC;
    rewrite(skb, &k, n);
    return deliver(skb, way, n->ifindex, s, dir, len, now);
}

/* IPv6: the addresses' change goes into the UDP checksum as one difference (there is no
 * IP checksum); 0 is never produced (BPF_F_MARK_MANGLED_0: 0xffff), hop_limit is left as
 * it is. 0, or -1 when the kernel refuses the checksum update: nothing was changed then. */
static __always_inline int rewrite6(struct __sk_buff *skb, const struct un_key6 *k,
                                    const struct un_nat6 *n)
{
    __u16 ports[2] = {n->sport, n->dport};
    __s64 diff;

    /* un_key6 and un_nat6 start with saddr, daddr: 32 bytes each side. */
    diff = bpf_csum_diff((__be32 *)k->saddr, 32, (__be32 *)n->saddr, 32, 0);
    if (diff < 0)
        return -1;
    if (bpf_l4_csum_replace(skb, UDP6_CSUM, 0, (__u32)diff,
                            BPF_F_PSEUDO_HDR | BPF_F_MARK_MANGLED_0 | BPF_F_IPV6) != 0)
        return -1;
    bpf_l4_csum_replace(skb, UDP6_CSUM, k->sport, n->sport, BPF_F_MARK_MANGLED_0 | sizeof(__u16));
    bpf_l4_csum_replace(skb, UDP6_CSUM, k->dport, n->dport, BPF_F_MARK_MANGLED_0 | sizeof(__u16));
    bpf_skb_store_bytes(skb, IP6_ADDRS, n->saddr, 32, 0);
    bpf_skb_store_bytes(skb, UDP6_OFF, ports, sizeof(ports), 0);
    return 0;
}

struct hdrs6 {
    struct ipv6hdr ip;
    struct udphdr udp;
    __u8 first;
} __attribute__((packed));

static __always_inline int ingress6(struct __sk_buff *skb)
{
    void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
    struct hdrs6 h;
    struct un_key6 k;
    struct un_entry6 *e;
    struct un_nat6 *n;
    struct un_slot *s;
    __u32 len;
    __u64 now;
    enum way way;
    int side, dir;

    if (skb->len < FIRST_BYTE6 + 1)
        return TC_ACT_UNSPEC;
    if (data + FIRST_BYTE6 + 1 <= end)
        __builtin_memcpy(&h, data + IP_OFF, sizeof(h));
    else if (bpf_skb_load_bytes(skb, IP_OFF, &h, sizeof(h)) != 0)
        return TC_ACT_UNSPEC;
    /* UDP right after the fixed header only: extension headers (fragments, jumbograms'
     * hop-by-hop option among them) and GSO super-packets are user space's, and so is a
     * checksum of 0, which IPv6 does not allow. */
    if (h.ip.nexthdr != IPPROTO_UDP || h.ip.version != 6 || skb->gso_segs > 1 || h.udp.check == 0)
        return TC_ACT_UNSPEC;
    __builtin_memcpy(k.saddr, &h.ip.saddr, 16);
    __builtin_memcpy(k.daddr, &h.ip.daddr, 16);
    k.sport = h.udp.source;
    k.dport = h.udp.dest;
    len = bpf_ntohs(h.udp.len);
    if (len < sizeof(struct udphdr))
        return TC_ACT_UNSPEC;
    len -= sizeof(struct udphdr);

    e = bpf_map_lookup_elem(&un_flows6, &k);
    if (!e)
        return TC_ACT_UNSPEC;
    side = pick(e->dir, e->quic, h.first, &dir);
    if (side < 0 || side > 2)
        return TC_ACT_UNSPEC;
    n = &e->nat[side];
    s = admit(skb, n->slot, n->ifindex, n->flags, &now, &way);
    if (!s || rewrite6(skb, &k, n) != 0)
        return TC_ACT_UNSPEC;
    return deliver(skb, way, n->ifindex, s, dir, len, now);
}

SEC("tc")
int un_ingress(struct __sk_buff *skb)
{
    /* The program sees all of the device's traffic: anything but IPv4 and IPv6 leaves at
     * once, IPv4 tested first. */
    if (skb->protocol == bpf_htons(ETH_P_IP))
        return ingress4(skb);
    if (skb->protocol == bpf_htons(ETH_P_IPV6))
        return ingress6(skb);
    return TC_ACT_UNSPEC;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
