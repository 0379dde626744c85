/* The admin listener: a small HTTP/1.1 server on the main thread's loop for operators
 * and orchestrators (/healthz, /metrics, /routes, /ufrags). One request per connection. */
#ifndef MUX443_ADMIN_H
#define MUX443_ADMIN_H

#include <ev.h>
#include <stddef.h>
#include <stdio.h>

#include "mux443/conf/config.h"

struct admin_req {
    int method;        /* http_parser's enum http_method */
    const char *path;  /* NUL-terminated, without the query */
    const char *query; /* after '?', or "" */
    const char *body;  /* NUL-terminated (bodies with NUL bytes are refused) */
    size_t body_len;
    const char *content_type; /* "" when absent */
};

struct admin_resp {
    int status;
    const char *type; /* Content-Type */
    FILE *body;       /* write the body here */
};

/* Binds `addr` and serves on `loop`. Returns 0, or -1 after logging. */
int admin_start(struct ev_loop *loop, const struct cfg_addr *addr);

/* The snapshot the admin endpoints describe (the one new connections get). */
struct cfg *admin_cfg_get(void); /* returns a reference: cfg_unref it */

/* Endpoint implemented by the ufrag table (ufrag.c). */
void ufrag_admin(const struct admin_req *req, struct admin_resp *resp);

#endif
