/* The contract between the probe dispatcher (probe.c) and each probe: one step function
 * per probe that resumes from struct probe_state. Private to the lib layer and its tests. */
#ifndef MUX443_PROBE_STEP_H
#define MUX443_PROBE_STEP_H

#include "mux443/lib/probe.h"

/* One probe over p[0..n), resuming from its part of st (n never less than at the previous
 * call). MATCH/NOMATCH: out is reset and filled as the stateless probe would. AGAIN: out
 * holds nothing (callers reset it), and *need (preset to n + 1) may be raised to the
 * buffer length below which the answer cannot change, so that the dispatcher can skip
 * calls until then.
 * Each call costs O(1 + new bytes), plus the parse of the unit once it is complete. */
typedef enum probe_result (*probe_step_fn)(struct probe_state *st, const uint8_t *p, size_t n,
                                           struct probe_out *out, size_t *need);

enum probe_result probe_tls_step(struct probe_state *st, const uint8_t *p, size_t n,
                                 struct probe_out *out, size_t *need);
void probe_http_init(struct probe_state *st);
enum probe_result probe_http_step(struct probe_state *st, const uint8_t *p, size_t n,
                                  struct probe_out *out, size_t *need);
enum probe_result probe_stun_step(struct probe_state *st, const uint8_t *p, size_t n,
                                  struct probe_out *out, size_t *need);
enum probe_result probe_ice_tcp_step(struct probe_state *st, const uint8_t *p, size_t n,
                                     struct probe_out *out, size_t *need);

/* One probe of the table, incrementally, the way probe_detect runs it: the step is
 * skipped while n is below its need (AGAIN) or once it refused (NOMATCH, out not written:
 * the reason is st->slot[id].why, as seen when it refused; a fresh run over more bytes
 * may name another flaw of the same bytes). out is meaningful only when the step ran. */
enum probe_result probe_run(struct probe_state *st, enum probe_id id, const uint8_t *p, size_t n,
                            struct probe_out *out);

/* The stateless form of probe `id`: a fresh state and one call. */
enum probe_result probe_once(enum probe_id id, const uint8_t *p, size_t n, struct probe_out *out);

/* Work counter for the linearity test: built with -DMUX443_PROBE_COUNT only (it is a
 * global, which the daemon's worker threads must not share). Counts step calls and the
 * bytes a probe examines beyond a constant per call. */
#ifdef MUX443_PROBE_COUNT
extern unsigned long long probe_work;
#define PROBE_WORK(k) (probe_work += (unsigned long long)(k))
#else
#define PROBE_WORK(k) ((void)0)
#endif

#endif
