/* Classifying the first bytes of a connection: every probe over the same bytes, each
 * resuming where it left off, so that the CPU a first flight costs is linear in its
 * bytes however they are split into reads. */
#ifndef MUX443_LIB_CLASSIFY_H
#define MUX443_LIB_CLASSIFY_H

#include "mux443/lib/probe.h"

/* Ready for a new stream (a new connection, or the plaintext inside terminated TLS). */
void probe_state_init(struct probe_state *st);

/* Runs every probe that can still match, resuming where each left off, so that the CPU
 * spent on a connection is linear in its bytes however they are split into reads.
 * p/n: every byte received so far. Each call passes the bytes of the previous call plus
 * zero or more new ones (the buffer may have moved; bytes already passed must not change).
 * MATCH: out is the matching probe's result. AGAIN: at least one probe still wants bytes
 * (out zeroed). NOMATCH: none can match (out->cls = CLASS_UNKNOWN, out->why says what was
 * seen, from the probe the first bytes pointed at). Results equal those of a fresh state
 * given all n bytes in one call. MATCH and NOMATCH are final: do not call again before
 * probe_state_init. A further call answers the same (a MATCH's unit is parsed again; a
 * NOMATCH keeps its reason, where a fresh state given more bytes might name another flaw). */
enum probe_result probe_detect(struct probe_state *st, const uint8_t *p, size_t n,
                               struct probe_out *out);

/* One probe of the table, incrementally, the way probe_detect runs it: the step is
 * skipped while n is below its need (AGAIN) or once it refused (NOMATCH, out not written:
 * the reason is st->slot[id].why, as seen when it refused; a fresh run over more bytes
 * may name another flaw of the same bytes). out is meaningful only when the step ran. */
enum probe_result probe_run(struct probe_state *st, enum probe_id id, const uint8_t *p, size_t n,
                            struct probe_out *out);

#endif
