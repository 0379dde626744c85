/* An HTTP/1.1 request reader for the admin API, fed as bytes arrive: http-parser keeps
 * its state between reads, so a request costs CPU linear in its size however it is
 * split. What it finds is kept as offsets into the caller's buffer (which may move
 * between calls). Pure code: no I/O, no allocation; fuzzed. */
#ifndef MUX443_LIB_HTTP_REQ_H
#define MUX443_LIB_HTTP_REQ_H

#include <stdbool.h>
#include <stddef.h>

#include <http_parser.h>

/* The headers the admin API looks at. */
enum http_req_hdr { HREQ_HOST, HREQ_ORIGIN, HREQ_CONTENT_TYPE, HREQ_AUTHORIZATION, HREQ_COUNT };

struct http_slice {
    size_t off, len;
};

struct http_req {
    http_parser p;
    size_t fed; /* bytes of the buffer parsed so far */
    struct http_slice url, body;
    struct http_slice hdr[HREQ_COUNT]; /* the first occurrence of each */
    unsigned hdr_count[HREQ_COUNT];    /* occurrences (two Host headers: refuse) */
    char name[24];                     /* the header name being read (longer: none of ours) */
    size_t name_len;
    int cur; /* enum http_req_hdr of the value being read, or -1 */
    bool in_value;
    bool done;
    const char *base; /* during http_req_feed only: the caller's buffer */
};

void http_req_init(struct http_req *r);

/* buf holds every byte of the request received so far (n bytes; the bytes of the
 * previous call first). Parses the new ones. Returns 1 when the request is complete
 * (method in r->p.method), 0 when more bytes are needed, -1 when it is malformed (*why
 * says how). */
int http_req_feed(struct http_req *r, const char *buf, size_t n, const char **why);

#endif
