/* Non-blocking connects to backend servers and the PROXY header they get first. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include "mux443/core/connect.h"
#include "mux443/lib/addr.h"

int connect_begin(const struct cfg_addr *a, unsigned opts, bool *deferred)
{
    int one = 1;
    bool tcp = addr_family_ip(a->ss.ss_family);
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    *deferred = false;
    if (fd < 0)
        return -1;
    if (tcp && !(opts & CONNECT_NODELAY_LATER))
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    /* TFO: sendto(MSG_FASTOPEN) connects and writes in one call (connect_fastopen), where
     * TCP_FASTOPEN_CONNECT would cost a setsockopt, a connect and the write. */
    if (tcp && (opts & CONNECT_FASTOPEN)) {
        *deferred = true;
        return fd;
    }
    if (connect(fd, (const struct sockaddr *)&a->ss, a->len) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

ssize_t connect_fastopen(int fd, const struct cfg_addr *a, const void *data, size_t n)
{
    ssize_t w =
        sendto(fd, data, n, MSG_FASTOPEN | MSG_NOSIGNAL, (const struct sockaddr *)&a->ss, a->len);
    if (w < 0 && errno == EOPNOTSUPP && /* net.ipv4.tcp_fastopen without its client bit */
        connect(fd, (const struct sockaddr *)&a->ss, a->len) == 0)
        errno = EINPROGRESS; /* connected already (loopback): the write follows as usual */
    return w;
}

int connect_start(const struct cfg_addr *a)
{
    bool deferred;
    return connect_begin(a, 0, &deferred);
}

void connect_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int connect_result(int fd)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return errno;
    return err;
}

size_t connect_proxy_header(const struct cfg_backend *b, const struct sockaddr *client,
                            const struct sockaddr *local, uint8_t *buf)
{
    if (!b->proxy_protocol)
        return 0;
    return proxy_build(buf, PROXY_HDR_MAX, b->proxy_protocol, client, local);
}
