/* The admin API's streaming request reader on top of http-parser. */
#include <string.h>
#include <strings.h>

#include "mux443/lib/http_req.h"

static const char *const hdr_names[HREQ_COUNT] = {"host", "origin", "content-type",
                                                  "authorization"};

/* Extends slice s with the bytes [at, at + n) of the buffer (callbacks for one element
 * are contiguous: they only split where a read ended). */
static void grow(struct http_req *r, struct http_slice *s, const char *at, size_t n, bool first)
{
    size_t off = (size_t)(at - r->base);
    if (first)
        s->off = off;
    s->len = off + n - s->off;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    struct http_req *r = p->data;
    grow(r, &r->url, at, n, r->url.len == 0);
    return 0;
}

static int on_field(http_parser *p, const char *at, size_t n)
{
    struct http_req *r = p->data;
    if (r->in_value) {
        r->in_value = false;
        r->name_len = 0;
    }
    for (size_t i = 0; i < n; i++, r->name_len++)
        if (r->name_len < sizeof(r->name))
            r->name[r->name_len] = at[i];
    return 0;
}

static int on_value(http_parser *p, const char *at, size_t n)
{
    struct http_req *r = p->data;
    bool first = !r->in_value;
    if (first) {
        r->in_value = true;
        r->cur = -1;
        for (int i = 0; i < HREQ_COUNT && r->name_len <= sizeof(r->name); i++)
            if (r->name_len == strlen(hdr_names[i]) &&
                strncasecmp(r->name, hdr_names[i], r->name_len) == 0) {
                r->cur = r->hdr_count[i]++ == 0 ? i : -1; /* the first one is kept */
                break;
            }
    }
    if (r->cur >= 0)
        grow(r, &r->hdr[r->cur], at, n, first);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    struct http_req *r = p->data;
    grow(r, &r->body, at, n, r->body.len == 0);
    return 0;
}

static int on_done(http_parser *p)
{
    struct http_req *r = p->data;
    r->done = true;
    http_parser_pause(p, 1); /* one request per connection: nothing after it is read */
    return 0;
}

void http_req_init(struct http_req *r)
{
    memset(r, 0, sizeof(*r));
    http_parser_init(&r->p, HTTP_REQUEST);
    r->p.data = r;
    r->cur = -1;
}

int http_req_feed(struct http_req *r, const char *buf, size_t n, const char **why)
{
    static const http_parser_settings settings = {.on_url = on_url,
                                                  .on_header_field = on_field,
                                                  .on_header_value = on_value,
                                                  .on_body = on_body,
                                                  .on_message_complete = on_done};
    if (r->done)
        return 1;
    if (n > r->fed) {
        r->base = buf;
        size_t used = http_parser_execute(&r->p, &settings, buf + r->fed, n - r->fed);
        r->base = NULL;
        r->fed += used;
        enum http_errno e = HTTP_PARSER_ERRNO(&r->p);
        if (e != HPE_OK && e != HPE_PAUSED) {
            *why = http_errno_description(e);
            return -1;
        }
    }
    return r->done ? 1 : 0;
}
