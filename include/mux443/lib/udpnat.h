/* The UDP kernel path's BPF side (README "UDP on 443", "Kernel relay"): loads the embedded
 * tc program (src/bpf/udp_nat.bpf.c), attaches it at the ingress of the chosen devices
 * with tcx links (held as descriptors: nothing stays attached when mux443 exits), and
 * puts NAT entries in its map and takes them out. Each side of a flow in the kernel has a
 * slot, memory shared with the program: its counters and last use are read, its
 * deadline written, with plain loads and stores. Knows nothing of flows. */
#ifndef MUX443_LIB_UDPNAT_H
#define MUX443_LIB_UDPNAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The program's struct un_key: the 4-tuple a datagram carries, network order. */
struct udpnat_key {
    uint32_t saddr, daddr;
    uint16_t sport, dport;
};

/* The rewrite: the datagram's new source and destination, its side's slot + 1, and how
 * daddr is reached (udpnat_route). */
struct udpnat_nat {
    uint32_t saddr, daddr;
    uint16_t sport, dport;
    uint32_t slot;
    uint32_t ifindex; /* out of this device; 0: daddr is local */
    uint32_t flags;   /* UDPNAT_LO_OK */
};

/* A local daddr may be reached from another device through lo's input (see udpnat_route). */
#define UDPNAT_LO_OK 1u

enum { UDPNAT_FWD, UDPNAT_REV };

/* A client -> listener entry (UDPNAT_FWD) rewrites by the datagram's first byte: nat[0]
 * DTLS and RTP/RTCP (media), nat[1] ChannelData (TURN); with quic, every datagram by
 * nat[2]. A server -> upstream socket entry (UDPNAT_REV) rewrites by nat[0] every
 * datagram but STUN (all of them with quic). A nat whose slot is 0 rewrites nothing. */
struct udpnat_entry {
    uint8_t dir;
    uint8_t quic;
    uint16_t pad;
    struct udpnat_nat nat[3];
};

/* The same for IPv6 flows, in a map of their own (the program's un_key6, un_nat6,
 * un_entry6): IPv4's keys and rewrites stay 4-byte ones. Addresses as 16 bytes. */
struct udpnat_key6 {
    uint8_t saddr[16], daddr[16];
    uint16_t sport, dport;
};

struct udpnat_nat6 {
    uint8_t saddr[16], daddr[16];
    uint16_t sport, dport;
    uint32_t slot;
    uint32_t ifindex;
    uint32_t flags;
};

struct udpnat_entry6 {
    uint8_t dir;
    uint8_t quic;
    uint16_t pad;
    struct udpnat_nat6 nat[3];
};

/* The program's struct un_slot. */
struct udpnat_slot {
    uint64_t dgrams[2], bytes[2]; /* [0] client -> server, [1] server -> client; payload */
    uint64_t last_ns;             /* CLOCK_MONOTONIC of the last datagram moved, 0: none */
    uint64_t deadline_ns;         /* the program moves nothing past it */
};

struct udpnat;

/* Loads the program with room for `slots` slots and `entries` entries and attaches it to
 * the devices named in `devices` (comma or space separated), or with NULL to every device
 * up now (lo included). Needs CAP_BPF + CAP_NET_ADMIN (or root) and tcx (Linux 6.6). NULL
 * with the reason in err when it cannot, or when no device took it. A device that cannot
 * take it (unknown, down, without an Ethernet header) is left out and named in
 * udpnat_skipped. */
struct udpnat *udpnat_open(const char *devices, uint32_t slots, uint32_t entries, char *err,
                           size_t cap);

/* Detaches and unloads (closes the links and the maps). NULL ok. */
void udpnat_close(struct udpnat *n);

/* The devices that have the program, and those left out with why ("" if none): text. */
const char *udpnat_attached(const struct udpnat *n);
const char *udpnat_skipped(const struct udpnat *n);

/* Slot i (< slots), shared with the program. */
struct udpnat_slot *udpnat_slot(struct udpnat *n, uint32_t i);

/* Adds or replaces the entry for k: 0, or -1 with errno (E2BIG: the map is full). */
int udpnat_put(struct udpnat *n, const struct udpnat_key *k, const struct udpnat_entry *e);

/* How to reach daddr from saddr (network order): fills n's ifindex and flags from the
 * kernel's routing table (RTM_GETROUTE). A local daddr gets UDPNAT_LO_OK when lo's
 * settings let a datagram from saddr to daddr enter there from another device:
 * accept_local (the source is this host's own address), and route_localnet when either
 * address is in 127/8 (read at udpnat_open). False when there is no route. */
bool udpnat_route(const struct udpnat *n, struct udpnat_nat *nat);

/* Removes the entry for k (absent is fine). */
void udpnat_del(struct udpnat *n, const struct udpnat_key *k);

/* IPv6: as udpnat_put, udpnat_route and udpnat_del. A local daddr always gets
 * UDPNAT_LO_OK: IPv6's input takes our own addresses, ::1 included, as a source on lo. */
int udpnat_put6(struct udpnat *n, const struct udpnat_key6 *k, const struct udpnat_entry6 *e);
bool udpnat_route6(const struct udpnat *n, struct udpnat_nat6 *nat);
void udpnat_del6(struct udpnat *n, const struct udpnat_key6 *k);

/* The program's clock (bpf_ktime_get_ns: CLOCK_MONOTONIC). */
uint64_t udpnat_now_ns(void);

/* Reads a counter the program writes. */
static inline uint64_t udpnat_load(const uint64_t *field)
{
    return __atomic_load_n(field, __ATOMIC_RELAXED);
}

#endif
