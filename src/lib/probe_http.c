/* HTTP/1.x request-head probe on top of http-parser: method, path, Host, and whether the
 * request is a WebSocket upgrade (Connection: upgrade + Upgrade: websocket on a GET).
 * The parser streams: each call feeds it only the bytes it has not seen. */
#include <string.h>
#include <strings.h>

#include <http_parser.h>

#include "mux443/lib/probe.h"
#include "mux443/lib/probe_http.h"

enum hdr_kind { HDR_OTHER, HDR_HOST, HDR_CONNECTION, HDR_UPGRADE, HDR_WSPROTO };

/* What the parser's callbacks see during one call: the state, and the buffer's start in
 * this call (callbacks turn their pointers into offsets from it). */
struct http_call {
    struct probe_http_state *st;
    const uint8_t *base;
};

static void tok_reset(struct probe_http_tok *t)
{
    t->len = 0;
    t->ws_after = false;
    t->bad = false;
}

static void tok_end(struct probe_http_tok *t)
{
    if (!t->bad && t->len == strlen(t->want))
        t->found = true;
    tok_reset(t);
}

static void tok_feed(struct probe_http_tok *t, const char *s, size_t n)
{
    size_t want_len = strlen(t->want);

    for (size_t i = 0; i < n; i++) {
        char c = s[i];

        if (c == ',') {
            tok_end(t);
        } else if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            if (t->len > 0)
                t->ws_after = true;
        } else if (t->ws_after || t->len >= want_len || (c | 0x20) != t->want[t->len]) {
            t->bad = true;
            t->len++;
        } else {
            t->len++;
        }
    }
}

/* A header's value is complete: finish list matching. */
static void header_end(struct probe_http_state *st)
{
    st->wsp_seen |= st->kind == HDR_WSPROTO;
    if (st->kind == HDR_CONNECTION)
        tok_end(&st->conn);
    else if (st->kind == HDR_UPGRADE)
        tok_end(&st->upg);
    st->host_taken = false;
    st->kind = HDR_OTHER;
}

static enum hdr_kind classify_name(const struct probe_http_state *st)
{
    static const struct {
        const char *name;
        enum hdr_kind kind;
    } names[] = {{"host", HDR_HOST},
                 {"connection", HDR_CONNECTION},
                 {"upgrade", HDR_UPGRADE},
                 {"sec-websocket-protocol", HDR_WSPROTO}};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (st->name_len == strlen(names[i].name) &&
            strncasecmp(st->name, names[i].name, st->name_len) == 0)
            return names[i].kind;
    }
    return HDR_OTHER;
}

/* Appends at[0..len) to a kept prefix of cap bytes; *used counts up to cap + 1, which
 * says "longer than kept". */
static void keep_append(char *dst, size_t cap, uint16_t *used, const char *at, size_t len)
{
    size_t room = *used < cap ? cap - *used : 0, copy = len < room ? len : room;

    memcpy(dst + *used, at, copy);
    if (len > copy)
        *used = (uint16_t)(cap + 1);
    else
        *used = (uint16_t)(*used + copy);
}

static int on_url(http_parser *hp, const char *at, size_t len)
{
    struct http_call *call = hp->data;
    struct probe_http_state *st = call->st;
    size_t off = (size_t)((const uint8_t *)at - call->base);

    /* Pieces (one per call, or per execute) are adjacent: a slice covers them. */
    if (!st->url_seen) {
        st->url_seen = true;
        st->url_off = off;
    }
    st->url_len = off + len - st->url_off;
    return 0;
}

static int on_header_field(http_parser *hp, const char *at, size_t len)
{
    struct probe_http_state *st = ((struct http_call *)hp->data)->st;

    if (st->in_value) {
        header_end(st);
        st->name_len = 0;
        st->in_value = false;
    }
    keep_append(st->name, sizeof(st->name), &st->name_len, at, len);
    return 0;
}

static int on_header_value(http_parser *hp, const char *at, size_t len)
{
    struct probe_http_state *st = ((struct http_call *)hp->data)->st;

    if (!st->in_value) {
        st->in_value = true;
        st->kind = st->name_len <= sizeof(st->name) ? classify_name(st) : HDR_OTHER;
        if (st->kind == HDR_HOST && st->host_count < UINT8_MAX)
            st->host_count++;
        if (st->kind == HDR_HOST && !st->host_seen) {
            st->host_seen = true;
            st->host_taken = true;
        }
    }
    switch (st->kind) {
    case HDR_HOST:
        if (st->host_taken)
            keep_append(st->host, sizeof(st->host), &st->host_len, at, len);
        break;
    case HDR_CONNECTION:
        tok_feed(&st->conn, at, len);
        break;
    case HDR_UPGRADE:
        tok_feed(&st->upg, at, len);
        break;
    case HDR_WSPROTO:
        if (!st->wsp_seen)
            keep_append(st->wsp, sizeof(st->wsp), &st->wsp_len, at, len);
        break;
    default:
        break;
    }
    return 0;
}

static int on_headers_complete(http_parser *hp)
{
    struct probe_http_state *st = ((struct http_call *)hp->data)->st;

    if (st->in_value)
        header_end(st);
    st->done = true;
    /* Stop here: the body, or the upgraded protocol's bytes, are not ours to parse. */
    http_parser_pause(hp, 1);
    return 0;
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* The host of an authority ("host", "host:port", "[v6]:port", optionally "user@"
 * first), without the port; *s and *len are narrowed to it. */
static void authority_host(const char **sp, size_t *lenp)
{
    const char *s = *sp;
    size_t len = *lenp;
    const char *at = memchr(s, '@', len);
    size_t hlen;

    while (len > 0 && is_ows(s[0])) {
        s++;
        len--;
    }
    while (len > 0 && is_ows(s[len - 1]))
        len--;
    while (at != NULL && (size_t)(at - s) < len) {
        /* userinfo@ is only legal in absolute-form; the host is after the last '@' */
        len -= (size_t)(at - s) + 1;
        s = at + 1;
        at = memchr(s, '@', len);
    }
    if (len > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', len);

        hlen = close != NULL ? (size_t)(close - s) + 1 : len;
    } else {
        const char *colon = memchr(s, ':', len);

        hlen = colon != NULL ? (size_t)(colon - s) : len;
    }
    *sp = s;
    *lenp = hlen;
}

/* Stores an authority's host in out->host. */
static void set_host(struct probe_out *out, const char *s, size_t len, bool cut)
{
    size_t hlen = len;

    authority_host(&s, &hlen);
    if (hlen > PROBE_NAME_MAX) {
        hlen = PROBE_NAME_MAX;
        cut = true;
    }
    memcpy(out->host, s, hlen);
    out->host[hlen] = '\0';
    out->host_len = (uint16_t)hlen;
    out->host_cut = cut;
}

static void set_path(struct probe_out *out, const char *s, size_t len)
{
    size_t plen = 0;

    while (plen < len && s[plen] != '?' && s[plen] != '#')
        plen++;
    if (plen > PROBE_PATH_MAX) {
        plen = PROBE_PATH_MAX;
        out->path_cut = true;
    }
    memcpy(out->path, s, plen);
    out->path[plen] = '\0';
    out->path_len = (uint16_t)plen;
}

/* Request target forms (RFC 9112 §3.2): origin "/p?q", absolute "http://h/p",
 * authority "h:443" (CONNECT), asterisk "*". */
static void split_target(const struct probe_http_state *st, const uint8_t *p, struct probe_out *out,
                         bool have_host)
{
    const char *u = (const char *)p + st->url_off;
    size_t len = st->url_len;
    const char *sep;

    if (!st->url_seen || len == 0)
        return;
    if (u[0] == '/' || u[0] == '*') {
        set_path(out, u, len);
        return;
    }
    sep = len >= 3 ? memmem(u, len, "://", 3) : NULL;
    if (sep != NULL) {
        const char *auth = sep + 3, *end = u + len, *a;

        for (a = auth; a < end && *a != '/' && *a != '?' && *a != '#'; a++)
            ;
        if (!have_host)
            set_host(out, auth, (size_t)(a - auth), false);
        if (a < end && *a == '/')
            set_path(out, a, (size_t)(end - a));
        else
            set_path(out, "/", 1);
        return;
    }
    if (!have_host) /* authority-form */
        set_host(out, u, len, false);
}

/* True when the request target is in absolute-form and its host is not out->host (the
 * Host header's, without the port), compared as host names are: case-insensitively. */
static bool absolute_host_differs(const struct probe_http_state *st, const uint8_t *p,
                                  const struct probe_out *out)
{
    const char *u = (const char *)p + st->url_off, *sep, *a;
    size_t len = st->url_len;

    if (!st->url_seen || len < 3 || u[0] == '/' || !(sep = memmem(u, len, "://", 3)))
        return false;
    const char *auth = sep + 3, *end = u + len;
    for (a = auth; a < end && *a != '/' && *a != '?' && *a != '#'; a++)
        ;
    size_t hlen = (size_t)(a - auth);
    authority_host(&auth, &hlen);
    return out->host_cut || hlen != out->host_len || strncasecmp(auth, out->host, hlen) != 0;
}

static const http_parser_settings http_callbacks = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
};

void probe_http_init(struct probe_state *st)
{
    struct probe_http_state *h = &st->http;

    memset(h, 0, sizeof(*h));
    http_parser_init(&h->hp, HTTP_REQUEST);
    h->conn.want = "upgrade";
    h->upg.want = "websocket";
}

static enum probe_result http_refuse(struct probe_out *out, const char *why)
{
    memset(out, 0, sizeof(*out));
    out->why = why;
    return PROBE_NOMATCH;
}

/* Feeds http-parser the bytes it has not seen (never zero bytes: that means EOF to it);
 * once the head is complete, fills out from what the callbacks kept. */
enum probe_result probe_http_step(struct probe_state *st, const uint8_t *p, size_t n,
                                  struct probe_out *out, size_t *need)
{
    struct probe_http_state *h = &st->http;
    enum http_errno err;
    const char *method;

    if (n == 0)
        return PROBE_AGAIN;
    /* Every method token is upper-case ASCII; this keeps the parser off binary input. */
    if (p[0] < 'A' || p[0] > 'Z')
        return http_refuse(out, "not an HTTP method");

    if (!h->done && n > h->fed && HTTP_PARSER_ERRNO(&h->hp) == HPE_OK) {
        struct http_call call = {h, p};
        size_t used;

        h->hp.data = &call;
        used = http_parser_execute(&h->hp, &http_callbacks, (const char *)p + h->fed, n - h->fed);
        h->hp.data = NULL;
        PROBE_WORK(n - h->fed);
        if (h->done)
            h->head_end = h->fed + used;
        h->fed = n;
    }
    err = HTTP_PARSER_ERRNO(&h->hp);
    if (err != HPE_OK && err != HPE_PAUSED)
        return http_refuse(out, http_errno_description(err));
    if (!h->done)
        return PROBE_AGAIN;

    /* Paused in on_headers_complete, http-parser returns the offset of the head's last
     * byte. Built without strict checks, it takes any byte after the final CR as the LF;
     * require the LF so that our idea of where the head ends matches the backend's. */
    if (h->head_end >= n || p[h->head_end] != '\n')
        return http_refuse(out, "request head does not end with CRLF CRLF");
    memset(out, 0, sizeof(*out));
    out->consumed = h->head_end + 1;

    method = http_method_str((enum http_method)h->hp.method);
    strncpy(out->method, method, sizeof(out->method) - 1);

    if (h->host_seen)
        set_host(out, h->host, h->host_len < sizeof(h->host) ? h->host_len : sizeof(h->host),
                 h->host_len > sizeof(h->host));
    split_target(h, p, out, h->host_seen);
    PROBE_WORK(h->url_len);
    /* RFC 9112 3.2: a request with two Host headers, or whose absolute-form target names
     * another host than its Host header, means one thing to a router that reads one and
     * another to a server that reads the other (origin servers must use the target's). */
    if (h->host_count > 1)
        out->refuse = "two Host headers";
    else if (h->host_seen && absolute_host_differs(h, p, out))
        out->refuse = "absolute-form request target names another host than the Host header";

    if (h->hp.method == HTTP_GET && h->conn.found && h->upg.found) {
        out->cls = CLASS_WEBSOCKET;
        out->ws_protocol_cut = h->wsp_len > sizeof(h->wsp);
        out->ws_protocol_len = out->ws_protocol_cut ? sizeof(h->wsp) : h->wsp_len;
        memcpy(out->ws_protocol, h->wsp, out->ws_protocol_len);
    } else
        out->cls = CLASS_HTTP;
    return PROBE_MATCH;
}

enum probe_result probe_http(const uint8_t *p, size_t n, struct probe_out *out)
{
    return probe_step_once(probe_http_step, probe_http_init, p, n, out);
}
