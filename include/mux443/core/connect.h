/* Connecting to a backend server, the one way every part of mux443 does it (relayed
 * connections, ICE-TCP fan-out, health checks): a non-blocking connect, its completion
 * check, and the PROXY header the backend wants first. */
#ifndef MUX443_CORE_CONNECT_H
#define MUX443_CORE_CONNECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "mux443/conf/desc.h"
#include "mux443/lib/proxy_proto.h"

/* Starts a non-blocking connect to a (TCP_NODELAY set: signalling and STUN are small
 * messages). Returns the socket, connecting or connected (wait until it is writable),
 * or -1 with errno set when it failed at once (e.g. ECONNREFUSED, ENETUNREACH). */
int connect_start(const struct cfg_addr *a);

/* connect_begin's options. */
enum {
    /* TCP_NODELAY is left to the caller, who sets it (connect_nodelay) before the
     * socket's second write: a first write on a fresh connection goes out at once with or
     * without Nagle, and a short exchange then never pays the setsockopt. */
    CONNECT_NODELAY_LATER = 1,
    /* TCP Fast Open: no connect() here; the first bytes go with connect_fastopen. */
    CONNECT_FASTOPEN = 2,
};

/* connect_start with options. *deferred: CONNECT_FASTOPEN took effect, the socket is not
 * connecting yet: connect_fastopen must follow. */
int connect_begin(const struct cfg_addr *a, unsigned opts, bool *deferred);

/* Connects a deferred socket (connect_begin) with n bytes of data in one sendto: in the
 * SYN when the kernel holds a TFO cookie for the server. Returns the bytes taken, which
 * "succeeds" before the server has answered (only the socket's writability or error
 * says whether it accepted); or -1 with errno EINPROGRESS when nothing was taken (no
 * cookie yet: the connect that asks for one is under way, write once it is writable),
 * or the connect's failure. A kernel with client TFO turned off gets a plain connect
 * (EINPROGRESS too). */
ssize_t connect_fastopen(int fd, const struct cfg_addr *a, const void *data, size_t n);

/* Sets TCP_NODELAY (see CONNECT_NODELAY_LATER). */
void connect_nodelay(int fd);

/* Once the socket is writable: 0 when connected, else the errno value of the failure. */
int connect_result(int fd);

/* Writes the PROXY header backend b wants into buf (PROXY_HDR_MAX bytes) and returns its
 * length: 0 when b wants none; a LOCAL header ("no client": health checks) when client
 * is NULL; else one carrying client -> local. */
size_t connect_proxy_header(const struct cfg_backend *b, const struct sockaddr *client,
                            const struct sockaddr *local, uint8_t *buf);

#endif
