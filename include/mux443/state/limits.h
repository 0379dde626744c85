/* Connections per client address: a process-wide table (all workers), with refusals
 * logged at most once per address per interval so a flood cannot flood the log. */
#ifndef MUX443_LIMITS_H
#define MUX443_LIMITS_H

#include <stdbool.h>
#include <sys/socket.h>

/* Counts one more connection from sa's address. Returns false (and counts nothing) if
 * that would exceed max (max 0 = no limit: always true). *log_it says whether this
 * refusal should be logged (first one for this address in LIMITS_LOG_INTERVAL). */
bool limits_acquire(const struct sockaddr *sa, unsigned max, bool *log_it);
/* Releases what limits_acquire counted. */
void limits_release(const struct sockaddr *sa);

#define LIMITS_LOG_INTERVAL 10 /* seconds */

#endif
