/* A worker for the connection tests: a real libev loop, a connection pool and a live
 * snapshot made from a configuration text, the test's own sockets (the client end of a
 * socketpair, loopback backends on port 0), and mux443's log captured from fd 2. The loop
 * runs in steps until a condition holds, woken by readiness: no sleeps. */
#ifndef MUX443_CONN_HARNESS_H
#define MUX443_CONN_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mux443/core/session.h"

#define H_MAX_WAKE  4
#define H_DEADLINE  10.0   /* seconds a condition may take before the test fails */
#define H_MAX_STEPS 100000 /* loop iterations likewise */

struct harness {
    struct conn_pool pool;
    struct snap *snap;
    ev_timer watchdog;
    bool expired;
    ev_io wake[H_MAX_WAKE]; /* the test's sockets whose readiness should wake the loop */
    size_t nwake;
    int log_fd; /* a temporary file: fd 2 points at it while mux443 code runs */
    int saved_stderr;
    /* Admission counts at h_init (mx.open_all, then per listener): a failed earlier test
     * may have left connections counted. */
    unsigned open_before, lst_open_before[8];
};

/* Loads the configuration (printf format) with cfg_load_stream, activates it and makes
 * the pool. Fails the test on any error. */
void h_init(struct harness *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Asserts that every connection has ended (list empty, nconns 0), then frees everything. */
void h_fini(struct harness *h);

/* Hands one end of a new AF_UNIX socketpair to conn_accept on listener `lst` as if it came
 * from peer 192.0.2.7:40000; returns the test's end (non-blocking). sndbuf > 0 sets the
 * SO_SNDBUF of mux443's end (back-pressure tests). */
int h_client(struct harness *h, const char *lst, int sndbuf);

/* A loopback TCP listener on port 0 (non-blocking); *port gets the port. */
int h_listen(unsigned *port);
/* A loopback port that refuses connections: bound, not listening (keep the descriptor
 * open for the test's length so that nothing else takes the port). */
int h_refusing(unsigned *port);

/* One loop iteration (flags as ev_run's: EVRUN_ONCE, EVRUN_NOWAIT), log captured. */
void h_step(struct harness *h, int flags);
/* Adds fd to the sockets that wake the loop during the next h_run. */
void h_watch(struct harness *h, int fd, int events);
/* Runs the loop one iteration at a time until done(arg) is true; fails the test (with
 * `what`) after H_DEADLINE seconds or H_MAX_STEPS iterations. Clears the watches. */
void h_run(struct harness *h, bool (*done)(void *), void *arg, const char *what);

/* Runs until listener lfd has a connection; returns it (non-blocking). */
int h_accept(struct harness *h, int lfd);
/* Runs until n bytes have been read from fd into buf; fails on EOF before that. */
void h_read(struct harness *h, int fd, void *buf, size_t n);
/* Runs until fd reaches end of stream; fails if bytes arrive first. */
void h_read_eof(struct harness *h, int fd);
/* Runs until the pool has no connection left. */
void h_wait_closed(struct harness *h);
/* Sends all of p on a non-blocking socket (short messages: fails if it would block). */
void h_send(int fd, const void *p, size_t n);

/* Sends p on `from` and checks that exactly those bytes arrive at `to` (through mux443). */
void h_pass(struct harness *h, int from, int to, const void *p, size_t n);

/* Everything mux443 logged so far, NUL-terminated (caller frees). */
char *h_log(struct harness *h);
/* The last close line (one with `reason=`) logged so far, or fails the test. Caller
 * frees. */
char *h_close_line(struct harness *h);

/* The first connection of the pool (NULL when none). */
static inline struct conn *h_conn(struct harness *h)
{
    return h->pool.conns;
}

#endif
