/* HTTP/1.x request-head probe on top of http-parser: method, path, Host, and whether the
 * request is a WebSocket upgrade (Connection: upgrade + Upgrade: websocket on a GET). */
#include <string.h>
#include <strings.h>

#include <http_parser.h>

#include "mux443/lib/probe.h"

enum hdr_kind { HDR_OTHER, HDR_HOST, HDR_CONNECTION, HDR_UPGRADE, HDR_WSPROTO };

/* Streaming matcher for one token of a comma-separated header list (RFC 9110 §5.6.1):
 * values can arrive in several callbacks (obs-fold, or a buffer end), so tokens are
 * matched byte by byte instead of on a joined copy. */
struct tok_match {
    const char *want; /* lower-case token */
    size_t len;       /* bytes of the current element seen so far (OWS trimmed) */
    bool ws_after;    /* whitespace seen after the token started */
    bool bad;         /* the current element cannot be `want` */
    bool found;
};

/* Header names longer than this are none of ours: only a prefix is kept. */
#define HDR_NAME_KEEP 24
/* Host values are buffered with room for a port and some slack before being cut. */
#define HOST_KEEP (PROBE_NAME_MAX + 16)

struct http_state {
    const uint8_t *base; /* the whole input: every callback points into it */
    const uint8_t *url;  /* start of the request target */
    size_t url_len;
    char name[HDR_NAME_KEEP];
    size_t name_len; /* may exceed HDR_NAME_KEEP: then it is no header we want */
    bool in_value;   /* last callback was a value: the next field starts a new name */
    enum hdr_kind kind;
    bool host_seen;  /* a Host header already started: later ones are ignored */
    bool host_taken; /* this header is the Host we keep */
    char host[HOST_KEEP];
    size_t host_len; /* may exceed HOST_KEEP: then the value was cut */
    struct tok_match conn, upg;
    char wsp[PROBE_NAME_MAX];
    size_t wsp_len; /* first Sec-WebSocket-Protocol; may exceed the buffer: cut */
    bool wsp_seen;
    bool done;
};

static void tok_reset(struct tok_match *t)
{
    t->len = 0;
    t->ws_after = false;
    t->bad = false;
}

static void tok_end(struct tok_match *t)
{
    if (!t->bad && t->len == strlen(t->want))
        t->found = true;
    tok_reset(t);
}

static void tok_feed(struct tok_match *t, const char *s, size_t n)
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
static void header_end(struct http_state *st)
{
    st->wsp_seen |= st->kind == HDR_WSPROTO;
    if (st->kind == HDR_CONNECTION)
        tok_end(&st->conn);
    else if (st->kind == HDR_UPGRADE)
        tok_end(&st->upg);
    st->host_taken = false;
    st->kind = HDR_OTHER;
}

static enum hdr_kind classify_name(const struct http_state *st)
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

static int on_url(http_parser *hp, const char *at, size_t len)
{
    struct http_state *st = hp->data;

    /* One execute over one buffer: pieces are adjacent, so a slice covers them. */
    if (st->url == NULL)
        st->url = (const uint8_t *)at;
    st->url_len = (size_t)((const uint8_t *)at + len - st->url);
    return 0;
}

static int on_header_field(http_parser *hp, const char *at, size_t len)
{
    struct http_state *st = hp->data;

    if (st->in_value) {
        header_end(st);
        st->name_len = 0;
        st->in_value = false;
    }
    for (size_t i = 0; i < len; i++, st->name_len++) {
        if (st->name_len < HDR_NAME_KEEP)
            st->name[st->name_len] = at[i];
    }
    return 0;
}

static int on_header_value(http_parser *hp, const char *at, size_t len)
{
    struct http_state *st = hp->data;

    if (!st->in_value) {
        st->in_value = true;
        st->kind = st->name_len <= HDR_NAME_KEEP ? classify_name(st) : HDR_OTHER;
        if (st->kind == HDR_HOST && !st->host_seen) {
            st->host_seen = true;
            st->host_taken = true;
        }
    }
    switch (st->kind) {
    case HDR_HOST:
        if (!st->host_taken)
            break;
        for (size_t i = 0; i < len; i++, st->host_len++) {
            if (st->host_len < HOST_KEEP)
                st->host[st->host_len] = at[i];
        }
        break;
    case HDR_CONNECTION:
        tok_feed(&st->conn, at, len);
        break;
    case HDR_UPGRADE:
        tok_feed(&st->upg, at, len);
        break;
    case HDR_WSPROTO:
        for (size_t i = 0; !st->wsp_seen && i < len; i++, st->wsp_len++)
            if (st->wsp_len < sizeof(st->wsp))
                st->wsp[st->wsp_len] = at[i];
        break;
    default:
        break;
    }
    return 0;
}

static int on_headers_complete(http_parser *hp)
{
    struct http_state *st = hp->data;

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

/* Stores an authority ("host", "host:port", "[v6]:port", optionally "user@" first)
 * in out->host without the port. */
static void set_host(struct probe_out *out, const char *s, size_t len, bool cut)
{
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
static void split_target(struct http_state *st, struct probe_out *out, bool have_host)
{
    const char *u = (const char *)st->url;
    size_t len = st->url_len;
    const char *sep;

    if (u == NULL || len == 0)
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

enum probe_result probe_http(const uint8_t *p, size_t n, struct probe_out *out)
{
    http_parser hp;
    http_parser_settings cb;
    struct http_state st;
    size_t used;
    enum http_errno err;
    const char *method;

    memset(out, 0, sizeof(*out));
    if (n == 0)
        return PROBE_AGAIN;
    /* Every method token is upper-case ASCII; this keeps the parser off binary input. */
    if (p[0] < 'A' || p[0] > 'Z') {
        out->why = "not an HTTP method";
        return PROBE_NOMATCH;
    }

    memset(&st, 0, sizeof(st));
    st.base = p;
    st.conn.want = "upgrade";
    st.upg.want = "websocket";
    memset(&cb, 0, sizeof(cb));
    cb.on_url = on_url;
    cb.on_header_field = on_header_field;
    cb.on_header_value = on_header_value;
    cb.on_headers_complete = on_headers_complete;
    http_parser_init(&hp, HTTP_REQUEST);
    hp.data = &st;

    used = http_parser_execute(&hp, &cb, (const char *)p, n);
    err = HTTP_PARSER_ERRNO(&hp);
    if (err != HPE_OK && err != HPE_PAUSED) {
        out->why = http_errno_description(err);
        return PROBE_NOMATCH;
    }
    if (!st.done)
        return PROBE_AGAIN;

    /* Paused in on_headers_complete, http-parser returns the offset of the head's last
     * byte. Built without strict checks, it takes any byte after the final CR as the LF;
     * require the LF so that our idea of where the head ends matches the backend's. */
    if (used >= n || p[used] != '\n') {
        out->why = "request head does not end with CRLF CRLF";
        return PROBE_NOMATCH;
    }
    used++;
    out->consumed = used;

    method = http_method_str((enum http_method)hp.method);
    strncpy(out->method, method, sizeof(out->method) - 1);

    if (st.host_seen)
        set_host(out, st.host, st.host_len < HOST_KEEP ? st.host_len : HOST_KEEP,
                 st.host_len > HOST_KEEP);
    split_target(&st, out, st.host_seen);

    if (hp.method == HTTP_GET && st.conn.found && st.upg.found) {
        out->cls = CLASS_WEBSOCKET;
        out->ws_protocol_cut = st.wsp_len > sizeof(st.wsp);
        out->ws_protocol_len = (uint16_t)(out->ws_protocol_cut ? sizeof(st.wsp) : st.wsp_len);
        memcpy(out->ws_protocol, st.wsp, out->ws_protocol_len);
    } else
        out->cls = CLASS_HTTP;
    return PROBE_MATCH;
}
