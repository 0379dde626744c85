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
    const char *content_type;  /* "" when absent */
    const char *host;          /* "" when absent */
    const char *origin;        /* "" when absent */
    const char *authorization; /* "" when absent */
    unsigned nhost, norigin;   /* occurrences of Host and Origin */
};

struct admin_resp {
    int status;
    const char *type; /* Content-Type */
    FILE *body;       /* write the body here */
};

/* Answers one request (resp->status preset to 200, type to text/plain). Before any
 * endpoint, the request must pass the guards against browsers and DNS rebinding: no
 * Origin header unless listed in admin_origins (403); a Host that is an IP literal,
 * localhost or listed in admin_hosts (421; two Host headers: 400); and, with
 * admin_token_file, "Authorization: Bearer TOKEN" on everything but GET /healthz (401).
 * POST /ufrags takes application/json or text/x-mux443-ufrags (415 otherwise). */
void admin_api_dispatch(const struct admin_req *req, struct admin_resp *resp);

#endif
