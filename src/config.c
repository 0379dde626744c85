/* Configuration loader: one declarative key table drives parsing, defaults, validation
 * and the reference text. inih does the INI syntax; our reader counts lines. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <grp.h>
#include <netdb.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ini.h>

#include "mux443/config.h"
#include "mux443/log.h"
#include "mux443/metrics.h"
#include "mux443/tls.h"

enum sec_kind { SEC_MAIN, SEC_LISTENER, SEC_BACKEND, SEC_ROUTEMAP, SEC_RULE, SEC_TLS, SEC_UNKNOWN };
static const char *const sec_names[] = {"mux443", "listener NAME", "backend NAME",
                                        "route",  "route NAME",    "tls] or [tls NAME"};

enum key_type {
    K_ADDRS,   /* comma list of IP:PORT / [IPv6]:PORT; the key may repeat */
    K_SERVERS, /* comma list of HOST:PORT (names resolved at load); may repeat */
    K_SECONDS, /* duration: 5, 0.5, 500ms, 10s, 2m, 1h */
    K_SIZE,    /* bytes: 32768, 32k */
    K_UINT,
    K_BOOL,
    K_ENUM,    /* one of `choices` ("a|b|c"), stored as its index */
    K_STRLIST, /* comma list of words */
    K_PATHS,   /* comma list of file paths; relative ones are relative to the config file */
    K_STRING,
    K_BACKEND, /* name of a [backend NAME], resolved after parsing */
    K_CLASSES, /* comma list of traffic classes */
    K_WORKERS, /* auto | 1..256 */
};

/* A reference to a backend by name, resolved in the validation pass. */
struct ref {
    char *name;
    int line;
};

/* Parse-time forms of each section. The snapshot types are embedded so that the table's
 * offsets point straight at the fields that end up in the snapshot. */
struct raw_main {
    struct cfg_addrlist listen;
    int listen_line;
    unsigned workers;
    int log_level;
    double peek_timeout, connect_timeout, idle_timeout, drain_timeout;
    unsigned preread_max, max_connections, max_per_client, fanout_max;
    double ufrag_ttl, ufrag_grace, fanout_timeout;
    char *user, *group;
    struct cfg_addrlist admin;
};

struct raw_listener {
    struct cfg_listener l;
};

struct raw_backend {
    struct cfg_backend b;
};

struct raw_rule {
    struct cfg_route r;
    struct ref backend;
};

struct raw_routemap {
    struct ref cls[CLASS_COUNT];
};

struct raw_tls {
    struct cfg_tls t;
};

struct key_def {
    enum sec_kind sec;
    const char *name;
    enum key_type type;
    size_t off;
    double min, max;
    const char *choices;
    const char *dflt; /* applied when the key is absent; NULL = required or inherited */
    const char *help;
};

#define M(f) offsetof(struct raw_main, f)
#define L(f) offsetof(struct raw_listener, l.f)
#define B(f) offsetof(struct raw_backend, b.f)
#define R(f) offsetof(struct raw_rule, f)
#define C(i) offsetof(struct raw_routemap, cls[i])
#define T(f) offsetof(struct raw_tls, t.f)

static const struct key_def keys[] = {
    {SEC_MAIN, "listen", K_ADDRS, M(listen), 0, 0, NULL, NULL,
     "Addresses of the main listener, e.g. 0.0.0.0:443, [::]:443."},
    {SEC_MAIN, "workers", K_WORKERS, M(workers), 1, 256, NULL, "auto",
     "Worker threads, each with its own event loop and SO_REUSEPORT sockets; auto = cores."},
    {SEC_MAIN, "log_level", K_ENUM, M(log_level), 0, 0, "error|warn|info|debug", "info",
     "Least severe level logged to stderr."},
    {SEC_MAIN, "peek_timeout", K_SECONDS, M(peek_timeout), 0.01, 300, NULL, "5s",
     "Time a client has to send enough bytes to be recognised (listener default)."},
    {SEC_MAIN, "preread_max", K_SIZE, M(preread_max), 1024, 262144, NULL, "32k",
     "Bytes buffered while recognising a client (listener default)."},
    {SEC_MAIN, "connect_timeout", K_SECONDS, M(connect_timeout), 0.01, 300, NULL, "3s",
     "Time allowed to connect to a backend server before trying the next (backend default)."},
    {SEC_MAIN, "idle_timeout", K_SECONDS, M(idle_timeout), 1, 604800, NULL, "1h",
     "Close a relayed connection after this long without a byte either way (route default)."},
    {SEC_MAIN, "drain_timeout", K_SECONDS, M(drain_timeout), 0, 86400, NULL, "30s",
     "On SIGTERM/SIGINT, how long open connections may finish before they are closed."},
    {SEC_MAIN, "max_connections", K_UINT, M(max_connections), 0, 10000000, NULL, "0",
     "Connections open at once, all workers together; 0 = no limit."},
    {SEC_MAIN, "max_connections_per_client", K_UINT, M(max_per_client), 0, 10000000, NULL, "0",
     "Connections open at once from one client address (after PROXY); 0 = no limit."},
    {SEC_MAIN, "ufrag_ttl", K_SECONDS, M(ufrag_ttl), 1, 604800, NULL, "10m",
     "A ufrag registered or learnt by fan-out, with no connection, is forgotten after this."},
    {SEC_MAIN, "ufrag_grace", K_SECONDS, M(ufrag_grace), 0, 86400, NULL, "30s",
     "After the last ICE-TCP connection of a ufrag closes, keep its entry this long."},
    {SEC_MAIN, "fanout_timeout", K_SECONDS, M(fanout_timeout), 0.05, 60, NULL, "2s",
     "How long a fan-out waits for a media server to answer the Binding request."},
    {SEC_MAIN, "fanout_max", K_UINT, M(fanout_max), 1, 100000, NULL, "256",
     "Fan-outs in progress at once (each opens a connection to every server of the pool)."},
    {SEC_MAIN, "admin", K_ADDRS, M(admin), 0, 0, NULL, NULL,
     "Admin HTTP listener (/healthz /metrics /routes /ufrags), e.g. 127.0.0.1:9443; off when "
     "unset. Keep it on loopback: it has no authentication."},
    {SEC_MAIN, "user", K_STRING, M(user), 0, 0, NULL, NULL,
     "After binding, switch to this user (and its group); mux443 exits if it cannot."},
    {SEC_MAIN, "group", K_STRING, M(group), 0, 0, NULL, NULL,
     "Group to switch to (default: the user's own group)."},

    {SEC_LISTENER, "listen", K_ADDRS, L(addrs), 0, 0, NULL, NULL,
     "Addresses of this listener (required)."},
    {SEC_LISTENER, "proxy_protocol", K_BOOL, L(proxy_in), 0, 0, NULL, "no",
     "Expect a PROXY v1/v2 header first (only behind a trusted load balancer)."},
    {SEC_LISTENER, "peek_timeout", K_SECONDS, L(peek_timeout), 0.01, 300, NULL, NULL,
     "As in [mux443], for this listener."},
    {SEC_LISTENER, "preread_max", K_SIZE, L(preread_max), 1024, 262144, NULL, NULL,
     "As in [mux443], for this listener."},
    {SEC_LISTENER, "max_connections", K_UINT, L(max_connections), 0, 10000000, NULL, "0",
     "Connections open at once on this listener; 0 = no limit."},

    {SEC_BACKEND, "server", K_SERVERS, B(servers), 0, 0, NULL, NULL,
     "HOST:PORT of each server, in failover order (required); may repeat. "
     "HOST:PORT ufrag_prefix=P sends ICE-TCP whose server ufrag starts with P there."},
    {SEC_BACKEND, "proxy_protocol", K_ENUM, B(proxy_protocol), 0, 0, "none|v1|v2", "none",
     "Send a PROXY header with the client's address first (coturn --tcp-proxy-port: v2)."},
    {SEC_BACKEND, "connect_timeout", K_SECONDS, B(connect_timeout), 0.01, 300, NULL, NULL,
     "As in [mux443], for this backend."},
    {SEC_BACKEND, "balance", K_ENUM, B(balance), 0, 0, "roundrobin|source|ufrag", "roundrobin",
     "roundrobin: each connection to the next server; source: by a hash of the client IP; "
     "ufrag: ICE-TCP to the server owning the ufrag (registered, prefix, or found by "
     "fan-out)."},
    {SEC_BACKEND, "health", K_ENUM, B(health), 0, 0, "none|tcp|stun|http", "none",
     "Active check of each server: a TCP connect, a STUN Binding request, or an HTTP GET."},
    {SEC_BACKEND, "health_path", K_STRING, B(health_path), 0, 0, NULL, "/",
     "Path of the HTTP health check; 2xx and 3xx count as healthy."},
    {SEC_BACKEND, "health_interval", K_SECONDS, B(health_interval), 0.1, 3600, NULL, "5s",
     "Time between checks of one server."},
    {SEC_BACKEND, "health_timeout", K_SECONDS, B(health_timeout), 0.05, 60, NULL, "2s",
     "Time a check may take."},
    {SEC_BACKEND, "health_rise", K_UINT, B(health_rise), 1, 100, NULL, "2",
     "Consecutive passes that bring a failed server back."},
    {SEC_BACKEND, "health_fall", K_UINT, B(health_fall), 1, 100, NULL, "3",
     "Consecutive failures that take a server out of service."},

    {SEC_ROUTEMAP, "tls", K_BACKEND, C(CLASS_TLS), 0, 0, NULL, NULL, "Backend for TLS."},
    {SEC_ROUTEMAP, "http", K_BACKEND, C(CLASS_HTTP), 0, 0, NULL, NULL, "Backend for HTTP."},
    {SEC_ROUTEMAP, "websocket", K_BACKEND, C(CLASS_WEBSOCKET), 0, 0, NULL, NULL,
     "Backend for WebSocket upgrades."},
    {SEC_ROUTEMAP, "stun", K_BACKEND, C(CLASS_STUN), 0, 0, NULL, NULL,
     "Backend for STUN/TURN over TCP."},
    {SEC_ROUTEMAP, "ice-tcp", K_BACKEND, C(CLASS_ICE_TCP), 0, 0, NULL, NULL,
     "Backend for RFC 4571-framed ICE-TCP."},
    {SEC_ROUTEMAP, "default", K_BACKEND, C(CLASS_UNKNOWN), 0, 0, NULL, NULL,
     "Backend for bytes no probe recognises; without it they are closed."},
    {SEC_ROUTEMAP, "on_timeout", K_BACKEND, C(CLASS_TIMEOUT), 0, 0, NULL, NULL,
     "Backend for clients silent past peek_timeout; without it they are closed."},

    {SEC_RULE, "class", K_CLASSES, R(r.classes), 0, 0, NULL, NULL,
     "Classes this rule applies to (tls, http, websocket, stun, ice-tcp)."},
    {SEC_RULE, "sni", K_STRLIST, R(r.sni), 0, 0, NULL, NULL,
     "TLS server names; *.example.com matches one or more labels."},
    {SEC_RULE, "alpn", K_STRLIST, R(r.alpn), 0, 0, NULL, NULL,
     "Matches when the client offers any of these ALPN protocols."},
    {SEC_RULE, "host", K_STRLIST, R(r.host), 0, 0, NULL, NULL,
     "HTTP Host names (port ignored); *.example.com wildcards."},
    {SEC_RULE, "path", K_STRING, R(r.path), 0, 0, NULL, NULL, "HTTP path prefix, e.g. /ws."},
    {SEC_RULE, "ufrag", K_STRING, R(r.ufrag), 0, 0, NULL, NULL, "ICE-TCP server ufrag prefix."},
    {SEC_RULE, "backend", K_BACKEND, R(backend), 0, 0, NULL, NULL,
     "Backend for connections this rule matches (required)."},
    {SEC_RULE, "tls", K_ENUM, R(r.tls), 0, 0, "any|yes|no", "any",
     "yes: only clients that used TLS (a rule for class tls passes it through; for other "
     "classes mux443 terminated it); no: only plain-text clients."},
    {SEC_RULE, "idle_timeout", K_SECONDS, R(r.idle_timeout), 1, 604800, NULL, NULL,
     "As in [mux443], for this route."},

    {SEC_TLS, "cert", K_PATHS, T(certs), 0, 0, NULL, NULL,
     "PEM certificate chain files, leaf first (required); repeat for RSA + ECDSA."},
    {SEC_TLS, "key", K_PATHS, T(keys), 0, 0, NULL, NULL,
     "PEM private key files, one per cert, in the same order (required)."},
    {SEC_TLS, "default", K_BOOL, T(is_default), 0, 0, NULL, NULL,
     "Serve clients without SNI, or whose SNI no certificate covers; yes for [tls]."},
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

struct section {
    enum sec_kind kind;
    char *title; /* as written between the brackets */
    int line;
    void *obj;
    int key_line[NKEYS]; /* line each key was set on; 0 = not set */
};

struct err {
    int line;
    char *msg;
};

struct parse {
    const char *file;
    FILE *in;
    int line;
    struct section **secs;
    size_t nsecs;
    struct section *cur;
    struct raw_main *main;
    struct raw_routemap *routemap;
    struct err *errs;
    size_t nerrs;
};

static void *xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz);
    if (!p)
        fatal("out of memory");
    return p;
}

static void *xrealloc(void *p, size_t n, size_t sz)
{
    p = realloc(p, (n ? n : 1) * sz);
    if (!p)
        fatal("out of memory");
    return p;
}

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    if (!d)
        fatal("out of memory");
    return d;
}

/* Records "FILE:LINE: [section] key: msg". */
LOG_FMT(5, 6)
static void perr(struct parse *ps, int line, const struct section *sec, const char *key,
                 const char *fmt, ...)
{
    char msg[512], *full;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (asprintf(&full, "%s:%d: %s%s%s%s%s%s", ps->file, line, sec ? "[" : "",
                 sec ? sec->title : "", sec ? "] " : "", key ? key : "", key ? ": " : "", msg) < 0)
        fatal("out of memory");
    ps->errs = xrealloc(ps->errs, ps->nerrs + 1, sizeof(*ps->errs));
    ps->errs[ps->nerrs++] = (struct err){line, full};
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

/* RFC 8445 ice-char: ALPHA / DIGIT / "+" / "/". */
static bool valid_ufrag(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '+' && *s != '/')
            return false;
    return true;
}

static bool valid_name(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("_.-", *s))
            return false;
    return true;
}

/* ---- values ---------------------------------------------------------------------- */

/* Splits "HOST:PORT" / "[V6]:PORT"; host and port point into buf. */
static bool split_hostport(char *buf, char **host, char **port)
{
    char *colon;
    if (buf[0] == '[') {
        char *rb = strchr(buf, ']');
        if (!rb || rb[1] != ':')
            return false;
        *rb = '\0';
        *host = buf + 1;
        *port = rb + 2;
    } else {
        colon = strrchr(buf, ':');
        if (!colon || strchr(buf, ':') != colon)
            return false;
        *colon = '\0';
        *host = buf;
        *port = colon + 1;
    }
    if (!**host || !**port || strlen(*port) > 5)
        return false;
    for (char *p = *port; *p; p++)
        if (!isdigit((unsigned char)*p))
            return false;
    long v = strtol(*port, NULL, 10);
    return v >= 1 && v <= 65535;
}

/* Off while fuzzing: a fuzzer must not send DNS queries. */
static bool resolve_names = true;

static bool parse_addr(const char *text, bool resolve, struct cfg_addr *out, const char **why)
{
    char buf[300], *host, *port;
    struct addrinfo hints = {0}, *res = NULL;

    if (strlen(text) >= sizeof(buf)) {
        *why = "too long";
        return false;
    }
    strcpy(buf, text);
    if (!split_hostport(buf, &host, &port)) {
        *why = "expected IP:PORT or [IPv6]:PORT with a port from 1 to 65535";
        return false;
    }
    hints.ai_socktype = SOCK_STREAM;
    resolve = resolve && resolve_names;
    hints.ai_flags = AI_NUMERICSERV | (resolve ? 0 : AI_NUMERICHOST);
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0 || !res) {
        *why = resolve ? "cannot resolve the host name" : "expected a numeric IP address";
        return false;
    }
    memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
    out->len = res->ai_addrlen;
    freeaddrinfo(res);
    cfg_addr_format((struct sockaddr *)&out->ss, out->text, sizeof(out->text));
    return true;
}

void cfg_addr_format(const struct sockaddr *sa, char *dst, size_t cap)
{
    char ip[INET6_ADDRSTRLEN];
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
        snprintf(dst, cap, "%s:%u", ip, ntohs(s4->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
        snprintf(dst, cap, "[%s]:%u", ip, ntohs(s6->sin6_port));
    } else {
        snprintf(dst, cap, "unknown");
    }
}

static bool parse_seconds(const char *v, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || !isfinite(d))
        return false;
    if (strcmp(end, "") == 0 || strcmp(end, "s") == 0)
        ;
    else if (strcmp(end, "ms") == 0)
        d /= 1000;
    else if (strcmp(end, "m") == 0)
        d *= 60;
    else if (strcmp(end, "h") == 0)
        d *= 3600;
    else
        return false;
    *out = d;
    return true;
}

static bool parse_uint(const char *v, bool size_suffix, double *out)
{
    char *end;
    if (!isdigit((unsigned char)*v))
        return false;
    errno = 0;
    unsigned long long u = strtoull(v, &end, 10);
    if (errno)
        return false;
    double d = (double)u;
    if (size_suffix && (*end == 'k' || *end == 'K'))
        d *= 1024, end++;
    else if (size_suffix && (*end == 'm' || *end == 'M'))
        d *= 1024 * 1024, end++;
    if (*end)
        return false;
    *out = d;
    return true;
}

/* Iterates over the comma-separated items of v (modified in place). */
static char *next_item(char **cursor)
{
    char *s = *cursor, *comma;
    if (!s)
        return NULL;
    comma = strchr(s, ',');
    if (comma) {
        *comma = '\0';
        *cursor = comma + 1;
    } else {
        *cursor = NULL;
    }
    return trim(s);
}

void cfg_strlist_add(struct cfg_strlist *l, const char *s)
{
    l->v = xrealloc(l->v, l->n + 1, sizeof(char *));
    l->v[l->n++] = xstrdup(s);
}

static const char *type_expect(const struct key_def *k, char *buf, size_t cap)
{
    switch (k->type) {
    case K_ADDRS:
        return "IP:PORT[, IP:PORT...]";
    case K_SERVERS:
        return "HOST:PORT[, HOST:PORT...]";
    case K_SECONDS:
        snprintf(buf, cap, "a duration from %gs to %gs, e.g. 5, 500ms, 2m", k->min, k->max);
        return buf;
    case K_SIZE:
    case K_UINT:
        snprintf(buf, cap, "a whole number from %.0f to %.0f", k->min, k->max);
        return buf;
    case K_BOOL:
        return "yes or no";
    case K_ENUM:
        snprintf(buf, cap, "one of %s", k->choices);
        return buf;
    case K_WORKERS:
        return "auto or a number from 1 to 256";
    case K_CLASSES:
        return "tls, http, websocket, stun, ice-tcp";
    case K_PATHS:
        return "FILE[, FILE...] (relative to this file's directory)";
    default:
        return "a value";
    }
}

/* Parses one value into obj per the key table; records errors. */
static void set_value(struct parse *ps, struct section *sec, const struct key_def *k,
                      const char *value, int line)
{
    char *field = (char *)sec->obj + k->off;
    char ebuf[128], vbuf[300], *cur, *item;
    const char *why = NULL;
    double d;

#define BAD(...)                                                                                   \
    do {                                                                                           \
        perr(ps, line, sec, k->name, __VA_ARGS__);                                                 \
        return;                                                                                    \
    } while (0)

    if (strlen(value) >= sizeof(vbuf))
        BAD("value too long");
    strcpy(vbuf, value);
    if (!*vbuf && k->type != K_STRING)
        BAD("empty value (expected %s)", type_expect(k, ebuf, sizeof(ebuf)));

    switch (k->type) {
    case K_ADDRS:
    case K_SERVERS: {
        struct cfg_addrlist *l = (struct cfg_addrlist *)field;
        cur = vbuf;
        while ((item = next_item(&cur))) {
            struct cfg_addr a;
            char *opts = strpbrk(item, " \t"), *prefix = NULL;
            if (opts) {
                *opts++ = '\0';
                opts = trim(opts);
                /* The only server option: ufrag_prefix=P (ICE-TCP, static ufrag routing). */
                if (k->type != K_SERVERS || strncmp(opts, "ufrag_prefix=", 13) != 0 ||
                    !valid_ufrag(opts + 13))
                    BAD("unexpected '%s' after '%s' (expected %s%s)", opts, item,
                        type_expect(k, ebuf, sizeof(ebuf)),
                        k->type == K_SERVERS ? ", optionally followed by ufrag_prefix=P with "
                                               "P made of ALPHA DIGIT + /"
                                             : "");
                prefix = opts + 13;
            }
            if (!parse_addr(item, k->type == K_SERVERS, &a, &why))
                BAD("%s (got '%s', expected %s)", why, item, type_expect(k, ebuf, sizeof(ebuf)));
            if (k->type == K_SERVERS) {
                struct cfg_backend *b = &((struct raw_backend *)sec->obj)->b;
                b->ufrag_prefix = xrealloc(b->ufrag_prefix, l->n + 1, sizeof(char *));
                b->ufrag_prefix[l->n] = prefix ? xstrdup(prefix) : NULL;
            }
            l->v = xrealloc(l->v, l->n + 1, sizeof(*l->v));
            l->v[l->n++] = a;
        }
        if (k->sec == SEC_MAIN && k->off == M(listen))
            ps->main->listen_line = line;
        return;
    }
    case K_SECONDS:
        if (!parse_seconds(vbuf, &d) || d < k->min || d > k->max)
            BAD("out of range or not a duration (got '%s', expected %s)", vbuf,
                type_expect(k, ebuf, sizeof(ebuf)));
        *(double *)field = d;
        return;
    case K_SIZE:
    case K_UINT:
        if (!parse_uint(vbuf, k->type == K_SIZE, &d) || d < k->min || d > k->max)
            BAD("out of range or not a number (got '%s', expected %s)", vbuf,
                type_expect(k, ebuf, sizeof(ebuf)));
        *(unsigned *)field = (unsigned)d;
        return;
    case K_WORKERS:
        if (strcmp(vbuf, "auto") == 0) {
            long n = sysconf(_SC_NPROCESSORS_ONLN);
            *(unsigned *)field = n < 1 ? 1 : n > 256 ? 256 : (unsigned)n;
            return;
        }
        if (!parse_uint(vbuf, false, &d) || d < 1 || d > 256)
            BAD("out of range (got '%s', expected %s)", vbuf, type_expect(k, ebuf, sizeof(ebuf)));
        *(unsigned *)field = (unsigned)d;
        return;
    case K_BOOL:
        if (!strcmp(vbuf, "yes") || !strcmp(vbuf, "true") || !strcmp(vbuf, "on"))
            *(bool *)field = true;
        else if (!strcmp(vbuf, "no") || !strcmp(vbuf, "false") || !strcmp(vbuf, "off"))
            *(bool *)field = false;
        else
            BAD("not a boolean (got '%s', expected yes or no)", vbuf);
        return;
    case K_ENUM: {
        const char *c = k->choices;
        for (int idx = 0; c; idx++) {
            const char *bar = strchr(c, '|');
            size_t len = bar ? (size_t)(bar - c) : strlen(c);
            if (strlen(vbuf) == len && strncmp(vbuf, c, len) == 0) {
                *(int *)field = idx;
                return;
            }
            c = bar ? bar + 1 : NULL;
        }
        BAD("unknown value (got '%s', expected one of %s)", vbuf, k->choices);
    }
    case K_STRLIST: {
        struct cfg_strlist *l = (struct cfg_strlist *)field;
        cur = vbuf;
        while ((item = next_item(&cur))) {
            if (!*item || strpbrk(item, " \t"))
                BAD("bad list item (got '%s', expected words separated by commas)", item);
            cfg_strlist_add(l, item);
        }
        return;
    }
    case K_PATHS: {
        struct cfg_strlist *l = (struct cfg_strlist *)field;
        const char *slash = strrchr(ps->file, '/');
        int dirlen = slash ? (int)(slash - ps->file) : 0;
        cur = vbuf;
        while ((item = next_item(&cur))) {
            char path[4096];
            if (!*item)
                BAD("empty file name in the list");
            if (item[0] == '/' || !slash)
                snprintf(path, sizeof(path), "%s", item);
            else
                snprintf(path, sizeof(path), "%.*s/%s", dirlen, ps->file, item);
            cfg_strlist_add(l, path);
        }
        return;
    }
    case K_STRING:
        free(*(char **)field);
        *(char **)field = xstrdup(vbuf);
        return;
    case K_BACKEND: {
        struct ref *r = (struct ref *)field;
        if (!valid_name(vbuf))
            BAD("not a backend name (got '%s', expected letters, digits, _ . -)", vbuf);
        free(r->name);
        r->name = xstrdup(vbuf);
        r->line = line;
        return;
    }
    case K_CLASSES: {
        unsigned mask = 0;
        cur = vbuf;
        while ((item = next_item(&cur))) {
            enum mux_class c = probe_class_from_name(item);
            if (c == CLASS_NONE || c == CLASS_UNKNOWN || c == CLASS_TIMEOUT)
                BAD("unknown class (got '%s', expected %s)", item,
                    type_expect(k, ebuf, sizeof(ebuf)));
            mask |= 1u << c;
        }
        *(unsigned *)field = mask;
        return;
    }
    }
#undef BAD
}

/* ---- sections and the inih callbacks --------------------------------------------- */

static void *section_object(struct parse *ps, enum sec_kind kind, const char *name)
{
    switch (kind) {
    case SEC_MAIN:
        return ps->main;
    case SEC_ROUTEMAP:
        return ps->routemap;
    case SEC_LISTENER: {
        struct raw_listener *o = xcalloc(1, sizeof(*o));
        o->l.name = xstrdup(name);
        o->l.peek_timeout = -1;
        return o;
    }
    case SEC_BACKEND: {
        struct raw_backend *o = xcalloc(1, sizeof(*o));
        o->b.name = xstrdup(name);
        o->b.connect_timeout = -1;
        return o;
    }
    case SEC_RULE: {
        struct raw_rule *o = xcalloc(1, sizeof(*o));
        o->r.name = xstrdup(name);
        o->r.idle_timeout = -1;
        return o;
    }
    case SEC_TLS: {
        struct raw_tls *o = xcalloc(1, sizeof(*o));
        o->t.name = xstrdup(name ? name : "");
        return o;
    }
    default:
        return NULL;
    }
}

/* Registers a section (of unknown kind so far) as the current one. */
static struct section *section_new(struct parse *ps, const char *title)
{
    struct section *sec = xcalloc(1, sizeof(*sec));
    sec->title = xstrdup(title);
    sec->line = ps->line;
    sec->kind = SEC_UNKNOWN;
    ps->secs = xrealloc(ps->secs, ps->nsecs + 1, sizeof(*ps->secs));
    ps->secs[ps->nsecs++] = sec;
    ps->cur = sec;
    return sec;
}

/* Called by our reader for each "[...]" line, before inih sees it. */
static void section_begin(struct parse *ps, char *title)
{
    struct section *sec = section_new(ps, title);
    char kindbuf[64] = "", *name;

    name = strchr(title, ' ');
    size_t klen = name ? (size_t)(name - title) : strlen(title);
    if (klen < sizeof(kindbuf))
        memcpy(kindbuf, title, klen);
    name = name ? trim(name) : NULL;

    struct {
        const char *word;
        enum sec_kind plain, named;
    } kinds[] = {{"mux443", SEC_MAIN, SEC_UNKNOWN},
                 {"listener", SEC_UNKNOWN, SEC_LISTENER},
                 {"backend", SEC_UNKNOWN, SEC_BACKEND},
                 {"route", SEC_ROUTEMAP, SEC_RULE},
                 {"tls", SEC_TLS, SEC_TLS}};
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        if (strcmp(kindbuf, kinds[i].word) != 0)
            continue;
        sec->kind = name && *name ? kinds[i].named : kinds[i].plain;
        if (sec->kind == SEC_UNKNOWN) {
            perr(ps, ps->line, sec, NULL, "%s",
                 name ? "this section takes no name"
                      : "this section needs a name, e.g. [backend web]");
            return;
        }
        break;
    }
    if (sec->kind == SEC_UNKNOWN) {
        perr(ps, ps->line, sec, NULL,
             "unknown section (expected mux443, listener NAME, backend NAME, route, route NAME, "
             "tls, tls NAME)");
        return;
    }
    if (name && *name && !valid_name(name)) {
        perr(ps, ps->line, sec, NULL, "bad name '%s' (expected letters, digits, _ . -)", name);
        sec->kind = SEC_UNKNOWN;
        return;
    }
    /* Two sections with the same title: the second is an error, and its keys are checked
     * but dropped. The singletons [mux443] and [route] may not repeat either. */
    for (size_t i = 0; i + 1 < ps->nsecs; i++) {
        if (ps->secs[i]->kind != SEC_UNKNOWN && ps->secs[i]->kind == sec->kind &&
            strcmp(ps->secs[i]->title, sec->title) == 0) {
            perr(ps, ps->line, sec, NULL, "duplicate section (first on line %d)",
                 ps->secs[i]->line);
            sec->kind = SEC_UNKNOWN;
            return;
        }
    }
    sec->obj = section_object(ps, sec->kind, name);
}

static int ini_handler_fn(void *user, const char *section, const char *name, const char *value)
{
    struct parse *ps = user;
    struct section *sec = ps->cur;
    int line = ps->line;

    if (!sec) {
        perr(ps, line, NULL, name, "key outside any section (put it under [mux443])");
        return 1;
    }
    if (sec->kind == SEC_UNKNOWN)
        return 1; /* the section itself was reported */
    for (size_t i = 0; i < NKEYS; i++) {
        const struct key_def *k = &keys[i];
        if (k->sec != sec->kind || strcmp(k->name, name) != 0)
            continue;
        bool repeatable = k->type == K_ADDRS || k->type == K_SERVERS || k->type == K_STRLIST ||
                          k->type == K_PATHS;
        if (sec->key_line[i] && !repeatable) {
            perr(ps, line, sec, name, "duplicate key (first set on line %d)", sec->key_line[i]);
            return 1;
        }
        sec->key_line[i] = line;
        set_value(ps, sec, k, value, line);
        return 1;
    }
    char known[512] = "";
    for (size_t i = 0; i < NKEYS; i++) {
        if (keys[i].sec != sec->kind)
            continue;
        if (*known)
            strncat(known, ", ", sizeof(known) - strlen(known) - 1);
        strncat(known, keys[i].name, sizeof(known) - strlen(known) - 1);
    }
    perr(ps, line, sec, name, "unknown key (expected one of: %s)", known);
    return 1;
}

/* inih reader: hands inih one line at a time so that ps->line is the line of every
 * handler call. Rejects over-long lines and NUL bytes with a message instead of letting
 * inih cut them, strips indentation (so an indented line is never taken as a
 * continuation of the previous value), and reports syntax errors itself so that all of
 * them are listed, not only inih's first. */
static char *ini_reader_fn(char *str, int num, void *stream)
{
    struct parse *ps = stream;
    size_t n = 0, cap = (size_t)num - 2; /* room for '\n' and '\0' */
    bool too_long = false, nul = false;
    int c;

    if (num < 4)
        return NULL;
    while ((c = getc(ps->in)) != EOF && c != '\n') {
        if (c == '\0')
            nul = true;
        else if (n < cap)
            str[n++] = (char)c;
        else
            too_long = true;
    }
    if (c == EOF && n == 0 && !too_long && !nul)
        return NULL;
    ps->line++;
    str[n] = '\0';
    if (too_long || nul) {
        if (too_long)
            perr(ps, ps->line, NULL, NULL,
                 "line longer than %d bytes (repeat the key to split a list)", num - 3);
        else
            perr(ps, ps->line, NULL, NULL, "line contains a NUL byte");
        str[0] = '\n', str[1] = '\0';
        return str;
    }
    char *s = str;
    while (*s == ' ' || *s == '\t' || *s == '\r')
        s++;
    memmove(str, s, strlen(s) + 1);
    n = strlen(str);
    while (n && (str[n - 1] == '\r' || str[n - 1] == ' ' || str[n - 1] == '\t'))
        str[--n] = '\0';

    /* Skip a UTF-8 byte order mark on the first line when looking at the syntax. */
    s = str;
    if (ps->line == 1 && (unsigned char)s[0] == 0xEF && (unsigned char)s[1] == 0xBB &&
        (unsigned char)s[2] == 0xBF)
        s += 3;
    if (*s == '[') {
        char *rb = strchr(s, ']');
        char *after = rb ? rb + 1 : NULL;
        while (after && (*after == ' ' || *after == '\t'))
            after++;
        if (!rb || (*after && *after != ';' && *after != '#')) {
            perr(ps, ps->line, NULL, NULL,
                 "bad section header (expected [name] alone on the line)");
            /* Keys up to the next header belong to no section: ignore them quietly. */
            section_new(ps, "?");
            /* Keep inih from opening a section: hand it a comment instead. */
            str[0] = ';';
        } else {
            char title[200];
            size_t tl = (size_t)(rb - s - 1);
            memcpy(title, s + 1, tl);
            title[tl] = '\0';
            section_begin(ps, trim(title));
        }
    } else if (*s && *s != ';' && *s != '#' && !strpbrk(s, "=:")) {
        perr(ps, ps->line, ps->cur, NULL, "expected 'key = value' (got '%.40s')", s);
        str[0] = ';';
    }
    strcat(str, "\n");
    return str;
}

/* ---- validation and snapshot ------------------------------------------------------ */

static const struct cfg_backend *resolve_backend(struct parse *ps, struct cfg *c,
                                                 const struct section *sec, const char *key,
                                                 const struct ref *r)
{
    const struct cfg_backend *b = cfg_backend_find(c, r->name);
    if (!b)
        perr(ps, r->line, sec, key,
             "unknown backend (got '%s', expected the name of a "
             "[backend NAME] section)",
             r->name);
    return b;
}

static int key_line_of(const struct section *sec, const char *key)
{
    if (!sec)
        return 1;
    for (size_t k = 0; k < NKEYS; k++)
        if (keys[k].sec == sec->kind && strcmp(keys[k].name, key) == 0)
            return sec->key_line[k] ? sec->key_line[k] : sec->line;
    return sec->line;
}

static void check_rule(struct parse *ps, const struct section *sec, struct cfg_route *r)
{
    const unsigned web = (1u << CLASS_HTTP) | (1u << CLASS_WEBSOCKET);
    const unsigned ice = 1u << CLASS_ICE_TCP;

    /* sni/alpn alone mean a ClientHello (passthrough); with other classes they match the
     * names the client sent in the TLS that mux443 terminated. */
    if ((r->sni.n || r->alpn.n) && !r->classes)
        r->classes = 1u << CLASS_TLS;
    if ((r->sni.n || r->alpn.n) && r->tls == TLSM_NO)
        perr(ps, key_line_of(sec, r->sni.n ? "sni" : "alpn"), sec, r->sni.n ? "sni" : "alpn",
             "never matches: tls = no excludes every client that sends SNI or ALPN");
    struct {
        bool used;
        unsigned allowed;
        const char *key, *what;
    } c[] = {{r->host.n || r->path, web, r->host.n ? "host" : "path", "http, websocket"},
             {r->ufrag != NULL, ice, "ufrag", "ice-tcp"}};
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        if (!c[i].used)
            continue;
        if (!r->classes)
            r->classes = c[i].allowed; /* criteria imply the class */
        else if (r->classes & ~c[i].allowed)
            perr(ps, key_line_of(sec, c[i].key), sec, c[i].key, "only applies to class %s",
                 c[i].what);
    }
    if (r->path && r->path[0] != '/')
        perr(ps, key_line_of(sec, "path"), sec, "path", "must start with '/' (got '%s')", r->path);
}

/* Loads the certificates of a [tls] section into the snapshot. */
static void build_tls(struct parse *ps, struct cfg *c, struct section *sec)
{
    struct cfg_tls *t = &c->tls[c->ntls++];
    char err[512];
    bool bad_key;

    *t = ((struct raw_tls *)sec->obj)->t;
    memset(sec->obj, 0, sizeof(struct raw_tls));
    t->line = sec->line;
    t->cert_line = key_line_of(sec, "cert");
    t->key_line = key_line_of(sec, "key");
    /* [tls] is the default certificate unless it says otherwise; [tls NAME] only if it
     * says so. */
    if (!*t->name && key_line_of(sec, "default") == sec->line)
        t->is_default = true;
    if (!t->certs.n) {
        perr(ps, sec->line, sec, "cert", "missing (every [tls] section needs cert and key)");
        return;
    }
    if (t->keys.n != t->certs.n) {
        perr(ps, t->key_line, sec, "key",
             "%zu key file(s) for %zu cert file(s): give one key "
             "per certificate, in the same order",
             t->keys.n, t->certs.n);
        return;
    }
    if (!tls_ctx_build(t, c, err, sizeof(err), &bad_key))
        perr(ps, bad_key ? t->key_line : t->cert_line, sec, bad_key ? "key" : "cert", "%s", err);
    else if (t->is_default && c->tls_default)
        perr(ps, key_line_of(sec, "default"), sec, "default",
             "a default certificate is already set on line %d", c->tls_default->line);
    else if (t->is_default)
        c->tls_default = t;
}

/* The ALPN protocols mux443 may select when it terminates TLS: only what some route
 * behind it takes (no h2: mux443 relays HTTP/1.1 to its backends). */
static void build_alpn(struct cfg *c)
{
    unsigned classes = 0;
    for (size_t i = 0; i < c->nroutes; i++)
        classes |= c->routes[i].classes ? c->routes[i].classes : ~0u;
    const char *protos[] = {(classes & ((1u << CLASS_HTTP) | (1u << CLASS_WEBSOCKET))) ? "http/1.1"
                                                                                       : NULL,
                            (classes & (1u << CLASS_STUN)) ? "stun.turn" : NULL,
                            (classes & (1u << CLASS_STUN)) ? "stun.nat-discovery" : NULL};
    for (size_t i = 0; i < sizeof(protos) / sizeof(protos[0]); i++) {
        if (!protos[i])
            continue;
        size_t n = strlen(protos[i]);
        c->alpn[c->alpn_len++] = (uint8_t)n;
        memcpy(c->alpn + c->alpn_len, protos[i], n);
        c->alpn_len += (unsigned)n;
    }
}

/* [mux443] keys that need more than a range check: the account to switch to, the admin
 * address. */
static void build_main(struct parse *ps, struct cfg *c)
{
    struct raw_main *m = ps->main;
    const struct section *sec = NULL;
    for (size_t i = 0; i < ps->nsecs; i++)
        if (ps->secs[i]->kind == SEC_MAIN)
            sec = ps->secs[i];

    if (m->user) {
        if (!getpwnam(m->user))
            perr(ps, key_line_of(sec, "user"), sec, "user", "no such user (got '%s')", m->user);
        c->user = xstrdup(m->user);
    }
    if (m->group) {
        if (!getgrnam(m->group))
            perr(ps, key_line_of(sec, "group"), sec, "group", "no such group (got '%s')", m->group);
        c->group = xstrdup(m->group);
    }
    if (m->admin.n > 1)
        perr(ps, key_line_of(sec, "admin"), sec, "admin", "one address only (got %zu)", m->admin.n);
    c->admin = m->admin;
    m->admin = (struct cfg_addrlist){0};
}

static struct cfg *build(struct parse *ps)
{
    struct cfg *c = xcalloc(1, sizeof(*c));
    struct raw_main *m = ps->main;
    size_t nl = 0, nb = 0, nr = 0, nt = 0;

    atomic_init(&c->refs, 1);
    c->path = xstrdup(ps->file);
    c->workers = m->workers;
    c->log_level = m->log_level;
    c->peek_timeout = m->peek_timeout;
    c->preread_max = m->preread_max;
    c->connect_timeout = m->connect_timeout;
    c->idle_timeout = m->idle_timeout;
    c->drain_timeout = m->drain_timeout;
    c->max_connections = m->max_connections;
    c->max_per_client = m->max_per_client;
    c->ufrag_ttl = m->ufrag_ttl;
    c->ufrag_grace = m->ufrag_grace;
    c->fanout_timeout = m->fanout_timeout;
    c->fanout_max = m->fanout_max;
    build_main(ps, c);

    for (size_t i = 0; i < ps->nsecs; i++) {
        nl += ps->secs[i]->kind == SEC_LISTENER;
        nb += ps->secs[i]->kind == SEC_BACKEND;
        nr += ps->secs[i]->kind == SEC_RULE;
        nt += ps->secs[i]->kind == SEC_TLS;
    }
    nl += m->listen.n > 0;
    c->listeners = xcalloc(nl, sizeof(*c->listeners));
    c->backends = xcalloc(nb, sizeof(*c->backends));
    c->routes = xcalloc(nr + CLASS_COUNT, sizeof(*c->routes));
    c->tls = xcalloc(nt, sizeof(*c->tls));

    if (m->listen.n) {
        struct cfg_listener *l = &c->listeners[c->nlisteners++];
        l->name = xstrdup("main");
        l->line = m->listen_line;
        l->addrs = m->listen;
        l->peek_timeout = c->peek_timeout;
        l->preread_max = c->preread_max;
        m->listen = (struct cfg_addrlist){0};
    }
    /* Backends first: routes refer to them. Objects are moved into the snapshot. */
    for (size_t i = 0; i < ps->nsecs; i++) {
        struct section *sec = ps->secs[i];
        if (sec->kind == SEC_BACKEND) {
            struct cfg_backend *b = &c->backends[c->nbackends++];
            memcpy(b, &((struct raw_backend *)sec->obj)->b, sizeof(*b));
            b->line = sec->line;
            if (b->connect_timeout < 0)
                b->connect_timeout = c->connect_timeout;
            if (!b->servers.n && key_line_of(sec, "server") == sec->line)
                perr(ps, sec->line, sec, "server", "missing (every backend needs a server)");
            /* Counters and health state persist across reloads, keyed by name. */
            b->mx = xcalloc(b->servers.n, sizeof(*b->mx));
            for (size_t k = 0; k < b->servers.n; k++)
                b->mx[k] = mx_server_get(b->name, b->servers.v[k].text);
            if (b->health == HEALTH_HTTP && b->health_path[0] != '/')
                perr(ps, key_line_of(sec, "health_path"), sec, "health_path",
                     "must start with '/' (got '%s')", b->health_path);
        } else if (sec->kind == SEC_LISTENER) {
            struct cfg_listener *l = &c->listeners[c->nlisteners++];
            memcpy(l, &((struct raw_listener *)sec->obj)->l, sizeof(*l));
            l->line = sec->line;
            if (l->peek_timeout < 0)
                l->peek_timeout = c->peek_timeout;
            if (!l->preread_max)
                l->preread_max = c->preread_max;
            if (!l->addrs.n && key_line_of(sec, "listen") == sec->line)
                perr(ps, sec->line, sec, "listen", "missing (every listener needs an address)");
        }
    }
    if (m->listen.n == 0 && c->nlisteners == 0)
        perr(ps, 1, NULL, NULL, "no listener: set listen = under [mux443] or add [listener NAME]");
    for (size_t i = 0; i < c->nlisteners; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(c->listeners[i].name, c->listeners[j].name) == 0)
                perr(ps, c->listeners[i].line, NULL, NULL,
                     "duplicate listener name '%s' (listen = under [mux443] is named main)",
                     c->listeners[i].name);
    /* The same address in two listeners (or twice in one) cannot be bound. */
    for (size_t i = 0; i < c->nlisteners; i++)
        for (size_t a = 0; a < c->listeners[i].addrs.n; a++)
            for (size_t j = i; j < c->nlisteners; j++)
                for (size_t b = (j == i ? a + 1 : 0); b < c->listeners[j].addrs.n; b++)
                    if (strcmp(c->listeners[i].addrs.v[a].text, c->listeners[j].addrs.v[b].text) ==
                        0)
                        perr(ps, c->listeners[j].line, NULL, "listen",
                             "address %s is already used by listener %s",
                             c->listeners[j].addrs.v[b].text, c->listeners[i].name);

    for (size_t i = 0; i < ps->nsecs; i++) {
        struct section *sec = ps->secs[i];
        if (sec->kind != SEC_RULE)
            continue;
        struct raw_rule *rr = sec->obj;
        struct cfg_route *r = &c->routes[c->nroutes++];
        *r = rr->r;
        memset(&rr->r, 0, sizeof(rr->r));
        r->line = sec->line;
        r->mx = mx_route_get(r->name);
        if (r->idle_timeout < 0)
            r->idle_timeout = c->idle_timeout;
        check_rule(ps, sec, r);
        if (!rr->backend.name)
            perr(ps, sec->line, sec, "backend", "missing (every route needs a backend)");
        else
            r->backend = resolve_backend(ps, c, sec, "backend", &rr->backend);
    }
    const struct section *mapsec = NULL;
    for (size_t i = 0; i < ps->nsecs; i++)
        if (ps->secs[i]->kind == SEC_ROUTEMAP)
            mapsec = ps->secs[i];
    for (int cls = CLASS_TLS; cls < CLASS_COUNT; cls++) {
        struct ref *ref = &ps->routemap->cls[cls];
        if (!ref->name)
            continue;
        struct cfg_route *r = &c->routes[c->nroutes++];
        /* Named after the [route] key: "http", ..., "default", "on_timeout". */
        r->map = true;
        c->route_map[cls] = r;
        r->name = xstrdup(cls == CLASS_UNKNOWN   ? "default"
                          : cls == CLASS_TIMEOUT ? "on_timeout"
                                                 : probe_class_name((enum mux_class)cls));
        r->line = ref->line;
        r->classes = 1u << cls;
        r->idle_timeout = c->idle_timeout;
        r->backend = resolve_backend(ps, c, mapsec, r->name, ref);
        r->mx = mx_route_get(r->name);
    }
    build_alpn(c);
    for (size_t i = 0; i < ps->nsecs; i++)
        if (ps->secs[i]->kind == SEC_TLS)
            build_tls(ps, c, ps->secs[i]);
    if (c->nroutes == 0)
        perr(ps, 1, NULL, NULL, "no routes: add a [route] section, or every connection is closed");
    for (size_t i = 0; i < c->nbackends; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(c->backends[i].name, c->backends[j].name) == 0)
                perr(ps, c->backends[i].line, NULL, NULL, "duplicate backend name '%s'",
                     c->backends[i].name);
    return c;
}

static void free_strlist(struct cfg_strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
}

static void free_route(struct cfg_route *r)
{
    free(r->name);
    free_strlist(&r->sni);
    free_strlist(&r->alpn);
    free_strlist(&r->host);
    free(r->path);
    free(r->ufrag);
}

static void free_tls(struct cfg_tls *t)
{
    tls_ctx_free(t);
    free(t->name);
    free_strlist(&t->certs);
    free_strlist(&t->keys);
    free_strlist(&t->names);
}

static void cfg_free(struct cfg *c)
{
    for (size_t i = 0; i < c->nlisteners; i++) {
        free(c->listeners[i].name);
        free(c->listeners[i].addrs.v);
    }
    for (size_t i = 0; i < c->nbackends; i++) {
        struct cfg_backend *b = &c->backends[i];
        for (size_t k = 0; b->ufrag_prefix && k < b->servers.n; k++)
            free(b->ufrag_prefix[k]);
        free(b->ufrag_prefix);
        free(b->health_path);
        free(b->name);
        free(b->servers.v);
        free(b->mx);
    }
    free(c->user);
    free(c->group);
    free(c->admin.v);
    for (size_t i = 0; i < c->nroutes; i++)
        free_route(&c->routes[i]);
    for (size_t i = 0; i < c->ntls; i++)
        free_tls(&c->tls[i]);
    free(c->tls);
    free(c->listeners);
    free(c->backends);
    free(c->routes);
    free(c->path);
    free(c);
}

/* Frees the parse state; section objects already moved into the snapshot are empty. */
static void parse_free(struct parse *ps)
{
    for (size_t i = 0; i < ps->nsecs; i++) {
        struct section *sec = ps->secs[i];
        if (sec->kind == SEC_RULE) {
            struct raw_rule *rr = sec->obj;
            free_route(&rr->r);
            free(rr->backend.name);
            free(rr);
        } else if (sec->kind == SEC_TLS) {
            if (sec->obj)
                free_tls(&((struct raw_tls *)sec->obj)->t);
            free(sec->obj);
        } else if (sec->kind == SEC_LISTENER || sec->kind == SEC_BACKEND) {
            free(sec->obj);
        }
        free(sec->title);
        free(sec);
    }
    for (int i = 0; i < CLASS_COUNT; i++)
        free(ps->routemap->cls[i].name);
    free(ps->main->listen.v);
    free(ps->main->admin.v);
    free(ps->main->user);
    free(ps->main->group);
    free(ps->main);
    free(ps->routemap);
    free(ps->secs);
    for (size_t i = 0; i < ps->nerrs; i++)
        free(ps->errs[i].msg);
    free(ps->errs);
}

static int err_cmp(const void *a, const void *b)
{
    const struct err *x = a, *y = b;
    return x->line != y->line ? (x->line > y->line) - (x->line < y->line)
                              : (x->msg > y->msg) - (x->msg < y->msg);
}

/* Applies a key's default text to obj, as if it had been written in the file. */
static void apply_defaults(struct parse *ps, enum sec_kind kind, void *obj)
{
    struct section tmp = {.kind = kind, .title = (char *)"defaults", .obj = obj};
    for (size_t i = 0; i < NKEYS; i++)
        if (keys[i].sec == kind && keys[i].dflt)
            set_value(ps, &tmp, &keys[i], keys[i].dflt, 0);
}

struct cfg *cfg_load_stream(FILE *in, const char *name, FILE *errs)
{
    struct parse ps = {.file = name, .in = in};
    struct cfg *c = NULL;

    ps.main = xcalloc(1, sizeof(*ps.main));
    ps.routemap = xcalloc(1, sizeof(*ps.routemap));
    apply_defaults(&ps, SEC_MAIN, ps.main);

    int rc = ini_parse_stream(ini_reader_fn, &ps, ini_handler_fn, &ps);
    if (rc < 0)
        perr(&ps, ps.line, NULL, NULL, "cannot parse (inih error %d)", rc);
    /* Defaults of sections that were opened: only keys not set in the file. */
    for (size_t i = 0; i < ps.nsecs; i++) {
        struct section *sec = ps.secs[i];
        if (sec->kind != SEC_BACKEND && sec->kind != SEC_LISTENER)
            continue;
        for (size_t k = 0; k < NKEYS; k++)
            if (keys[k].sec == sec->kind && keys[k].dflt && !sec->key_line[k])
                set_value(&ps, sec, &keys[k], keys[k].dflt, 0);
    }
    c = build(&ps);
    if (ps.nerrs) {
        qsort(ps.errs, ps.nerrs, sizeof(*ps.errs), err_cmp);
        for (size_t i = 0; errs && i < ps.nerrs; i++)
            fprintf(errs, "%s\n", ps.errs[i].msg);
        cfg_free(c);
        c = NULL;
    }
    parse_free(&ps);
    return c;
}

struct cfg *cfg_load(const char *path, FILE *errs)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errs)
            fprintf(errs, "%s: cannot open: %s\n", path, strerror(errno));
        return NULL;
    }
    struct cfg *c = cfg_load_stream(f, path, errs);
    fclose(f);
    return c;
}

struct cfg *cfg_ref(struct cfg *c)
{
    atomic_fetch_add(&c->refs, 1);
    return c;
}

void cfg_unref(struct cfg *c)
{
    if (c && atomic_fetch_sub(&c->refs, 1) == 1)
        cfg_free(c);
}

const struct cfg_backend *cfg_backend_find(const struct cfg *c, const char *name)
{
    for (size_t i = 0; i < c->nbackends; i++)
        if (strcmp(c->backends[i].name, name) == 0)
            return &c->backends[i];
    return NULL;
}

const struct cfg_listener *cfg_listener_find(const struct cfg *c, const char *name)
{
    for (size_t i = 0; i < c->nlisteners; i++)
        if (strcmp(c->listeners[i].name, name) == 0)
            return &c->listeners[i];
    return NULL;
}

/* Writes s for troff: a leading '.' or '\'' would start a request, '\\' an escape, '-'
 * should be a real minus in option-like words. */
static void man_text(FILE *out, const char *s)
{
    if (*s == '.' || *s == '\'')
        fputs("\\&", out);
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\e", out);
        else if (*s == '-')
            fputs("\\-", out);
        else
            fputc(*s, out);
    }
}

void cfg_print_reference(FILE *out, bool man)
{
    char ebuf[128];

    if (man)
        fputs(".TH MUX443.INI 5 \"\" \"mux443 " MUX443_VERSION "\" \"File Formats\"\n"
              ".SH NAME\nmux443.ini \\- configuration of mux443\n"
              ".SH DESCRIPTION\n"
              "One INI file configures mux443. Sections and keys are listed below; this page is "
              "generated from the table the parser uses. Durations take a suffix ms, s, m or "
              "h (seconds without one); sizes take k or m. Lists are separated by commas; "
              "list keys may repeat. Check a file with \\fBmux443 \\-t \\-c\\fR "
              "\\fIFILE\\fR: every error is printed as FILE:LINE: [section] key: reason.\n",
              out);
    for (int s = SEC_MAIN; s < SEC_UNKNOWN; s++) {
        fprintf(out, man ? ".SH [%s]\n" : "[%s]\n", sec_names[s]);
        for (size_t i = 0; i < NKEYS; i++) {
            const struct key_def *k = &keys[i];
            if ((int)k->sec != s)
                continue;
            if (!man) {
                fprintf(out, "  %-16s %s; default: %s\n  %-16s %s\n", k->name,
                        type_expect(k, ebuf, sizeof(ebuf)), k->dflt ? k->dflt : "none", "",
                        k->help);
                continue;
            }
            fputs(".TP\n\\fB", out);
            man_text(out, k->name);
            fputs("\\fR = ", out);
            man_text(out, type_expect(k, ebuf, sizeof(ebuf)));
            fputs(" (default: ", out);
            man_text(out, k->dflt ? k->dflt : "none");
            fputs(")\n", out);
            man_text(out, k->help);
            fputc('\n', out);
        }
    }
    if (man)
        fputs(".SH SEE ALSO\n.BR mux443 (8)\n", out);
}

int cfg_fuzz_load(const uint8_t *data, size_t size)
{
    FILE *f = fmemopen((void *)data, size, "r");
    if (!f)
        return 0;
    resolve_names = false;
    cfg_unref(cfg_load_stream(f, "fuzz.ini", NULL));
    fclose(f);
    return 0;
}
