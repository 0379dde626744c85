/* Admin HTTP server: accepts, reads a request as it arrives (lib/http_req.c keeps the
 * parser's state, so a trickled request costs linear CPU), answers through admin_api.c,
 * writes and closes. Runs on the main thread so that it never competes with the relays. */
#include <errno.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mux443/lib/http_req.h"
#include "mux443/lib/log.h"
#include "mux443/runtime/admin.h"
#include "mux443/runtime/admin_api.h"

#define ADMIN_MAX_REQUEST (72 * 1024) /* 64 KiB of body + the head */
#define ADMIN_TIMEOUT     5.0
#define ADMIN_MAX_CONNS   64 /* open at once; further ones are accepted and closed */

static unsigned nconns;
static ev_io listen_io;
static ev_timer accept_pause; /* out of descriptors: accepting resumes after it */
static ev_tstamp last_full_log;

struct admin_conn {
    ev_io io; /* first member: the watcher is the connection */
    ev_timer timer;
    int fd;
    char *buf;
    size_t len, cap;
    struct http_req req;
    char *out;
    size_t out_len, out_off;
};

static void admin_close(struct ev_loop *loop, struct admin_conn *a)
{
    ev_io_stop(loop, &a->io);
    ev_timer_stop(loop, &a->timer);
    close(a->fd);
    free(a->buf);
    free(a->out);
    free(a);
    nconns--;
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
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
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
    case 421:
        return "Misdirected Request";
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
            "Cache-Control: no-store\r\n%sConnection: close\r\n\r\n",
            status, status_text(status), type, blen,
            status == 401 ? "WWW-Authenticate: Bearer realm=\"mux443\"\r\n"
                            "WWW-Authenticate: Basic realm=\"mux443\", charset=\"UTF-8\"\r\n"
                          : "");
    if (!head_only)
        fwrite(body, 1, blen, f);
    fclose(f);
    ev_io_stop(loop, &a->io);
    ev_io_init(&a->io, admin_write_cb, a->fd, EV_WRITE);
    ev_io_start(loop, &a->io);
}

/* Copies header h into out; a value too long for out is replaced by one that no check
 * accepts (a NUL byte cannot be in a header, so "\x01" marks it). */
static void hdr_copy(const struct admin_conn *a, enum http_req_hdr h, char *out, size_t cap)
{
    const struct http_slice *s = &a->req.hdr[h];
    if (s->len >= cap)
        snprintf(out, cap, "\x01");
    else
        snprintf(out, cap, "%.*s", (int)s->len, a->buf + s->off);
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

    const char *why = NULL;
    int r = http_req_feed(&a->req, a->buf, a->len, &why);
    if (r < 0) {
        char msg[128];
        int m = snprintf(msg, sizeof(msg), "bad request: %s\n", why);
        respond(loop, a, 400, "text/plain", msg, (size_t)m, false);
        return;
    }
    if (r == 0)
        return;

    /* Copy the parts into NUL-terminated strings. */
    const struct http_req *hr = &a->req;
    char path[512] = "", ctype[128] = "", host[256] = "", origin[256] = "", auth[4200] = "";
    size_t ul = hr->url.len < sizeof(path) - 1 ? hr->url.len : sizeof(path) - 1;
    memcpy(path, a->buf + hr->url.off, ul);
    char *q = strchr(path, '?');
    if (q)
        *q = '\0'; /* no endpoint takes a query */
    const struct http_slice *ct = &hr->hdr[HREQ_CONTENT_TYPE];
    if (ct->len)
        snprintf(ctype, sizeof(ctype), "%.*s", (int)ct->len, a->buf + ct->off);
    hdr_copy(a, HREQ_HOST, host, sizeof(host));
    hdr_copy(a, HREQ_ORIGIN, origin, sizeof(origin));
    hdr_copy(a, HREQ_AUTHORIZATION, auth, sizeof(auth));
    char *body = strndup(a->buf + hr->body.off, hr->body.len);
    if (!body || strlen(body) != hr->body.len) {
        free(body);
        respond(loop, a, 400, "text/plain", "bad request: NUL byte in body\n", 30, false);
        return;
    }
    struct admin_req req = {.method = (int)hr->p.method,
                            .path = path,
                            .body = body,
                            .body_len = hr->body.len,
                            .content_type = ctype,
                            .host = host,
                            .origin = origin,
                            .authorization = auth,
                            .nhost = hr->hdr_count[HREQ_HOST],
                            .norigin = hr->hdr_count[HREQ_ORIGIN]};
    char *out = NULL;
    size_t out_len = 0;
    struct admin_resp resp = {.status = 200, .type = "text/plain; charset=utf-8"};
    resp.body = open_memstream(&out, &out_len);
    if (!resp.body) {
        free(body);
        admin_close(loop, a);
        return;
    }
    admin_api_dispatch(&req, &resp);
    fclose(resp.body);
    free(body);
    respond(loop, a, resp.status, resp.type, out, out_len, hr->p.method == HTTP_HEAD);
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
    if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            /* The listener stays readable: retry in a moment instead of spinning. */
            log_warn("admin: accept paused for 1s");
            ev_io_stop(loop, &listen_io);
            ev_timer_set(&accept_pause, 1.0, 0); /* a fired timer keeps no interval */
            ev_timer_start(loop, &accept_pause);
        }
        return;
    }
    if (nconns >= ADMIN_MAX_CONNS) {
        close(fd);
        if (ev_now(loop) - last_full_log >= 1.0) {
            last_full_log = ev_now(loop);
            log_warnx("admin: %d connections open: closing new ones", ADMIN_MAX_CONNS);
        }
        return;
    }
    struct admin_conn *a = calloc(1, sizeof(*a));
    if (!a) {
        close(fd);
        return;
    }
    a->fd = fd;
    nconns++;
    http_req_init(&a->req);
    ev_io_init(&a->io, admin_read_cb, fd, EV_READ);
    ev_io_start(loop, &a->io);
    ev_timer_init(&a->timer, admin_timeout_cb, ADMIN_TIMEOUT, 0);
    a->timer.data = a;
    ev_timer_start(loop, &a->timer);
}

static void accept_resume_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)t;
    (void)revents;
    ev_io_start(loop, &listen_io);
}

int admin_start(struct ev_loop *loop, const struct cfg_addr *addr)
{
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
    ev_timer_init(&accept_pause, accept_resume_cb, 1.0, 0);
    ev_io_start(loop, &listen_io);
    log_info("admin: listening on %s (/ status page, /healthz /metrics /routes /ufrags)",
             addr->text);
    return 0;
}
