/* UDP on 443: one worker's relay of datagrams between clients and backends (README
 * "UDP on 443"). The worker's loop calls udp_relay_read when one of its UDP listening
 * sockets is readable; each flow's upstream sockets have their own watchers. */
#ifndef MUX443_CORE_UDP_RELAY_H
#define MUX443_CORE_UDP_RELAY_H

#include <ev.h>

#include "mux443/core/snapshot.h"
#include "mux443/lib/udp_demux.h"

struct udp_relay;

/* The route of a datagram d that opens side `side` (enum udp_up_side) of a flow: routes
 * are shared with TCP — the media side is routed as class ice-tcp, the TURN side as
 * class stun, both as plain transport (tls = no matches). NULL when none matches. The
 * relay and --explain --udp both decide with this. */
const struct cfg_route *udp_route(const struct cfg *c, const struct cfg_listener *lst,
                                  const struct udp_first *d, int side);
/* What udp_route routes on: d as the probe result of a TCP connection of that class. */
void udp_probe_of(const struct udp_first *d, int side, struct probe_out *p);

/* A worker's relay, its flow table sized for configuration c shared by nworkers. NULL
 * after logging when out of memory. */
struct udp_relay *udp_relay_new(struct ev_loop *loop, unsigned worker, const struct cfg *c,
                                unsigned nworkers);
/* Ends every flow (logged with `reason`) and frees the relay. NULL ok. */
void udp_relay_free(struct udp_relay *u, const char *reason);
/* At start, still privileged: the kernel path for the flow tables of nworkers workers
 * (core/udp_kernel.h; udp_kernel_fini unloads it). */
void udp_relay_kernel_init(const struct cfg *c, unsigned nworkers);
/* A reload's limits (the table's capacity stays). */
void udp_relay_limits(struct udp_relay *u, const struct cfg *c, unsigned nworkers);

/* Reads a batch of datagrams from the UDP listening socket lfd of listener lst; new
 * flows take snapshot s. */
void udp_relay_read(struct udp_relay *u, struct snap *s, const struct cfg_listener *lst, int lfd);

/* The listening socket lfd is going away (a reload dropped its address): its flows end. */
void udp_relay_forget(struct udp_relay *u, int lfd);

#endif
