/* The UDP kernel path (routes with relay = kernel, README "UDP on 443"): once a side of a
 * flow is verified (its server has answered), the tc program (lib/udpnat.c) rewrites and
 * delivers its datagrams both ways without them reaching mux443; STUN and whatever the
 * program cannot deliver still come to the relay (udp_relay.c), which goes on as before.
 * Each side in the kernel has a slot of the program's: its counters join the flow's at
 * the end, its last use counts as activity, its deadline is pushed on by the idle sweep. */
#ifndef MUX443_CORE_UDP_KERNEL_H
#define MUX443_CORE_UDP_KERNEL_H

#include <stdbool.h>
#include <stdint.h>

#include "mux443/conf/desc.h"
#include "mux443/core/udp_flow.h"

/* At start, still privileged: loads and attaches the program when a UDP listener and a
 * relay = kernel route exist, with a slot for each side of `flows` flows (all workers'
 * tables). Logs one line: on which devices, or why not (flows then stay in user space). */
void udp_kernel_init(const struct cfg *cfg, uint32_t flows);

/* At exit: detaches and unloads it. */
void udp_kernel_fini(void);

/* Side `side` of f (whose slot in all workers' tables is `index`) has just been verified:
 * hands it to the kernel when its route asks for it and the flow can be (IPv4 or IPv6,
 * not link-local, client and server of one family, not transparent). Counted as kernel or fallback;
 * nothing changes on failure. */
void udp_kernel_enter(struct udp_flow *f, int side, uint32_t index, bool transparent);

/* Whether a side of f is in the kernel. */
bool udp_kernel_has(const struct udp_flow *f);

/* The idle sweep: the kernel's last use of f counts as activity (f->last_ms, on the
 * clock of now_ms), and its entries stay valid for a few more sweeps. */
void udp_kernel_sweep(struct udp_flow *f, uint64_t now_ms);

/* At the flow's end, before its close lines: takes its entries out of the program's map,
 * then adds what the kernel relayed to the sides' counts and the UDP totals. */
void udp_kernel_leave(struct udp_flow *f);

#endif
