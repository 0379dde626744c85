/* Connecting to a backend server, the one way every part of mux443 does it (relayed
 * connections, ICE-TCP fan-out, health checks): a non-blocking connect, its completion
 * check, and the PROXY header the backend wants first. */
#ifndef MUX443_CORE_CONNECT_H
#define MUX443_CORE_CONNECT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "mux443/conf/desc.h"
#include "mux443/lib/proxy_proto.h"

/* Starts a non-blocking connect to a (TCP_NODELAY set: signalling and STUN are small
 * messages). Returns the socket, connecting or connected (wait until it is writable),
 * or -1 with errno set when it failed at once (e.g. ECONNREFUSED, ENETUNREACH). */
int connect_start(const struct cfg_addr *a);

/* Once the socket is writable: 0 when connected, else the errno value of the failure. */
int connect_result(int fd);

/* Writes the PROXY header backend b wants into buf (PROXY_HDR_MAX bytes) and returns its
 * length: 0 when b wants none; a LOCAL header ("no client": health checks) when client
 * is NULL; else one carrying client -> local. */
size_t connect_proxy_header(const struct cfg_backend *b, const struct sockaddr *client,
                            const struct sockaddr *local, uint8_t *buf);

#endif
