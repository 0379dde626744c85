/* A relayed connection: two symmetric legs (client, backend) that point at each other,
 * one pump per direction, one teardown function that logs why. */
#ifndef MUX443_CONN_H
#define MUX443_CONN_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "mux443/conf/config.h"
#include "mux443/lib/probe.h"
#include "mux443/lib/transport.h"

/* Bytes read from one leg that the other could not take yet. Allocated only while it
 * holds data (and during detection, as the preread buffer), so an idle connection
 * carries no buffer at all. */
struct pend {
    uint8_t *data;
    uint32_t off, len, cap;
};

struct conn;

struct leg {
    int fd;
    ev_io io; /* interest recomputed by conn_update_io() */
    struct conn *conn;
    struct leg *peer;
    const struct transport_ops *tp;
    void *tp_state;   /* transport's own state (TLS: the SSL object) */
    struct pend pend; /* read from this leg, to be written to peer */
    int pipe[2];      /* plain<->plain bulk: splice(2) through this pipe; -1 until then */
    uint32_t piped;   /* bytes of this leg waiting in the pipe */
    uint64_t bytes;   /* bytes read from this leg */
    bool rd_eof;      /* this leg sent FIN */
    bool wr_shut;     /* we sent FIN on this leg */
};

enum conn_state { CONN_PREREAD, CONN_HANDSHAKE, CONN_CONNECTING, CONN_RELAY };

struct worker;

struct conn {
    uint64_t id;
    enum conn_state state;
    struct worker *w;
    struct cfg *cfg; /* the snapshot this connection was accepted under (a reference) */
    const struct cfg_listener *lst;
    const struct cfg_route *route;
    const struct cfg_backend *backend;
    const struct cfg_addr *server;
    struct leg client, backend_leg;
    ev_timer timer; /* peek timeout, then connect timeout, then idle timeout */
    ev_tstamp started, last_io;
    struct sockaddr_storage peer_addr;  /* the client (from PROXY header if any) */
    struct sockaddr_storage local_addr; /* what the client connected to */
    char peer_text[64];
    enum mux_class cls;
    bool proxy_done;         /* inbound PROXY header consumed (or not expected) */
    bool terminated;         /* mux443 terminated the client TLS: cls is what was inside */
    struct probe_out *hello; /* the ClientHello findings, kept during termination */
    bool preread_full;       /* detection gave up at preread_max */
    bool limit_held;         /* counted by limits_acquire */
    int mx_cls;              /* enum mx_class once counted, MXC_NONE before */
    char *ufrag;             /* ICE-TCP server ufrag (routing by ufrag), or NULL */
    bool ufrag_held;         /* counted as a live connection in the ufrag table */
    struct fanout *fanout;   /* ICE-TCP fan-out in progress */
    unsigned nattempts;      /* servers to try (1 when the ufrag names the server) */
    unsigned first, attempt;
    char *desc;               /* escaped ` sni="..." host="..."` fields for the close log */
    struct conn *prev, *next; /* the worker's list, for draining */
};

/* The address the client connected to (from the PROXY header, else getsockname). */
const struct sockaddr *conn_local_addr(struct conn *c);

/* "https", "wss", "turns" for classes found inside terminated TLS, else the class name. */
const char *conn_class_name(const struct conn *c);

/* Takes ownership of an accepted socket: admission (max_connections, the listener's and
 * the per-client limits), then detection. */
void conn_accept(struct worker *w, struct cfg_listener *lst, int fd, const struct sockaddr *peer,
                 socklen_t peerlen);

/* The only way a connection ends: logs one line with the reason, closes both sockets,
 * frees everything. `c` is invalid afterwards: callers return at once. */
void conn_close(struct conn *c, bool failure, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Bytes read from l that its peer has not taken yet (buffered or in the pipe). */
static inline bool leg_pending(const struct leg *l)
{
    return l->pend.len > l->pend.off || l->piped;
}

/* Relay (relay.c): start relaying once the backend is connected, and the I/O callback. */
void relay_start(struct conn *c);
void relay_io_cb(struct ev_loop *loop, ev_io *io, int revents);
/* Recomputes both legs' watcher interest from their state (read iff room, write iff the
 * peer has data for it). */
void conn_update_io(struct conn *c);
/* Ensures room for `want` more bytes in p, growing up to `max`; false if out of memory or
 * the limit is reached. */
bool pend_reserve(struct pend *p, size_t want, size_t max);
void pend_release(struct pend *p);
/* Closes the leg's splice pipe, if any. */
void leg_release_pipe(struct leg *l);

#endif
