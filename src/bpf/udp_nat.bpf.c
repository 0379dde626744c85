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

/* How the rewritten datagram reaches n->daddr. */
enum way { WAY_NONE, WAY_HERE, WAY_LO, WAY_OUT };

/* WAY_HERE: a local destination, and the datagram came in on lo, whose route (kept from
 * the sender's output) delivers it here; WAY_LO: a local destination reached from another
 * device, through lo's input; WAY_OUT: out of n->ifindex, whose neighbour the kernel
 * resolves; WAY_NONE: no way, the datagram is left alone. User space looked the route up
 * (bpf_fib_lookup would want forwarding enabled on the device it came in on). */
static __always_inline enum way route(const struct __sk_buff *skb, const struct un_nat *n)
{
    if (n->ifindex != 0)
        return WAY_OUT;
    if (skb->ingress_ifindex == LOOPBACK_IFINDEX)
        return WAY_HERE;
    return (n->flags & UN_LO_OK) ? WAY_LO : WAY_NONE;
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

SEC("tc")
int un_ingress(struct __sk_buff *skb)
{
    void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
    struct hdrs h;
    struct un_key k;
    struct un_entry *e;
    struct un_nat *n;
    struct un_slot *s;
    __u32 slot, len;
    __u64 now;
    enum way way;
    int side, dir, rc;

    /* The program sees all of the device's traffic: anything but IPv4 leaves at once. */
    if (skb->protocol != bpf_htons(ETH_P_IP) || skb->len < FIRST_BYTE + 1)
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
    if (e->dir == UN_FWD) {
        dir = 0;
        side = e->quic ? 2 : side_of(h.first);
        if (side < 0)
            return TC_ACT_UNSPEC;
    } else {
        dir = 1;
        side = 0;
        if (!e->quic && h.first <= 3)
            return TC_ACT_UNSPEC; /* STUN from the server: user space notes requests */
    }
    if (side == 0)
        n = &e->nat[0];
    else if (side == 1)
        n = &e->nat[1];
    else
        n = &e->nat[2];
    if (n->slot == 0)
        return TC_ACT_UNSPEC;
    slot = n->slot - 1;
    s = bpf_map_lookup_elem(&un_slots, &slot);
    if (!s)
        return TC_ACT_UNSPEC;
    /* Past the deadline user space stopped pushing on (hung, or lost the flow): the
     * datagrams go to it, as without the program. */
    now = bpf_ktime_get_ns();
    if (now > s->deadline_ns)
        return TC_ACT_UNSPEC;

    way = route(skb, n);
    if (way == WAY_NONE)
        return TC_ACT_UNSPEC;
    /* A redirect does not fragment: what the device's MTU does not let out is user
     * space's, whose send does. */
    if (way == WAY_OUT) {
        __u32 mtu_len = 0;

        if (bpf_check_mtu(skb, n->ifindex, &mtu_len, 0, 0) != BPF_MTU_CHK_RET_SUCCESS)
            return TC_ACT_UNSPEC;
    }
    rewrite(skb, &k, n);
    if (way == WAY_LO) {
        __u8 zero[ETH_ALEN] = {}; /* lo's address: its input would take it for another host's */

        bpf_skb_store_bytes(skb, 0, zero, sizeof(zero), 0);
        rc = bpf_redirect(LOOPBACK_IFINDEX, BPF_F_INGRESS);
    } else if (way == WAY_OUT) {
        rc = bpf_redirect_neigh(n->ifindex, NULL, 0, 0);
    } else {
        rc = TC_ACT_OK;
    }
    __sync_fetch_and_add(&s->dgrams[dir], 1);
    __sync_fetch_and_add(&s->bytes[dir], len);
    s->last_ns = now;
    return rc;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
