/* Admin HTTP server: /healthz, /metrics (Prometheus text), /routes (JSON view of the
 * running snapshot) and /ufrags (ICE ufrag registration, ufrag.c). Runs on the main
 * thread so that it never competes with the relays. */
#include <errno.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mux443/runtime/admin.h"
#include "mux443/runtime/listener.h"
#include "mux443/lib/log.h"
#include "mux443/state/metrics.h"

#define ADMIN_MAX_REQUEST (72 * 1024) /* 64 KiB of body + the head */
#define ADMIN_TIMEOUT     5.0

struct admin_conn {
    ev_io io;
    ev_timer timer;
    int fd;
    char *buf;
    size_t len, cap;
    char *out;
    size_t out_len, out_off;
};

/* What http-parser found; pointers into the request buffer. */
struct parsed {
    const char *url, *body, *ctype;
    size_t url_len, body_len, ctype_len;
    int in_ctype;
    int done;
};

static int on_url(http_parser *p, const char *at, size_t n)
{
    struct parsed *r = p->data;
    if (!r->url)
        r->url = at;
    r->url_len = (size_t)(at + n - r->url);
    return 0;
}

static int on_hfield(http_parser *p, const char *at, size_t n)
{
    struct parsed *r = p->data;
    r->in_ctype = n == 12 && strncasecmp(at, "content-type", 12) == 0;
    return 0;
}

static int on_hvalue(http_parser *p, const char *at, size_t n)
{
    struct parsed *r = p->data;
    if (r->in_ctype) {
        r->ctype = at;
        r->ctype_len = n;
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    struct parsed *r = p->data;
    if (!r->body)
        r->body = at;
    r->body_len = (size_t)(at + n - r->body);
    return 0;
}

static int on_done(http_parser *p)
{
    ((struct parsed *)p->data)->done = 1;
    http_parser_pause(p, 1);
    return 0;
}

static void admin_close(struct ev_loop *loop, struct admin_conn *a)
{
    ev_io_stop(loop, &a->io);
    ev_timer_stop(loop, &a->timer);
    close(a->fd);
    free(a->buf);
    free(a->out);
    free(a);
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            fprintf(f, "\\u%04x", *s);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

static void routes_json(FILE *f)
{
    struct cfg *c = admin_cfg_get();
    fprintf(f, "{\"config\":");
    json_str(f, c->path);
    fprintf(f, ",\"routes\":[");
    for (size_t i = 0; i < c->nroutes; i++) {
        const struct cfg_route *r = &c->routes[i];
        fprintf(f, "%s{\"name\":", i ? "," : "");
        json_str(f, r->name);
        fprintf(f, ",\"line\":%d,\"classes\":[", r->line);
        int first = 1;
        for (int k = CLASS_TLS; k < CLASS_COUNT; k++)
            if (r->classes & (1u << k)) {
                fprintf(f, "%s\"%s\"", first ? "" : ",", probe_class_name((enum mux_class)k));
                first = 0;
            }
        fprintf(f, "],\"backend\":");
        json_str(f, r->backend->name);
        fprintf(f, ",\"idle_timeout\":%g}", r->idle_timeout);
    }
    fprintf(f, "],\"backends\":[");
    for (size_t i = 0; i < c->nbackends; i++) {
        const struct cfg_backend *b = &c->backends[i];
        fprintf(f, "%s{\"name\":", i ? "," : "");
        json_str(f, b->name);
        fprintf(f, ",\"servers\":[");
        for (size_t k = 0; k < b->servers.n; k++) {
            struct mx_server *s = mx_server_get(b->name, b->servers.v[k].text);
            fprintf(f, "%s{\"address\":", k ? "," : "");
            json_str(f, b->servers.v[k].text);
            fprintf(f, ",\"up\":%s}", atomic_load(&s->down) ? "false" : "true");
        }
        fprintf(f, "]}");
    }
    fprintf(f, "]}\n");
    cfg_unref(c);
}

static void dispatch(const struct admin_req *req, struct admin_resp *resp)
{
    if (strcmp(req->path, "/ufrags") == 0 || strncmp(req->path, "/ufrags/", 8) == 0) {
        ufrag_admin(req, resp);
        return;
    }
    if (req->method != HTTP_GET && req->method != HTTP_HEAD) {
        resp->status = 405;
        fprintf(resp->body, "method not allowed\n");
    } else if (strcmp(req->path, "/healthz") == 0) {
        bool ok = atomic_load(&mx.ready);
        resp->status = ok ? 200 : 503;
        fprintf(resp->body, ok ? "ok\n" : "starting\n");
    } else if (strcmp(req->path, "/metrics") == 0) {
        resp->type = "text/plain; version=0.0.4; charset=utf-8";
        metrics_render(resp->body);
    } else if (strcmp(req->path, "/routes") == 0) {
        resp->type = "application/json";
        routes_json(resp->body);
    } else {
        resp->status = 404;
        fprintf(resp->body, "not found: try /healthz, /metrics, /routes, /ufrags\n");
    }
}

static const char *status_text(int s)
{
    switch (s) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 503:
        return "Service Unavailable";
    default:
        return "Error";
    }
}

static void admin_write_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct admin_conn *a = (struct admin_conn *)io;
    (void)revents;
    while (a->out_off < a->out_len) {
        ssize_t n = send(a->fd, a->out + a->out_off, a->out_len - a->out_off, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0)
            break;
        a->out_off += (size_t)n;
    }
    admin_close(loop, a);
}

static void respond(struct ev_loop *loop, struct admin_conn *a, int status, const char *type,
                    const char *body, size_t blen, bool head_only)
{
    FILE *f = open_memstream(&a->out, &a->out_len);
    if (!f) {
        admin_close(loop, a);
        return;
    }
    fprintf(f,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
            "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
            status, status_text(status), type, blen);
    if (!head_only)
        fwrite(body, 1, blen, f);
    fclose(f);
    ev_io_stop(loop, &a->io);
    ev_io_init(&a->io, admin_write_cb, a->fd, EV_WRITE);
    ev_io_start(loop, &a->io);
}

static void admin_read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct admin_conn *a = (struct admin_conn *)io;
    (void)revents;

    if (a->len >= ADMIN_MAX_REQUEST) {
        respond(loop, a, 413, "text/plain", "request too large (64 KiB of body at most)\n", 43,
                false);
        return;
    }
    if (a->len + 1 >= a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 4096;
        if (cap > ADMIN_MAX_REQUEST + 1)
            cap = ADMIN_MAX_REQUEST + 1; /* one byte more than allowed: detects the excess */
        char *b = realloc(a->buf, cap);
        if (!b) {
            admin_close(loop, a);
            return;
        }
        a->buf = b;
        a->cap = cap;
    }
    ssize_t n = recv(a->fd, a->buf + a->len, a->cap - a->len - 1, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        admin_close(loop, a);
        return;
    }
    a->len += (size_t)n;

    /* Parse from the start each time: requests are small and this keeps no state. */
    static const http_parser_settings settings = {.on_url = on_url,
                                                  .on_header_field = on_hfield,
                                                  .on_header_value = on_hvalue,
                                                  .on_body = on_body,
                                                  .on_message_complete = on_done};
    struct parsed r = {0};
    http_parser p;
    http_parser_init(&p, HTTP_REQUEST);
    p.data = &r;
    http_parser_execute(&p, &settings, a->buf, a->len);
    enum http_errno e = HTTP_PARSER_ERRNO(&p);
    if (e != HPE_OK && e != HPE_PAUSED) {
        char msg[128];
        int m = snprintf(msg, sizeof(msg), "bad request: %s\n", http_errno_description(e));
        respond(loop, a, 400, "text/plain", msg, (size_t)m, false);
        return;
    }
    if (!r.done)
        return;

    /* Copy the parts into NUL-terminated strings. */
    char path[512] = "", query[512] = "", ctype[128] = "";
    size_t ul = r.url_len < sizeof(path) - 1 ? r.url_len : sizeof(path) - 1;
    memcpy(path, r.url, ul);
    char *q = strchr(path, '?');
    if (q) {
        snprintf(query, sizeof(query), "%s", q + 1);
        *q = '\0';
    }
    if (r.ctype_len)
        snprintf(ctype, sizeof(ctype), "%.*s", (int)r.ctype_len, r.ctype);
    char *body = strndup(r.body ? r.body : "", r.body_len);
    if (!body || strlen(body) != r.body_len) {
        free(body);
        respond(loop, a, 400, "text/plain", "bad request: NUL byte in body\n", 30, false);
        return;
    }
    struct admin_req req = {.method = (int)p.method,
                            .path = path,
                            .query = query,
                            .body = body,
                            .body_len = r.body_len,
                            .content_type = ctype};
    char *out = NULL;
    size_t out_len = 0;
    struct admin_resp resp = {.status = 200, .type = "text/plain; charset=utf-8"};
    resp.body = open_memstream(&out, &out_len);
    if (!resp.body) {
        free(body);
        admin_close(loop, a);
        return;
    }
    dispatch(&req, &resp);
    fclose(resp.body);
    free(body);
    respond(loop, a, resp.status, resp.type, out, out_len, p.method == HTTP_HEAD);
    free(out);
}

static void admin_timeout_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    admin_close(loop, t->data);
}

static void admin_accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)revents;
    int fd = accept4(io->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return;
    struct admin_conn *a = calloc(1, sizeof(*a));
    if (!a) {
        close(fd);
        return;
    }
    a->fd = fd;
    ev_io_init(&a->io, admin_read_cb, fd, EV_READ);
    ev_io_start(loop, &a->io);
    ev_timer_init(&a->timer, admin_timeout_cb, ADMIN_TIMEOUT, 0);
    a->timer.data = a;
    ev_timer_start(loop, &a->timer);
}

int admin_start(struct ev_loop *loop, const struct cfg_addr *addr)
{
    static ev_io listen_io;
    int one = 1;
    int fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, (const struct sockaddr *)&addr->ss, addr->len) < 0 || listen(fd, 64) < 0) {
        log_warn("admin: cannot listen on %s", addr->text);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    ev_io_init(&listen_io, admin_accept_cb, fd, EV_READ);
    ev_io_start(loop, &listen_io);
    log_info("admin: listening on %s (/healthz /metrics /routes /ufrags)", addr->text);
    return 0;
}
