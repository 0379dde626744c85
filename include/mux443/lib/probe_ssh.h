/* SSH probe (RFC 4253 section 4.2): the client's identification string "SSH-2.0-..." or
 * "SSH-1.99-...". Pure function, same contract as the probes in probe.h. */
#ifndef MUX443_LIB_PROBE_SSH_H
#define MUX443_LIB_PROBE_SSH_H

#include "mux443/lib/probe.h"

/* MATCH as soon as "SSH-2.0-" or "SSH-1.99-" is complete (the rest of the line is the
 * software version, which no rule looks at); out->consumed is that prefix. Clients send
 * the string first (only servers may send other lines before it), so anything else is
 * NOMATCH at its first differing byte. A client that waits for the server's string
 * first stays silent: that is the on_timeout case.
 * Need (for a resumable table): n + 1 until 9 bytes. */
enum probe_result probe_ssh(const uint8_t *p, size_t n, struct probe_out *out);

/* The dispatcher's step (probe_step_fn): need stays n + 1. */
enum probe_result probe_ssh_step(struct probe_state *st, const uint8_t *p, size_t n,
                                 struct probe_out *out, size_t *need);

#endif
