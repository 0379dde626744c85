/* The transport of one side of a connection: plain TCP here, TLS in src/tls. The relay
 * pump calls these ops and never branches on the kind of socket. */
#ifndef MUX443_LIB_TRANSPORT_H
#define MUX443_LIB_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct transport;

/* What wants() returns: the socket events a transport waits for. Equal to libev's
 * EV_READ and EV_WRITE (checked where both are visible, in core/conn.c). */
enum { TP_WANT_READ = 1, TP_WANT_WRITE = 2 };

struct transport_ops {
    /* The socket carries the stream's bytes as they are (no record layer): the pump may
     * splice(2) them, and closing the socket is a complete end of the stream. */
    bool raw;
    /* > 0: bytes moved; 0 (read only): end of stream; -1: errno set (EAGAIN = try later,
     * when wants() or the socket says so). Each clears its bit of `ready` when the socket
     * answered EAGAIN (not when TLS only waits for bytes it keeps in memory). */
    ssize_t (*read)(struct transport *t, void *buf, size_t len);
    ssize_t (*write)(struct transport *t, const void *buf, size_t len);
    /* Ends our sending direction: FIN, or close_notify then FIN. 0 when done; -1 with
     * errno EAGAIN when the end could not be written yet (call again once wants() is
     * met: the FIN must not overtake TLS's close_notify), other errno on failure. */
    int (*shutdown_wr)(struct transport *t);
    /* Releases the transport's state; the caller closes the descriptor. */
    void (*release)(struct transport *t);
    /* Socket events (TP_WANT_*) the transport itself waits for now: TLS's read that must
     * first write, or write that must first read. 0 for plain TCP. */
    int (*wants)(const struct transport *t);
    /* True when bytes can be read without waiting for the socket (TLS: decrypted, or
     * records already read ahead). */
    bool (*pending)(const struct transport *t);
};

struct transport {
    int fd;
    uint16_t flags; /* the transport's own (TLS: what it waits for, how it ended) */
    /* Edge-triggered readiness (core/conn.c registers the socket once, with EPOLLET): the
     * TP_WANT_* events the socket may be ready for. Set by its events; cleared by the ops
     * only when the socket itself said so (EAGAIN), since no new event comes for what is
     * already there. */
    uint8_t ready;
    bool rdhup : 1; /* an event reported the peer's FIN: every byte it sent is queued */
    bool tcp : 1;   /* a TCP socket: a read shorter than asked emptied its receive queue */
    bool error : 1; /* an event reported an error on the socket (EPOLLERR) */
    const struct transport_ops *ops;
    void *state; /* the transport's own (TLS: its SSL object) */
};

/* Plain TCP: recv/send/shutdown on t->fd. */
extern const struct transport_ops transport_plain;

/* A plain transport on fd (-1: not connected yet). */
static inline void transport_init(struct transport *t, int fd)
{
    t->fd = fd;
    t->flags = 0;
    t->ops = &transport_plain;
    t->state = NULL;
    t->ready = TP_WANT_READ | TP_WANT_WRITE; /* not known yet: try */
    t->rdhup = false;
    t->tcp = false;
    t->error = false;
}

#endif
