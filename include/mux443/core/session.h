/* A relayed connection's data — two symmetric legs (client, backend) that point at each
 * other, its phase, its snapshot, what was recognised — and the few helpers its phase
 * functions share. The phases themselves are in detect.c, relay.c, fanout.c and
 * conn.c; conn.c alone moves a connection from one phase to the next and ends it. */
#ifndef MUX443_CORE_SESSION_H
#define MUX443_CORE_SESSION_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "mux443/core/snapshot.h"
#include "mux443/lib/addr.h"
#include "mux443/lib/buf.h"
#include "mux443/lib/classes.h"
#include "mux443/lib/probe.h"
#include "mux443/lib/transport.h"

/* Bytes a relayed read takes at most, and the most a leg keeps for a peer that cannot
 * take them yet (back-pressure: at most one buffer ahead). */
#define RELAY_BUF (64 * 1024)

struct conn;

/* One side of a connection. Its connection and its peer (the other leg) follow from
 * which of the two it is (leg_conn, leg_peer): two pointers less in every leg. */
struct leg {
    struct transport tp; /* the socket (fd -1 until there is one), transport, readiness */
    struct buf pend;     /* read from this leg, not yet written to peer (also the preread) */
    int pipe[2];         /* plain<->plain bulk: splice(2) through this pipe; -1 until then */
    uint32_t piped;      /* bytes of this leg waiting in the pipe */
    bool backend : 1;    /* the connection's backend leg (else its client leg) */
    bool rd_eof : 1;     /* this leg sent FIN */
    bool wr_shut : 1;    /* our end of stream went out on this leg (FIN, after close_notify) */
    bool nagle_on : 1;   /* TCP_NODELAY still to set before the next write (connect.h) */
    bool watched : 1;    /* in the pool's edge-triggered set (conn.c) */
    bool bulk : 1;       /* its last read filled a quarter of RELAY_BUF (relay.c: splice) */
    uint8_t want;        /* EV_READ/EV_WRITE its phase waits for (set by conn_update_io) */
    uint64_t bytes;      /* bytes read from this leg */
};

/* The phases, in the order a connection usually goes through them. */
enum conn_phase {
    CONN_PROXY,     /* reading an inbound PROXY header (listeners behind a load balancer) */
    CONN_DETECT,    /* reading the first bytes until the probes decide (again inside TLS) */
    CONN_HANDSHAKE, /* TLS termination: the handshake with the client */
    CONN_CONNECT,   /* connecting to a server of the backend, failing over */
    CONN_FANOUT,    /* ICE-TCP: offering the first frame to every server of the pool */
    CONN_RELAY,     /* relaying both ways until both ends closed or idle timeout */
};

/* What a phase function answers. */
enum step {
    STEP_AGAIN, /* waiting: for the sockets conn_update_io() watches, or the timer */
    STEP_DONE,  /* the phase is complete: the connection module picks the next */
    STEP_END,   /* close normally (info): c->reason says why */
    STEP_FAIL,  /* close as a failure (warn): c->reason says why */
};

/* A place in the pool's run queue (a circular list: leaving it needs no head). */
struct conn_link {
    struct conn_link *prev, *next;
};

/* What the connections of one worker thread share. */
struct conn_pool {
    struct ev_loop *loop;
    unsigned id;      /* worker number */
    uint8_t *scratch; /* RELAY_BUF bytes: every relayed read lands here first */
    struct conn *conns;
    size_t nconns;
    /* The connections' sockets, each registered once, edge-triggered (conn.c): libev
     * watches the set, the pool reads its events and runs the connections they concern
     * (and those with a leg still ready for what it waits for) from its run queue. */
    ev_io ready;
    ev_prepare run_prep; /* runs the queue before the loop waits */
    ev_idle run_more;    /* active while the queue is not empty: the loop must not wait */
    struct conn_link runq;
    bool running;
    /* relay = kernel (krelay.c): the watchdog, the connections it watches, the
     * unacknowledged bytes they held at its last tick */
    ev_timer krelay_watch;
    ev_io krelay_ends; /* an epoll set of their sockets that reports ends of stream only */
    unsigned nkrelay;
    int64_t krelay_backlog;
    /* Called after a connection closed (drain bookkeeping). */
    void (*on_close)(struct conn_pool *p);
    void *data;
};

struct fanout;
struct probe_state;
struct ufrag_entry;
struct krelay;

struct conn {
    uint64_t id;
    enum conn_phase phase;
    enum mux_class cls;
    enum class_label label; /* once counted */
    bool terminated;        /* mux443 terminated the client TLS: cls is what was inside */
    bool preread_full;      /* detection gave up at preread_max */
    bool counted;           /* in the connection metrics (label) */
    bool limit_held;        /* counted by limits_client_acquire */
    bool tfo_unconfirmed;   /* the first write rode on a TFO SYN: not yet known accepted */
    bool refused;           /* refused by a limit after the PROXY header (metrics) */
    bool woken;             /* conn_wake: run the phase once, whatever the sockets say */
    struct conn_pool *pool;
    struct snap *snap; /* the snapshot this connection was accepted under (a reference) */
    const struct cfg_listener *lst;
    const struct cfg_route *route;
    const struct cfg_backend *backend;
    const struct cfg_addr *server;
    struct leg client, backend_leg;
    ev_timer timer; /* timer.data is the conn; its deadline belongs to the phase */
    ev_tstamp started, last_io;
    union addr_ip peer_addr;  /* the client (from the PROXY header if any) */
    union addr_ip local_addr; /* what the client connected to (AF_UNSPEC: not asked yet) */
    /* Preread bytes (all below preread_max, a uint32_t): */
    uint32_t probed;      /* the probes have seen */
    uint32_t budget_held; /* the preread buffer counts in preread_budget */
    uint32_t proxy_need;  /* needed before the PROXY header can progress */
    uint32_t tfo_sent;    /* in the write that rode on a TFO SYN, consumed once confirmed */
    unsigned nattempts;   /* servers to try (1 when the ufrag names the server) */
    unsigned first, attempt;
    struct probe_state *probe;          /* detection in progress */
    struct probe_out *hello;            /* the ClientHello findings, kept during termination */
    const struct cfg_route *term_route; /* the tls = terminate rule that terminated, or NULL */
    char *ufrag;                        /* ICE-TCP server ufrag (routing by ufrag), or NULL */
    struct ufrag_entry *ufrag_held;     /* the ufrag table entry this connection holds */
    struct fanout *fanout;              /* ICE-TCP fan-out in progress */
    struct krelay *krelay;              /* relay = kernel: the kernel moves the bytes */
    char *desc;               /* escaped ` sni="..." host="..."` fields for the close line */
    char *reason;             /* why the connection ends (STEP_END / STEP_FAIL) */
    struct conn *prev, *next; /* the pool's list, for draining */
    struct conn_link queued;  /* in pool->runq (prev NULL: not queued) */
};

static inline struct conn *leg_conn(const struct leg *l)
{
    size_t at = l->backend ? offsetof(struct conn, backend_leg) : offsetof(struct conn, client);
    return (struct conn *)(void *)((char *)(uintptr_t)l - at);
}

static inline struct leg *leg_peer(const struct leg *l)
{
    struct conn *c = leg_conn(l);
    return l->backend ? &c->client : &c->backend_leg;
}

/* The per-client limit for a client whose address is now known: counts it (*held; key
 * is then its prefix), or refuses (counted, and logged at most once per client prefix
 * per interval). */
bool conn_admit_client(const struct cfg *cfg, const struct sockaddr *peer, uint8_t key[16],
                       bool *held);

/* The client's prefix, the per-client limits' key (false: its address has none). Worked
 * out again when needed rather than kept by every connection. */
bool conn_client_key(const struct conn *c, uint8_t key[16]);

/* Sets c->reason and returns STEP_FAIL (or STEP_END): what phases return to end. */
enum step conn_fail(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
enum step conn_end(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The phase's deadline: `after` seconds from now (0: none). The timer's expiry reaches
 * the phase as EV_TIMER. */
void conn_deadline(struct conn *c, double after);

/* Gives the backend leg its socket (a connected one, e.g. a fan-out's winner). */
void conn_backend_socket(struct conn *c, int fd);

/* Queues c in its pool's run queue: conn.c runs it (its legs ready for what they wait
 * for) before the loop waits again. */
void conn_queue(struct conn *c);

/* Makes the connection's driver run its current phase again soon (from the pool's run
 * queue, not from inside the caller), with EV_CUSTOM: for events on sockets that are not
 * the connection's own (the fan-out's candidates, the kernel relay's). */
void conn_wake(struct conn *c);

/* The client's address as text, in buf (for log lines: formatted when one is written,
 * not kept by every connection). */
const char *conn_peer_text(const struct conn *c, char buf[ADDR_TEXT_MAX]);

/* The address the client connected to (from the PROXY header, else getsockname). */
const struct sockaddr *conn_local_addr(struct conn *c);

/* "client" or "backend", for reasons and log lines. */
const char *leg_name(const struct leg *l);

/* Before a write to `to` that may not be its first: turns Nagle off if connect left it on
 * (CONNECT_NODELAY_LATER, core/connect.h). */
void leg_before_write(struct leg *to);

/* Passes n bytes just read from `from` (already counted) on to its peer; what the peer
 * cannot take now is kept in from->pend, which stops reading `from` until it drained.
 * STEP_AGAIN, or FAIL (the reason set) on a write error or without memory. The relay
 * phase and the kernel relay's drain before insertion share it. */
enum step leg_pass_on(struct leg *from, const uint8_t *buf, size_t n);

/* Bytes read from l that its peer has not taken yet (buffered or in the pipe). */
static inline bool leg_pending(const struct leg *l)
{
    return buf_unread(&l->pend) || l->piped;
}

#endif
