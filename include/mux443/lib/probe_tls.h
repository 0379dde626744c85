/* TLS ClientHello probe (record framing and defragmentation, SNI, ALPN, supported_versions;
 * SSLv2-format hellos). */
#ifndef MUX443_LIB_PROBE_TLS_H
#define MUX443_LIB_PROBE_TLS_H

#include "mux443/lib/probe.h"

/* Each probe, stateless: p/n are all bytes received so far (n may be 0). On MATCH,
 * out->cls and the protocol's fields are set; on NOMATCH, out->why may be set; on AGAIN,
 * out is zeroed. Each call starts afresh (it is the incremental probe given a new state
 * and one call), so it costs O(n): for a connection's first bytes, use probe_detect,
 * which resumes. */
enum probe_result probe_tls(const uint8_t *p, size_t n, struct probe_out *out);

/* Resumable form (the dispatcher's step, see probe_step_fn). */
enum probe_result probe_tls_step(struct probe_state *st, const uint8_t *p, size_t n,
                                 struct probe_out *out, size_t *need);

#endif
