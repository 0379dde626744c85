/* UDP flows of one worker: the table that keeps every datagram of a client address+port
 * on the backend its first datagram chose (README "UDP on 443").
 *
 * A flow belongs to the worker whose SO_REUSEPORT socket read its first datagram (the
 * kernel keeps a 4-tuple on one socket), so the table is per worker and has no lock.
 * Lookup is O(1): chained buckets over a slot array allocated once, keyed by the client's
 * address and port under the process's SipHash key (lib/hash.h), so a client cannot aim
 * its source ports at one bucket. Nothing is allocated per flow or per datagram.
 *
 * Bounds, because UDP sources are spoofable: flows in total (the slot array), flows per
 * client prefix (/24 for IPv4, /64 for IPv6), and new flows per second (a token bucket).
 * A refused flow is counted by reason; flows already in the table are never evicted
 * for a new one, so a flood of new sources cannot push an established call out.
 *
 * A flow holds up to two upstreams (UDP_UP_MEDIA, UDP_UP_TURN): one client socket can
 * talk ICE/DTLS/SRTP with a media server and TURN with coturn at once; the first
 * datagram of each side opens that side's upstream. STUN responses from the client go
 * back to the side whose backend sent the request, found by transaction id among the
 * last UDP_TIDS requests the flow relayed to the client. */
#ifndef MUX443_CORE_UDP_FLOW_H
#define MUX443_CORE_UDP_FLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <ev.h>

#include "mux443/lib/ice.h"
#include "mux443/lib/udpnat.h"

struct ufrag_entry;

/* UDP_UP_QUIC is the only side of a QUIC flow (f->kind UDP_QUIC): every datagram of
 * that client socket goes there, whatever its first byte. */
enum udp_up_side { UDP_UP_MEDIA, UDP_UP_TURN, UDP_UP_QUIC, UDP_UPS };

/* Why a new flow was refused (metrics label), or UDPR_OK. */
enum udp_refuse { UDPR_OK, UDPR_FULL, UDPR_PREFIX, UDPR_RATE, UDPR_FAMILY, UDPR_COUNT };

#define UDP_TIDS 4 /* backend-sent STUN requests remembered per flow */

struct udp_limits {
    uint32_t max_flows;   /* the table's capacity (> 0) */
    uint32_t per_prefix;  /* flows per client /24 or /64; 0 = no limit */
    uint32_t new_per_sec; /* flows opened per second; 0 = no limit (burst: one second's) */
};

/* A client address as a key: the IP as 16 bytes (IPv4 v4-mapped, lib/addr.h) and the
 * port in network order. */
struct udp_peer {
    uint8_t ip[16];
    uint16_t port;
};

/* One upstream: a connected UDP socket to one server. The owner opens and closes fd;
 * the table only carries it. `in` is client → server, `out` server → client. */
struct udp_up {
    ev_io io;                       /* first: the owner's watcher on fd (io.data: the flow) */
    int fd;                         /* -1: this side is not open */
    uint32_t server;                /* the owner's index of the server in its route */
    const void *route;              /* the owner's route (opaque here) */
    struct ufrag_entry *ufrag_held; /* the ufrag table entry that chose the server */
    uint64_t dgrams_in, bytes_in, dgrams_out, bytes_out;
    uint32_t unverified; /* datagrams relayed up before the server's first answer */
    bool verified;       /* the server has answered */
    /* The kernel path (core/udp_kernel.c): its slot + 1 (0: user space only) and the
     * rewrite of the client's datagrams (v6: the flow's k_v6), whose swap is the key of
     * the server's. */
    uint32_t kslot;
    union {
        struct udpnat_nat v4;
        struct udpnat_nat6 v6;
    } knat;
};

struct udp_flow {
    struct udp_peer peer;
    struct sockaddr_storage addr; /* the client's address, for sendto() */
    socklen_t addr_len;
    int lfd;         /* the listening socket it came in on (replies leave from it) */
    void *owner;     /* the owner's worker state */
    void *snap;      /* the owner's snapshot reference (routes stay valid across reloads) */
    const void *lst; /* the owner's listener */
    uint64_t id;
    uint32_t next;   /* bucket chain: slot index + 1, 0 = end */
    uint32_t prefix; /* prefix node index + 1 */
    bool used;
    uint8_t kind; /* the first datagram's enum udp_kind */
    uint64_t start_ms, last_ms;
    uint32_t idle_ms; /* the longest of its sides' routes' */
    struct udp_up up[UDP_UPS];
    uint8_t tid[UDP_TIDS][12];
    uint8_t tid_side[UDP_TIDS]; /* enum udp_up_side + 1; 0 = empty */
    uint8_t tid_next;
    char ufrag[UFRAG_MAX + 1]; /* the server ufrag that routed the media side, or "" */
    void *fan;                 /* the owner's fan-out in progress for the media side, or NULL */
    /* The client's datagrams as the kernel path sees them (network order): IPv4 in
     * k_client and k_listen, or with k_v6 IPv6 in k6_client and k6_listen. */
    uint32_t k_client, k_listen;
    uint16_t k_cport, k_lport;
    bool k_v6;
    uint8_t k6_client[16], k6_listen[16];
};

struct udp_prefix {
    uint8_t ip[16]; /* masked */
    uint32_t count;
    uint32_t next; /* chain or free list: index + 1 */
};

struct udp_ftab {
    struct udp_limits lim;
    struct udp_flow *flows;       /* lim.max_flows slots */
    struct udp_prefix *pfx;       /* as many prefix nodes (one per flow at most) */
    uint32_t *bucket, *pbucket;   /* chains: index + 1 */
    uint32_t mask;                /* buckets - 1 (a power of two >= max_flows) */
    uint32_t free_flow, free_pfx; /* free lists: index + 1 */
    uint32_t open;
    double tokens;
    uint64_t tokens_ms;
    uint64_t refused[UDPR_COUNT];
};

/* Allocates the table for lim (max_flows > 0). Returns 0, or -1 (ENOMEM). */
int udp_ftab_init(struct udp_ftab *t, const struct udp_limits *lim);
void udp_ftab_free(struct udp_ftab *t);
/* A reload's new per_prefix and new_per_sec; max_flows stays (the capacity is fixed for
 * the life of the worker, as `workers` is). */
void udp_ftab_set_limits(struct udp_ftab *t, const struct udp_limits *lim);

/* The flow of client sa, or NULL. */
struct udp_flow *udp_ftab_find(struct udp_ftab *t, const struct sockaddr *sa);

/* Opens a flow for client sa (which has none) at now_ms: UDPR_OK with *out set (both
 * upstreams closed, fd -1), or why it was refused (counted in t->refused). */
enum udp_refuse udp_ftab_open(struct udp_ftab *t, const struct sockaddr *sa, socklen_t len,
                              uint64_t now_ms, struct udp_flow **out);

/* Removes f from the table (the owner has closed its upstreams' sockets). */
void udp_ftab_close(struct udp_ftab *t, struct udp_flow *f);

/* Up to cap flows idle past their idle_ms at now_ms, starting the walk at *cursor (a slot
 * index the owner keeps, so that each call looks at a bounded number of slots: `scan`).
 * The owner logs and closes them. */
size_t udp_ftab_expired(struct udp_ftab *t, uint64_t now_ms, uint32_t *cursor, uint32_t scan,
                        struct udp_flow **v, size_t cap);

/* Whether one more client datagram may go up to u: always once the server has answered;
 * before that, up to `budget` datagrams (an unverified flow cannot make mux443 send a
 * server more than that for a spoofed source). Counts it when true. */
bool udp_up_admit(struct udp_up *u, uint32_t budget);

/* Remembers that the backend of `side` sent the client a STUN request with this
 * transaction id; udp_flow_tid_side finds the side again for the client's response (and
 * forgets it), or returns -1. */
void udp_flow_note_tid(struct udp_flow *f, enum udp_up_side side, const uint8_t tid[12]);
int udp_flow_tid_side(struct udp_flow *f, const uint8_t tid[12]);

const char *udp_refuse_name(enum udp_refuse r);

#endif
