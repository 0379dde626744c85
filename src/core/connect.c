/* Non-blocking connects to backend servers and the PROXY header they get first. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include "mux443/core/connect.h"

int connect_start(const struct cfg_addr *a)
{
    int one = 1;
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (a->ss.ss_family == AF_INET || a->ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (const struct sockaddr *)&a->ss, a->len) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
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
