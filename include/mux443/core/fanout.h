/* ICE-TCP fan-out: for a ufrag nobody registered, offer the client's first Binding
 * request to every server of the pool and keep the one that answers with a Binding
 * success for that transaction; the others are closed. */
#ifndef MUX443_CORE_FANOUT_H
#define MUX443_CORE_FANOUT_H

#include <stddef.h>

#include "mux443/core/session.h"

/* Before entering CONN_FANOUT, with p the findings on the client's first frame (the
 * first p->consumed bytes of its preread buffer): admits the fan-out or refuses it
 * (false, c->reason set, counted by reason). Only a Binding request with a USERNAME of
 * two well-formed ufrags and a MESSAGE-INTEGRITY fans out, within fanout_per_client
 * for the client's prefix and fanout_rate per second. */
bool fanout_prepare(struct conn *c, const struct probe_out *p);
/* The admission every fan-out passes, ICE-TCP's and UDP's: fewer than fanout_per_client
 * in progress for the client keyed by `key` (keyed false: not counted per client), and
 * one more this second under fanout_rate (a window per wall-clock second, shared by
 * every worker). Returns MXF_COUNT when admitted — the per-client count is then held:
 * limits_client_release(LIMITS_FANOUTS, key) when the fan-out ends — else the reason,
 * with nothing held; *log_it says a per-client refusal should be logged. */
enum mx_fanout_refuse fanout_admit(const struct cfg *cfg, const uint8_t *key, bool keyed,
                                   bool *log_it);

/* CONN_FANOUT: starts the candidates when entered; DONE once a server won (it is the
 * backend leg now, its answer waiting for the client, the first frame consumed); FAIL
 * when every candidate lost or fanout_timeout passed. Candidate events call
 * conn_wake. */
enum step fanout_step(struct conn *c, int revents);

/* Closes the candidates and frees the fan-out (conn_close). */
void fanout_free(struct conn *c);

#endif
