/* Workers: one thread, one libev loop and one set of SO_REUSEPORT listening sockets
 * each. The main thread binds, starts the workers, and turns signals into drain. */
#ifndef MUX443_LISTENER_H
#define MUX443_LISTENER_H

#include <ev.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "mux443/conf/config.h"

#define RELAY_BUF (64 * 1024)

struct lsock {
    ev_io io;
    int fd;
    struct cfg_listener *lst; /* in the worker's snapshot (its open count is mutable) */
    const struct cfg_addr *addr;
    struct worker *w;
};

struct worker {
    unsigned id;
    struct ev_loop *loop;
    pthread_t thread;
    struct cfg *cfg; /* snapshot for new connections (a reference) */
    struct lsock *lsocks;
    size_t nlsocks;
    ev_async wake; /* main thread -> worker: the mailbox below has something */
    pthread_mutex_t mbox_lock;
    struct cfg *mbox_cfg;      /* a new snapshot to apply (a reference), with ... */
    struct lsock *mbox_lsocks; /* ... its listening sockets */
    size_t mbox_n;
    bool mbox_stop;        /* drain */
    ev_timer accept_pause; /* accept stopped after EMFILE/ENFILE, resumes on this timer */
    ev_timer drain_timer;
    bool stopping;
    uint8_t *scratch; /* RELAY_BUF bytes: every read lands here first */
    struct conn *conns;
    size_t nconns;
    uint64_t next_id;
};

/* Connections open in the whole process (max_connections). */
extern atomic_uint listener_open_conns;

/* Binds every listener address once per worker (SO_REUSEPORT). Returns 0, or -1 after
 * logging what could not be bound. */
int workers_init(struct cfg *c, const char *path);
/* Starts the worker threads and runs the main loop (signals: SIGHUP reloads `path`,
 * SIGTERM/SIGINT drain; admin listener; health checks) until the workers have drained.
 * Returns the process exit status. */
int workers_run(void);

/* Called by conn.c when a connection closes (drain bookkeeping). */
void worker_conn_closed(struct worker *w);

#endif
