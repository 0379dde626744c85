/* Plain TCP transport: read/write/shutdown on the leg's socket. The TLS transport adds
 * its own ops with the same contract. */
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mux443/conn.h"
#include "mux443/transport.h"

static ssize_t plain_read(struct leg *l, void *buf, size_t len)
{
    ssize_t n;
    do
        n = recv(l->fd, buf, len, 0);
    while (n < 0 && errno == EINTR);
    return n;
}

static ssize_t plain_write(struct leg *l, const void *buf, size_t len)
{
    ssize_t n;
    do
        n = send(l->fd, buf, len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n;
}

static int plain_shutdown_wr(struct leg *l)
{
    return shutdown(l->fd, SHUT_WR);
}

static void plain_release(struct leg *l)
{
    (void)l;
}

static int plain_wants(const struct leg *l)
{
    (void)l;
    return 0;
}

static size_t plain_pending(const struct leg *l)
{
    (void)l;
    return 0;
}

const struct transport_ops transport_plain = {
    .name = "plain",
    .raw = true,
    .read = plain_read,
    .write = plain_write,
    .shutdown_wr = plain_shutdown_wr,
    .release = plain_release,
    .wants = plain_wants,
    .pending = plain_pending,
};
