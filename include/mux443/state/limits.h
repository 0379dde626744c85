/* Connection limits: admission against a count of open connections (process-wide,
 * per listener), and counts per client (an address prefix) in process-wide tables with
 * refusals logged at most once per client per interval, so a flood cannot flood the
 * log. */
#ifndef MUX443_STATE_LIMITS_H
#define MUX443_STATE_LIMITS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define LIMITS_LOG_INTERVAL 10 /* seconds */

/* Counts one more open connection in *open unless that would exceed max (0 = no
 * limit). The check and the increment are one atomic step, so concurrent workers can
 * never let more than max in. Returns false (nothing counted) when refused. */
bool limits_admit(atomic_uint *open, unsigned max);
/* Releases what limits_admit counted. */
void limits_leave(atomic_uint *open);

/* What is counted per client: open connections, ICE-TCP fan-outs in progress. */
enum limits_kind { LIMITS_CONNS, LIMITS_FANOUTS, LIMITS_KINDS };

/* The key that stands for sa's client: its address with the host bits past v4_prefix
 * (IPv4) or v6_prefix (IPv6) cleared, so that one client holding a whole prefix (an
 * IPv6 /64 is one subscriber) counts once. text (if not NULL) gets "PREFIX/LEN" for
 * logs. False for families without an address. */
bool limits_client_key(const struct sockaddr *sa, unsigned v4_prefix, unsigned v6_prefix,
                       uint8_t key[16], char *text, size_t cap);

/* Counts one more of kind for the client key. Returns false (and counts nothing) if
 * that would exceed max (max 0 = no limit: always true). *log_it says whether this
 * refusal should be logged: the first while the client holds its max, then at most once
 * per LIMITS_LOG_INTERVAL (a client whose count went back to 0 starts afresh: its entry
 * is gone). */
bool limits_client_acquire(enum limits_kind kind, const uint8_t key[16], unsigned max,
                           bool *log_it);
/* Releases what limits_client_acquire counted. */
void limits_client_release(enum limits_kind kind, const uint8_t key[16]);

/* The preread budget: bytes of detection buffers held by all connections together.
 * A connection's first block (first bytes) may use all of `budget`; growing a buffer
 * past it may only use budget - budget / LIMITS_BUDGET_RESERVE, so that the clients
 * that fill their buffers slowly cannot keep new clients from being read at all.
 * Returns false (nothing taken) when the bytes are not there. */
#define LIMITS_BUDGET_RESERVE 8
bool limits_preread_take(size_t n, size_t budget, bool first);
void limits_preread_give(size_t n);
/* Bytes taken now. */
size_t limits_preread_held(void);

#endif
