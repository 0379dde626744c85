/* Connection limits: admission against a count of open connections (process-wide,
 * per listener), and connections per client address in a process-wide table with
 * refusals logged at most once per address per interval, so a flood cannot flood the
 * log. */
#ifndef MUX443_STATE_LIMITS_H
#define MUX443_STATE_LIMITS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>

#define LIMITS_LOG_INTERVAL 10 /* seconds */

/* Counts one more open connection in *open unless that would exceed max (0 = no
 * limit). The check and the increment are one atomic step, so concurrent workers can
 * never let more than max in. Returns false (nothing counted) when refused. */
bool limits_admit(atomic_uint *open, unsigned max);
/* Releases what limits_admit counted. */
void limits_leave(atomic_uint *open);

/* Counts one more connection from sa's address. Returns false (and counts nothing) if
 * that would exceed max (max 0 = no limit: always true). *log_it says whether this
 * refusal should be logged: the first while the address holds its max connections, then
 * at most once per LIMITS_LOG_INTERVAL (an address whose connections all closed starts
 * afresh: its entry is gone). */
bool limits_client_acquire(const struct sockaddr *sa, unsigned max, bool *log_it);
/* Releases what limits_client_acquire counted. */
void limits_client_release(const struct sockaddr *sa);

#endif
