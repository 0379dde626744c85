/* The plain TCP transport: recv/send/shutdown on the socket. The TLS transport
 * (src/tls/tls_conn.c) implements the same ops. */
#include <errno.h>
#include <sys/socket.h>

#include "mux443/lib/transport.h"

static ssize_t plain_read(struct transport *t, void *buf, size_t len)
{
    ssize_t n;
    do
        n = recv(t->fd, buf, len, 0);
    while (n < 0 && errno == EINTR);
    return n;
}

static ssize_t plain_write(struct transport *t, const void *buf, size_t len)
{
    ssize_t n;
    do
        n = send(t->fd, buf, len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n;
}

static int plain_shutdown_wr(struct transport *t)
{
    return shutdown(t->fd, SHUT_WR);
}

static void plain_release(struct transport *t)
{
    (void)t;
}

static int plain_wants(const struct transport *t)
{
    (void)t;
    return 0;
}

static bool plain_pending(const struct transport *t)
{
    (void)t;
    return false;
}

const struct transport_ops transport_plain = {
    .raw = true,
    .read = plain_read,
    .write = plain_write,
    .shutdown_wr = plain_shutdown_wr,
    .release = plain_release,
    .wants = plain_wants,
    .pending = plain_pending,
};
