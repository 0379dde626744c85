/* Non-blocking connects to backend servers and the PROXY header they get first. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include "mux443/core/connect.h"

#ifndef TCP_FASTOPEN_CONNECT
#define TCP_FASTOPEN_CONNECT 30 /* Linux 4.11; older libc headers lack it */
#endif

int connect_begin(const struct cfg_addr *a, unsigned opts, bool *deferred)
{
    int one = 1, r;
    bool tcp = a->ss.ss_family == AF_INET || a->ss.ss_family == AF_INET6;
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    *deferred = false;
    if (fd < 0)
        return -1;
    if (tcp && !(opts & CONNECT_NODELAY_LATER))
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    /* A kernel without client TFO refuses the option: the connect goes on without it. */
    bool tfo = tcp && (opts & CONNECT_FASTOPEN) &&
               setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN_CONNECT, &one, sizeof(one)) == 0;
    if ((r = connect(fd, (const struct sockaddr *)&a->ss, a->len)) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    /* With a cookie cached for the server, connect() sends nothing and answers 0: the
     * SYN leaves with the first write. */
    *deferred = tfo && r == 0;
    return fd;
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
