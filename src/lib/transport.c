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
    /* TCP answers less than asked only once its receive queue is empty (tcp_recvmsg stops
     * there; bytes arriving later raise a new edge), which saves the read that would say
     * EAGAIN. Not once the FIN is in: that edge was spent, and the next read must see the
     * end. (Urgent data also stops a read short; no protocol relayed here sends it.) */
    if (n < 0 ? errno == EAGAIN || errno == EWOULDBLOCK
              : t->tcp && !t->rdhup && n > 0 && (size_t)n < len)
        t->ready &= (uint8_t)~TP_WANT_READ;
    return n;
}

static ssize_t plain_write(struct transport *t, const void *buf, size_t len)
{
    ssize_t n;
    do
        n = send(t->fd, buf, len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    /* EINPROGRESS: a connect (TCP Fast Open) not complete yet; its completion is an edge. */
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINPROGRESS))
        t->ready &= (uint8_t)~TP_WANT_WRITE;
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
