/* The transport of one leg of a connection (plain TCP now, TLS later), so that the relay
 * pump never branches on the kind of socket. */
#ifndef MUX443_TRANSPORT_H
#define MUX443_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct leg;

struct transport_ops {
    const char *name;
    /* The socket carries the stream's bytes as they are (no record layer): the pump may
     * splice(2) them, and closing the socket is a complete end of the stream. */
    bool raw;
    /* > 0: bytes moved; 0 (read only): end of stream; -1: errno set (EAGAIN = try later). */
    ssize_t (*read)(struct leg *l, void *buf, size_t len);
    ssize_t (*write)(struct leg *l, const void *buf, size_t len);
    /* Ends our sending direction (FIN, or close_notify then FIN). 0 or -1 with errno. */
    int (*shutdown_wr)(struct leg *l);
    /* Releases transport state; the caller closes the descriptor. */
    void (*release)(struct leg *l);
    /* Socket events the transport itself needs now (TLS: a read that must first write, or
     * a write that must first read); 0 for plain TCP. */
    int (*wants)(const struct leg *l);
    /* Non-zero when bytes can be read without waiting for the socket (TLS: decrypted, or
     * records already read ahead). */
    size_t (*pending)(const struct leg *l);
};

extern const struct transport_ops transport_plain;
extern const struct transport_ops transport_tls; /* tls.c */

#endif
