/* The admin API's endpoints: /healthz, /metrics (Prometheus text), /routes (the running
 * snapshot as JSON) and /ufrags (ICE ufrag registration: POST, DELETE, GET). */
#ifndef MUX443_RUNTIME_ADMIN_API_H
#define MUX443_RUNTIME_ADMIN_API_H

#include <stddef.h>
#include <stdio.h>

struct admin_req {
    int method;       /* http_parser's enum http_method */
    const char *path; /* NUL-terminated, without the query */
    const char *body; /* NUL-terminated (bodies with NUL bytes are refused) */
    size_t body_len;
    const char *content_type; /* "" when absent */
};

struct admin_resp {
    int status;
    const char *type; /* Content-Type */
    FILE *body;       /* write the body here */
};

/* Answers one request (resp->status preset to 200, type to text/plain). */
void admin_api_dispatch(const struct admin_req *req, struct admin_resp *resp);

#endif
