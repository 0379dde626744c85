/* Counters of UDP on 443 (README "UDP on 443"): flows by class, datagrams and bytes each
 * way, drops by reason, the flow tables' size. Process-wide, all workers together. */
#ifndef MUX443_STATE_UDP_METRICS_H
#define MUX443_STATE_UDP_METRICS_H

#include <stdatomic.h>
#include <stdio.h>

/* A flow side's class: the TURN/STUN server, the media server, or a QUIC backend. */
enum mxu_class { MXU_STUN, MXU_ICE_UDP, MXU_QUIC_UDP, MXU_CLASS_COUNT };

/* Why a datagram from a client was not relayed. */
enum mxu_drop {
    MXU_TABLE_FULL, /* new flow: the worker's table is full */
    MXU_PER_PREFIX, /* new flow: too many from the client's /24 or /64 */
    MXU_RATE,       /* new flow: udp_new_flows_per_sec */
    MXU_MALFORMED,  /* no protocol of RFC 9443's table, or a broken header */
    MXU_NOT_FIRST,  /* cannot open a flow or a side (DTLS, RTP, ChannelData, a response) */
    MXU_UNROUTABLE, /* no route, or no server owns the ufrag (none answered a fan-out) */
    MXU_QUIC,       /* a QUIC long header that opens nothing: not a client Initial of
                     * 1200 bytes or more, or from a client socket in a STUN/media flow */
    MXU_BUDGET,     /* the unverified budget of a side is spent */
    MXU_TOO_BIG,    /* larger than the relay's datagram buffer */
    MXU_UPSTREAM,   /* the upstream socket could not be opened or refused the send */
    MXU_DROP_COUNT
};

struct mx_udp {
    atomic_ullong flows_total[MXU_CLASS_COUNT];
    atomic_llong flows_open[MXU_CLASS_COUNT];
    atomic_ullong dgrams_in, bytes_in, dgrams_out, bytes_out; /* in = from clients */
    atomic_ullong drops[MXU_DROP_COUNT];
    atomic_llong table_flows;  /* flows in the tables (a flow may have two sides) */
    atomic_ullong table_slots; /* the tables' capacity */
    /* The kernel path (relay = kernel): sides in it now; sides verified on such a route
     * that entered it [0] or stayed in user space [1]; datagrams it relayed (counted when
     * their flows end). */
    atomic_llong kernel_sides;
    atomic_ullong kernel_total[2];
    atomic_ullong kernel_dgrams;
};

extern struct mx_udp mxu;

const char *mxu_class_name(enum mxu_class c);

/* Appends the UDP metrics to a Prometheus text rendering (metrics_render calls it). */
void udp_metrics_render(FILE *out);

#endif
