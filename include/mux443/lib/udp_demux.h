/* UDP on 443, part 1: the pure first-byte demultiplexer for one datagram (RFC 9443 §3,
 * RFC 7983 §7), and the STUN fields that route it.
 *
 * Design of UDP on 443 (README "UDP on 443"):
 *  - A listener with `udp = yes` (next part) also takes UDP on its addresses: each worker
 *    opens its own SO_REUSEPORT UDP socket there, as it does for TCP. The kernel picks
 *    the socket by a hash of the 4-tuple, so every datagram of a client address+port
 *    lands on the same worker for as long as the group of sockets is unchanged — and it
 *    is: `workers` is fixed for the life of the process (a reload that changes it is
 *    refused) and a reload keeps the sockets of the addresses it keeps. One socket read by
 *    one thread would never rehash, but caps UDP at one core; media is most of the bytes.
 *  - A flow (core/udp_flow.h) belongs to the worker that read its first datagram: no lock,
 *    no cross-thread lookup. It holds up to two upstreams, each its own connected UDP
 *    socket (the media side and the TURN side of one browser socket), so a media server
 *    (ICE-lite) answers the right flow and an upstream datagram needs no lookup: the
 *    socket's watcher knows its flow and sends with sendto() on the listening socket.
 *  - This file only looks at bytes: one datagram in, what it is and which side of a
 *    flow it belongs to out. No state, no allocation, O(datagram length). */
#ifndef MUX443_LIB_UDP_DEMUX_H
#define MUX443_LIB_UDP_DEMUX_H

#include <stddef.h>
#include <stdint.h>

#include "mux443/lib/ice.h"

/* What the first byte (and the header checks behind it) says. */
enum udp_kind {
    UDP_OTHER,   /* no protocol of RFC 9443's table, or a malformed header: `why` says */
    UDP_STUN,    /* 0..3: STUN/TURN message with the magic cookie, length = datagram */
    UDP_DTLS,    /* 20..63: DTLS record (20..31 with version 0xfe..; 32..63 DTLS 1.3) */
    UDP_CHANNEL, /* 64..79: TURN ChannelData (RFC 8656 §12.4); also 80..127, the channels
                  * 0x5000..0x7fff of RFC 5766 that coturn's clients use (RFC 9443 gives
                  * that range to QUIC short headers: inside a QUIC flow the relay never
                  * looks at the first byte, so they need no class of their own) */
    UDP_RTP,     /* 128..191: RTP or RTCP version 2 (`rtcp` tells which, RFC 5761 §4) */
    UDP_QUIC,    /* 192..255: QUIC long header (RFC 9000 §17.2), fixed bit set */
};

/* Which conversation of a client socket a datagram belongs to (issue 12 point 2). */
enum udp_side {
    UDP_SIDE_NONE,  /* drop: not routable */
    UDP_SIDE_TURN,  /* TURN methods, ChannelData, Binding without USERNAME: coturn */
    UDP_SIDE_MEDIA, /* Binding request with USERNAME, DTLS, RTP/RTCP: the media server */
    UDP_SIDE_REPLY, /* a STUN response: back to whichever backend sent the request
                     * (by transaction id, udp_flow_tid_side); never opens a flow */
    UDP_SIDE_QUIC,  /* a client Initial that may open a QUIC flow (`quic` route); a
                     * flow it opens sends every later datagram to the same backend */
};

/* STUN classes (RFC 8489 §5): C1 C0 bits. */
enum stun_class { STUN_REQUEST = 0, STUN_INDICATION = 1, STUN_SUCCESS = 2, STUN_ERROR = 3 };

/* STUN and TURN methods (RFC 8489, RFC 8656, RFC 6062). */
#define STUN_M_BINDING      0x001
#define STUN_M_ALLOCATE     0x003
#define STUN_M_REFRESH      0x004
#define STUN_M_SEND         0x006
#define STUN_M_DATA         0x007
#define STUN_M_CREATE_PERM  0x008
#define STUN_M_CHANNEL_BIND 0x009
#define STUN_M_CONNECT      0x00a
#define STUN_M_CONN_BIND    0x00b
#define STUN_M_CONN_ATTEMPT 0x00c

struct udp_first {
    enum udp_kind kind;
    enum udp_side side;
    const char *why; /* UDP_OTHER, or a STUN Binding request without a usable
                      * USERNAME: a static string; else NULL */
    /* UDP_STUN */
    uint16_t stun_method; /* 12-bit method */
    uint8_t stun_class;   /* enum stun_class */
    uint8_t tid[12];      /* transaction id */
    uint16_t ufrag_len;   /* server ufrag of USERNAME "<server>:<client>", or 0 */
    char ufrag[UFRAG_MAX + 1];
    bool cufrag_ok; /* the client ufrag after ':' is a valid ufrag too */
    bool integrity; /* MESSAGE-INTEGRITY(-SHA256) present (not verified) */
    /* UDP_CHANNEL */
    uint16_t channel; /* 0x4000..0x7fff */
    /* UDP_RTP */
    uint8_t rtcp; /* 1: RTCP (packet type 192..223), 0: RTP */
    /* UDP_QUIC */
    uint32_t quic_version;
    uint8_t quic_dcid_len; /* the Destination Connection ID's length */
};

/* RFC 9000 §14.1: a client pads every datagram that carries an Initial to 1200 bytes. */
#define QUIC_INITIAL_MIN 1200

/* Classifies the datagram p[0..n) (n may be 0). Always fills *out; never reads past n. */
void udp_demux(const uint8_t *p, size_t n, struct udp_first *out);

/* Printable names for --explain and logs. */
const char *udp_kind_name(enum udp_kind k);
const char *udp_side_name(enum udp_side s);

#endif
