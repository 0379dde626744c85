/* Configuration loader: inih does the INI syntax, our reader counts lines and reports
 * syntax errors; sections are collected, validated in one pass (every error reported as
 * FILE:LINE: [section] key: reason) and moved into an immutable snapshot. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>

#include "mux443/conf/keys.h"
#include "mux443/conf/load.h"
#include "mux443/lib/classes.h"
#include "mux443/lib/probe.h"

/* ---- sections and the inih callbacks --------------------------------------------- */

static void *section_object(struct parse *ps, enum sec_kind kind, const char *name)
{
    switch (kind) {
    case SEC_MAIN:
        return ps->main;
    case SEC_ROUTEMAP:
        return ps->routemap;
    case SEC_LISTENER: {
        struct raw_listener *o = cfg_xcalloc(1, sizeof(*o));
        o->l.name = cfg_xstrdup(name);
        o->l.peek_timeout = -1;
        return o;
    }
    case SEC_BACKEND: {
        struct raw_backend *o = cfg_xcalloc(1, sizeof(*o));
        o->b.name = cfg_xstrdup(name);
        o->b.connect_timeout = -1;
        return o;
    }
    case SEC_RULE: {
        struct raw_rule *o = cfg_xcalloc(1, sizeof(*o));
        o->r.name = cfg_xstrdup(name);
        o->r.idle_timeout = -1;
        return o;
    }
    case SEC_TLS: {
        struct raw_tls *o = cfg_xcalloc(1, sizeof(*o));
        o->t.name = cfg_xstrdup(name ? name : "");
        return o;
    }
    default:
        return NULL;
    }
}

/* Registers a section (of unknown kind so far) as the current one. */
static struct section *section_new(struct parse *ps, const char *title)
{
    struct section *sec = cfg_xcalloc(1, sizeof(*sec));
    sec->title = cfg_xstrdup(title);
    sec->line = ps->line;
    sec->kind = SEC_UNKNOWN;
    ps->secs = cfg_xrealloc(ps->secs, ps->nsecs + 1, sizeof(*ps->secs));
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
    name = name ? cfg_trim(name) : NULL;

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
            cfg_perr(ps, ps->line, sec, NULL, "%s",
                     name ? "this section takes no name"
                          : "this section needs a name, e.g. [backend web]");
            return;
        }
        break;
    }
    if (sec->kind == SEC_UNKNOWN) {
        cfg_perr(
            ps, ps->line, sec, NULL,
            "unknown section (expected mux443, listener NAME, backend NAME, route, route NAME, "
            "tls, tls NAME)");
        return;
    }
    if (name && *name && !name_valid(name)) {
        cfg_perr(ps, ps->line, sec, NULL, "bad name '%s' (expected 1 to %d letters, digits, _ . -)",
                 name, NAME_MAX_LEN);
        sec->kind = SEC_UNKNOWN;
        return;
    }
    /* Two sections with the same title: the second is an error, and its keys are checked
     * but dropped. The singletons [mux443] and [route] may not repeat either. */
    for (size_t i = 0; i + 1 < ps->nsecs; i++) {
        if (ps->secs[i]->kind != SEC_UNKNOWN && ps->secs[i]->kind == sec->kind &&
            strcmp(ps->secs[i]->title, sec->title) == 0) {
            cfg_perr(ps, ps->line, sec, NULL, "duplicate section (first on line %d)",
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
        cfg_perr(ps, line, NULL, name, "key outside any section (put it under [mux443])");
        return 1;
    }
    if (sec->kind == SEC_UNKNOWN)
        return 1; /* the section itself was reported */
    for (size_t i = 0; i < CFG_NKEYS; i++) {
        const struct key_def *k = &cfg_keys[i];
        if (k->sec != sec->kind || strcmp(k->name, name) != 0)
            continue;
        bool repeatable = k->type == K_ADDRS || k->type == K_SERVERS || k->type == K_STRLIST ||
                          k->type == K_PATHS;
        if (sec->key_line[i] && !repeatable) {
            cfg_perr(ps, line, sec, name, "duplicate key (first set on line %d)", sec->key_line[i]);
            return 1;
        }
        sec->key_line[i] = line;
        cfg_set_value(ps, sec, k, value, line);
        return 1;
    }
    char known[512] = "";
    for (size_t i = 0; i < CFG_NKEYS; i++) {
        if (cfg_keys[i].sec != sec->kind)
            continue;
        if (*known)
            strncat(known, ", ", sizeof(known) - strlen(known) - 1);
        strncat(known, cfg_keys[i].name, sizeof(known) - strlen(known) - 1);
    }
    cfg_perr(ps, line, sec, name, "unknown key (expected one of: %s)", known);
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
            cfg_perr(ps, ps->line, NULL, NULL,
                     "line longer than %d bytes (repeat the key to split a list)", num - 3);
        else
            cfg_perr(ps, ps->line, NULL, NULL, "line contains a NUL byte");
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
            cfg_perr(ps, ps->line, NULL, NULL,
                     "bad section header (expected [name] alone on the line)");
            /* Keys up to the next header belong to no section: ignore them quietly. */
            section_new(ps, "?");
            /* Keep inih from opening a section: hand it a comment instead. */
            str[0] = ';';
        } else {
            char title[INI_MAX_LINE]; /* a line is at most that long: so is its title */
            size_t tl = (size_t)(rb - s - 1);
            memcpy(title, s + 1, tl);
            title[tl] = '\0';
            section_begin(ps, cfg_trim(title));
        }
    } else if (*s && *s != ';' && *s != '#' && !strpbrk(s, "=:")) {
        cfg_perr(ps, ps->line, ps->cur, NULL, "expected 'key = value' (got '%.40s')", s);
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
        cfg_perr(ps, r->line, sec, key,
                 "unknown backend (got '%s', expected the name of a "
                 "[backend NAME] section)",
                 r->name);
    return b;
}

static void check_rule(struct parse *ps, const struct section *sec, struct cfg_route *r)
{
    const unsigned web = (1u << CLASS_HTTP) | (1u << CLASS_WEBSOCKET);
    const unsigned ice = 1u << CLASS_ICE_TCP;
    const unsigned hello = r->tls == TLSM_PASSTHROUGH || r->tls == TLSM_TERMINATE;

    /* passthrough / terminate decide what happens to a ClientHello: they take the
     * ClientHello's criteria only. */
    if (hello && r->classes && r->classes != (1u << CLASS_TLS))
        cfg_perr(ps, cfg_key_line(sec, "class"), sec, "class",
                 "tls = %s decides on the ClientHello: leave class out (or class = tls) and "
                 "route what is inside with rules of that class and tls = yes",
                 r->tls == TLSM_TERMINATE ? "terminate" : "passthrough");
    if (hello)
        r->classes = 1u << CLASS_TLS;

    /* sni/alpn alone mean a ClientHello (passthrough); with other classes they match the
     * names the client sent in the TLS that mux443 terminated. */
    if ((r->sni.n || r->alpn.n) && !r->classes)
        r->classes = 1u << CLASS_TLS;
    if ((r->sni.n || r->alpn.n) && r->tls == TLSM_NO)
        cfg_perr(ps, cfg_key_line(sec, r->sni.n ? "sni" : "alpn"), sec, r->sni.n ? "sni" : "alpn",
                 "never matches: tls = no excludes every client that sends SNI or ALPN");
    struct {
        bool used;
        unsigned allowed;
        const char *key, *what;
    } c[] = {{r->host.n && !r->path, web | (1u << CLASS_SIP), "host", "http, websocket, sip"},
             {r->path != NULL, web, "path", "http, websocket"},
             {r->ufrag != NULL, ice, "ufrag", "ice-tcp"},
             {r->ws_protocol.n > 0, 1u << CLASS_WEBSOCKET, "ws_protocol", "websocket"},
             {r->mqtt_client != NULL, 1u << CLASS_MQTT, "mqtt_client", "mqtt"}};
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        if (!c[i].used)
            continue;
        if (!r->classes) /* criteria imply the class; host alone keeps meaning the web */
            r->classes = c[i].allowed & (i == 0 ? web : ~0u);
        else if (r->classes & ~c[i].allowed)
            cfg_perr(ps, cfg_key_line(sec, c[i].key), sec, c[i].key, "only applies to class %s",
                     c[i].what);
    }
    if (r->path && r->path[0] != '/')
        cfg_perr(ps, cfg_key_line(sec, "path"), sec, "path", "must start with '/' (got '%s')",
                 r->path);
}

/* Loads the certificates of a [tls] section into the snapshot. */
static void build_tls(struct parse *ps, struct cfg *c, struct section *sec)
{
    struct cfg_tls *t = &c->tls[c->ntls++];
    char err[512];
    const char *bad_key;

    *t = ((struct raw_tls *)sec->obj)->t;
    memset(sec->obj, 0, sizeof(struct raw_tls));
    t->line = sec->line;
    t->cert_line = cfg_key_line(sec, "cert");
    t->key_line = cfg_key_line(sec, "key");
    /* [tls] is the default certificate unless it says otherwise; [tls NAME] only if it
     * says so. */
    if (!*t->name && cfg_key_line(sec, "default") == sec->line)
        t->is_default = true;
    if (!t->certs.n) {
        cfg_perr(ps, sec->line, sec, "cert", "missing (every [tls] section needs cert and key)");
        return;
    }
    if (t->keys.n != t->certs.n) {
        cfg_perr(ps, t->key_line, sec, "key",
                 "%zu key file(s) for %zu cert file(s): give one key "
                 "per certificate, in the same order",
                 t->keys.n, t->certs.n);
        return;
    }
    bad_key = "cert";
    if (ps->opts->check_tls && !ps->opts->check_tls(t, err, sizeof(err), &bad_key))
        cfg_perr(ps, cfg_key_line(sec, bad_key), sec, bad_key, "%s", err);
    else if (t->is_default && c->tls_default)
        cfg_perr(ps, cfg_key_line(sec, "default"), sec, "default",
                 "a default certificate is already set on line %d", c->tls_default->line);
    else if (t->is_default)
        c->tls_default = t;
}

/* The ALPN protocols mux443 may select when it terminates TLS: only what some route
 * behind it takes (no h2: mux443 relays HTTP/1.1 to its backends). */
static bool alpn_has(const struct cfg *c, const char *proto, size_t n)
{
    for (size_t pos = 0; pos < c->alpn_len; pos += 1 + c->alpn[pos])
        if (c->alpn[pos] == n && memcmp(c->alpn + pos + 1, proto, n) == 0)
            return true;
    return false;
}

static void add_alpn(struct cfg *c, const char *proto)
{
    size_t n = strlen(proto);

    if (!n || n > 255 || c->alpn_len + 1 + n > sizeof(c->alpn) || alpn_has(c, proto, n))
        return;
    c->alpn[c->alpn_len++] = (uint8_t)n;
    memcpy(c->alpn + c->alpn_len, proto, n);
    c->alpn_len += (unsigned)n;
}

/* MQTT's ALPN names are offered only to a configuration that routes MQTT by name (a
 * class-less rule does not make mux443 claim to be a broker); the ALPN values of
 * tls = terminate rules are offered too, so that a client insisting on its protocol's
 * name (AWS IoT devices send x-amzn-mqtt-ca) completes the handshake. */
static void build_alpn(struct cfg *c)
{
    unsigned classes = 0, named = 0;
    for (size_t i = 0; i < c->nroutes; i++) {
        classes |= c->routes[i].classes ? c->routes[i].classes : ~0u;
        named |= c->routes[i].classes;
    }
    const char *protos[] = {(classes & ((1u << CLASS_HTTP) | (1u << CLASS_WEBSOCKET))) ? "http/1.1"
                                                                                       : NULL,
                            (classes & (1u << CLASS_STUN)) ? "stun.turn" : NULL,
                            (classes & (1u << CLASS_STUN)) ? "stun.nat-discovery" : NULL,
                            (named & (1u << CLASS_MQTT)) ? "mqtt" : NULL,
                            (named & (1u << CLASS_MQTT)) ? "x-amzn-mqtt-ca" : NULL};
    for (size_t i = 0; i < sizeof(protos) / sizeof(protos[0]); i++)
        if (protos[i])
            add_alpn(c, protos[i]);
    for (size_t i = 0; i < c->nroutes; i++)
        for (size_t k = 0; c->routes[i].tls == TLSM_TERMINATE && k < c->routes[i].alpn.n; k++)
            add_alpn(c, c->routes[i].alpn.v[k]);
}

static bool same_names(const struct cfg_strlist *a, const struct cfg_strlist *b, size_t *ai)
{
    for (size_t i = 0; i < a->n; i++)
        for (size_t k = 0; k < b->n; k++)
            if (strcasecmp(a->v[i], b->v[k]) == 0) {
                *ai = i;
                return true;
            }
    return false;
}

/* Rule a applies on every listener rule b applies on (none listed: all of them). */
static bool listeners_cover(const struct cfg_route *a, const struct cfg_route *b)
{
    if (!a->listeners.n)
        return true;
    if (!b->listeners.n)
        return false;
    for (size_t i = 0; i < b->listeners.n; i++) {
        bool found = false;
        for (size_t k = 0; k < a->listeners.n && !found; k++)
            found = strcmp(a->listeners.v[k], b->listeners.v[i]) == 0;
        if (!found)
            return false;
    }
    return true;
}

/* A rule that an earlier one always wins over: the earlier has no criteria but its
 * classes and listeners (and tls = any, or the same tls), and covers every class and
 * listener of the later. */
static bool shadows(const struct cfg_route *a, const struct cfg_route *b)
{
    if (a->sni.n || a->alpn.n || a->host.n || a->path || a->ufrag || a->ws_protocol.n ||
        a->mqtt_client || !listeners_cover(a, b))
        return false;
    if (a->tls != TLSM_ANY && a->tls != b->tls)
        return false;
    unsigned ac = a->classes ? a->classes : ~0u, bc = b->classes ? b->classes : ~0u;
    return (bc & ~ac) == 0;
}

/* What -t explains about rules that contradict each other: a passthrough and a terminate
 * decision for the same server name, a rule an earlier one makes unreachable, a
 * terminate rule without any certificate. */
static void check_conflicts(struct parse *ps, const struct cfg *c)
{
    for (size_t j = 0; j < c->nroutes; j++) {
        const struct cfg_route *b = &c->routes[j];
        if (b->map)
            continue;
        if (b->tls == TLSM_TERMINATE && !c->ntls)
            cfg_perr(ps, b->line, NULL, NULL,
                     "[route %s] tls = terminate: no [tls] section holds a certificate to "
                     "terminate with",
                     b->name);
        for (size_t i = 0; i < j; i++) {
            const struct cfg_route *a = &c->routes[i];
            size_t k;
            bool a_hello = a->classes == (1u << CLASS_TLS) && a->tls != TLSM_NO;
            bool b_hello = b->classes == (1u << CLASS_TLS) && b->tls != TLSM_NO;
            if (a_hello && b_hello && !a->alpn.n && listeners_cover(a, b) &&
                (a->tls == TLSM_TERMINATE) != (b->tls == TLSM_TERMINATE) &&
                same_names(&b->sni, &a->sni, &k)) {
                cfg_perr(ps, b->line, NULL, NULL,
                         "[route %s] conflicts with [route %s] (line %d) for sni %s: that rule "
                         "comes first and %s it, so this one (%s) never sees it",
                         b->name, a->name, a->line, b->sni.v[k],
                         a->tls == TLSM_TERMINATE ? "terminates" : "passes through",
                         b->tls == TLSM_TERMINATE ? "terminate" : "passthrough");
                break;
            }
            if (shadows(a, b)) {
                cfg_perr(ps, b->line, NULL, NULL,
                         "[route %s] is unreachable: [route %s] (line %d) comes first and "
                         "matches everything it would",
                         b->name, a->name, a->line);
                break;
            }
        }
    }
}

/* The admin bearer token: the file's first line, 16 to 4096 printable characters without
 * spaces (trailing newline and spaces ignored). NULL with *why when unusable. */
static char *read_token(const char *path, const char **why)
{
    static _Thread_local char msg[160];
    char buf[4098];
    FILE *f = fopen(path, "re");
    if (!f) {
        snprintf(msg, sizeof(msg), "cannot read the token file: %s", strerror(errno));
        *why = msg;
        return NULL;
    }
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    n = strlen(buf);
    while (n && (buf[n - 1] == ' ' || buf[n - 1] == '\t'))
        buf[--n] = '\0';
    *why = "the token must be 16 to 4096 printable characters without spaces on the first line";
    if (n < 16 || n > 4096)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (buf[i] <= ' ' || buf[i] > '~')
            return NULL;
    return cfg_xstrdup(buf);
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
            cfg_perr(ps, cfg_key_line(sec, "user"), sec, "user", "no such user (got '%s')",
                     m->user);
        c->user = cfg_xstrdup(m->user);
    }
    if (m->group) {
        if (!getgrnam(m->group))
            cfg_perr(ps, cfg_key_line(sec, "group"), sec, "group", "no such group (got '%s')",
                     m->group);
        c->group = cfg_xstrdup(m->group);
    }
    if (m->admin.n > 1)
        cfg_perr(ps, cfg_key_line(sec, "admin"), sec, "admin", "one address only (got %zu)",
                 m->admin.n);
    c->admin = m->admin;
    m->admin = (struct cfg_addrlist){0};
    c->admin_hosts = m->admin_hosts;
    m->admin_hosts = (struct cfg_strlist){0};
    c->admin_origins = m->admin_origins;
    m->admin_origins = (struct cfg_strlist){0};
    for (size_t i = 0; i < m->krelay_devices.n; i++) {
        const char *d = m->krelay_devices.v[i];

        /* A network device name: IFNAMSIZ - 1 bytes, no '/' (nor white space: the list). */
        if (strlen(d) > 15 || strchr(d, '/') || (strcmp(d, "auto") == 0 && m->krelay_devices.n > 1))
            cfg_perr(ps, cfg_key_line(sec, "kernel_relay_devices"), sec, "kernel_relay_devices",
                     "not a device name (got '%s', expected auto, or names of at most 15 "
                     "characters without '/')",
                     d);
    }
    c->krelay_devices = m->krelay_devices;
    m->krelay_devices = (struct cfg_strlist){0};
    if (m->admin_token_file) {
        const char *why = NULL;
        c->admin_token = read_token(m->admin_token_file, &why);
        if (!c->admin_token)
            cfg_perr(ps, cfg_key_line(sec, "admin_token_file"), sec, "admin_token_file",
                     "%s (got '%s')", why, m->admin_token_file);
    }
}

static struct cfg *build(struct parse *ps)
{
    struct cfg *c = cfg_xcalloc(1, sizeof(*c));
    struct raw_main *m = ps->main;
    size_t nl = 0, nb = 0, nr = 0, nt = 0;

    c->path = cfg_xstrdup(ps->file);
    c->workers = m->workers;
    c->log_level = m->log_level;
    c->log_format = m->log_format;
    c->peek_timeout = m->peek_timeout;
    c->preread_max = m->preread_max;
    c->connect_timeout = m->connect_timeout;
    c->idle_timeout = m->idle_timeout;
    c->drain_timeout = m->drain_timeout;
    c->max_connections = m->max_connections;
    c->max_per_client = m->max_per_client;
    c->client_prefix_v4 = m->client_prefix_v4;
    c->client_prefix_v6 = m->client_prefix_v6;
    c->preread_budget = m->preread_budget;
    c->fanout_per_client = m->fanout_per_client;
    c->fanout_rate = m->fanout_rate;
    c->ufrag_ttl = m->ufrag_ttl;
    c->ufrag_grace = m->ufrag_grace;
    c->fanout_timeout = m->fanout_timeout;
    c->fanout_max = m->fanout_max;
    c->udp_idle_timeout = m->udp_idle_timeout;
    c->udp_max_flows = m->udp_max_flows;
    c->udp_per_prefix = m->udp_per_prefix;
    c->udp_new_per_sec = m->udp_new_per_sec;
    c->udp_budget = m->udp_budget;
    c->udp_transparent = m->udp_transparent;
    c->krelay_backlog = m->krelay_backlog;
    c->krelay_budget = m->krelay_budget;
    c->udp_io = m->udp_io;
    build_main(ps, c);

    for (size_t i = 0; i < ps->nsecs; i++) {
        nl += ps->secs[i]->kind == SEC_LISTENER;
        nb += ps->secs[i]->kind == SEC_BACKEND;
        nr += ps->secs[i]->kind == SEC_RULE;
        nt += ps->secs[i]->kind == SEC_TLS;
    }
    nl += m->listen.n > 0;
    c->listeners = cfg_xcalloc(nl, sizeof(*c->listeners));
    c->backends = cfg_xcalloc(nb, sizeof(*c->backends));
    c->routes = cfg_xcalloc(nr + CLASS_COUNT + 1, sizeof(*c->routes));
    c->tls = cfg_xcalloc(nt, sizeof(*c->tls));

    if (m->listen.n) {
        struct cfg_listener *l = &c->listeners[c->nlisteners++];
        l->name = cfg_xstrdup("main");
        l->line = m->listen_line;
        l->addrs = m->listen;
        l->peek_timeout = c->peek_timeout;
        l->preread_max = c->preread_max;
        l->udp = m->udp;
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
            if (!b->servers.n && cfg_key_line(sec, "server") == sec->line)
                cfg_perr(ps, sec->line, sec, "server", "missing (every backend needs a server)");
            if (b->health == HEALTH_HTTP && b->health_path[0] != '/')
                cfg_perr(ps, cfg_key_line(sec, "health_path"), sec, "health_path",
                         "must start with '/' (got '%s')", b->health_path);
        } else if (sec->kind == SEC_LISTENER) {
            struct cfg_listener *l = &c->listeners[c->nlisteners++];
            memcpy(l, &((struct raw_listener *)sec->obj)->l, sizeof(*l));
            l->line = sec->line;
            if (l->peek_timeout < 0)
                l->peek_timeout = c->peek_timeout;
            if (!l->preread_max)
                l->preread_max = c->preread_max;
            if (l->proxy_in && !l->proxy_from.n)
                log_warnx("%s:%d: [%s] proxy_protocol = yes without proxy_from: ANY client can "
                          "send a PROXY header and claim any address (spoofing the per-client "
                          "limits and the backends' logs); set proxy_from = the load "
                          "balancers' addresses",
                          ps->file, cfg_key_line(sec, "proxy_protocol"), sec->title);
            if (!l->addrs.n && cfg_key_line(sec, "listen") == sec->line)
                cfg_perr(ps, sec->line, sec, "listen", "missing (every listener needs an address)");
        }
    }
    if (m->listen.n == 0 && c->nlisteners == 0)
        cfg_perr(ps, 1, NULL, NULL,
                 "no listener: set listen = under [mux443] or add [listener NAME]");
    for (size_t i = 0; i < c->nlisteners; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(c->listeners[i].name, c->listeners[j].name) == 0)
                cfg_perr(ps, c->listeners[i].line, NULL, NULL,
                         "duplicate listener name '%s' (listen = under [mux443] is named main)",
                         c->listeners[i].name);
    /* The same address in two listeners (or twice in one) cannot be bound. */
    for (size_t i = 0; i < c->nlisteners; i++)
        for (size_t a = 0; a < c->listeners[i].addrs.n; a++)
            for (size_t j = i; j < c->nlisteners; j++)
                for (size_t b = (j == i ? a + 1 : 0); b < c->listeners[j].addrs.n; b++)
                    if (strcmp(c->listeners[i].addrs.v[a].text, c->listeners[j].addrs.v[b].text) ==
                        0)
                        cfg_perr(ps, c->listeners[j].line, NULL, "listen",
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
        r->udp_idle_timeout = r->idle_timeout < 0 ? c->udp_idle_timeout : r->idle_timeout;
        if (r->idle_timeout < 0)
            r->idle_timeout = c->idle_timeout;
        check_rule(ps, sec, r);
        for (size_t k = 0; k < r->listeners.n; k++)
            if (!cfg_listener_find(c, r->listeners.v[k]))
                cfg_perr(ps, cfg_key_line(sec, "listener"), sec, "listener",
                         "unknown listener (got '%s', expected main for listen = under "
                         "[mux443], or the name of a [listener NAME] section)",
                         r->listeners.v[k]);
        if (!rr->backend.name)
            cfg_perr(ps, sec->line, sec, "backend", "missing (every route needs a backend)");
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
        r->name = cfg_xstrdup(cls == CLASS_UNKNOWN   ? "default"
                              : cls == CLASS_TIMEOUT ? "on_timeout"
                                                     : class_name((enum mux_class)cls));
        r->line = ref->line;
        r->classes = 1u << cls;
        r->idle_timeout = c->idle_timeout;
        r->udp_idle_timeout = c->udp_idle_timeout;
        r->backend = resolve_backend(ps, c, mapsec, r->name, ref);
    }
    if (ps->routemap->tls_default.name) {
        struct cfg_route *r = &c->routes[c->nroutes++];
        r->map = r->inside_default = true;
        r->name = cfg_xstrdup("tls_default");
        r->line = ps->routemap->tls_default.line;
        r->idle_timeout = c->idle_timeout;
        r->backend = resolve_backend(ps, c, mapsec, r->name, &ps->routemap->tls_default);
        c->tls_inside_default = r;
    }
    build_alpn(c);
    for (size_t i = 0; i < ps->nsecs; i++)
        if (ps->secs[i]->kind == SEC_TLS)
            build_tls(ps, c, ps->secs[i]);
    check_conflicts(ps, c);
    if (c->nroutes == 0)
        cfg_perr(ps, 1, NULL, NULL,
                 "no routes: add a [route] section, or every connection is closed");
    for (size_t i = 0; i < c->nbackends; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(c->backends[i].name, c->backends[j].name) == 0)
                cfg_perr(ps, c->backends[i].line, NULL, NULL, "duplicate backend name '%s'",
                         c->backends[i].name);
    return c;
}

/* Frees the parse state; section objects already moved into the snapshot are empty. */
static void parse_free(struct parse *ps)
{
    for (size_t i = 0; i < ps->nsecs; i++) {
        struct section *sec = ps->secs[i];
        if (sec->kind == SEC_RULE) {
            struct raw_rule *rr = sec->obj;
            cfg_route_clear(&rr->r);
            free(rr->backend.name);
            free(rr);
        } else if (sec->kind == SEC_TLS) {
            if (sec->obj)
                cfg_tls_clear(&((struct raw_tls *)sec->obj)->t);
            free(sec->obj);
        } else if (sec->kind == SEC_LISTENER || sec->kind == SEC_BACKEND) {
            free(sec->obj);
        }
        free(sec->title);
        free(sec);
    }
    for (int i = 0; i < CLASS_COUNT; i++)
        free(ps->routemap->cls[i].name);
    free(ps->routemap->tls_default.name);
    free(ps->main->listen.v);
    free(ps->main->admin.v);
    for (size_t i = 0; i < ps->main->admin_hosts.n; i++)
        free(ps->main->admin_hosts.v[i]);
    free(ps->main->admin_hosts.v);
    for (size_t i = 0; i < ps->main->admin_origins.n; i++)
        free(ps->main->admin_origins.v[i]);
    free(ps->main->admin_origins.v);
    for (size_t i = 0; i < ps->main->krelay_devices.n; i++)
        free(ps->main->krelay_devices.v[i]);
    free(ps->main->krelay_devices.v);
    free(ps->main->admin_token_file);
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
    for (size_t i = 0; i < CFG_NKEYS; i++)
        if (cfg_keys[i].sec == kind && cfg_keys[i].dflt)
            cfg_set_value(ps, &tmp, &cfg_keys[i], cfg_keys[i].dflt, 0);
}

struct cfg *cfg_load_stream(FILE *in, const char *name, FILE *errs, const struct cfg_load_opts *o)
{
    static const struct cfg_load_opts defaults = {.resolve_names = true};
    struct parse ps = {.file = name, .in = in, .opts = o ? o : &defaults};
    struct cfg *c = NULL;

    ps.main = cfg_xcalloc(1, sizeof(*ps.main));
    ps.routemap = cfg_xcalloc(1, sizeof(*ps.routemap));
    apply_defaults(&ps, SEC_MAIN, ps.main);

    int rc = ini_parse_stream(ini_reader_fn, &ps, ini_handler_fn, &ps);
    if (rc < 0)
        cfg_perr(&ps, ps.line, NULL, NULL, "cannot parse (inih error %d)", rc);
    /* Defaults of sections that were opened: only keys not set in the file. */
    for (size_t i = 0; i < ps.nsecs; i++) {
        struct section *sec = ps.secs[i];
        if (sec->kind != SEC_BACKEND && sec->kind != SEC_LISTENER)
            continue;
        for (size_t k = 0; k < CFG_NKEYS; k++)
            if (cfg_keys[k].sec == sec->kind && cfg_keys[k].dflt && !sec->key_line[k])
                cfg_set_value(&ps, sec, &cfg_keys[k], cfg_keys[k].dflt, 0);
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

struct cfg *cfg_load(const char *path, FILE *errs, const struct cfg_load_opts *o)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errs)
            fprintf(errs, "%s: cannot open: %s\n", path, strerror(errno));
        return NULL;
    }
    struct cfg *c = cfg_load_stream(f, path, errs, o);
    fclose(f);
    return c;
}

int cfg_fuzz_load(const uint8_t *data, size_t size)
{
    FILE *f = fmemopen((void *)data, size, "r");
    if (!f)
        return 0;
    static const struct cfg_load_opts opts = {.resolve_names = false};
    cfg_free(cfg_load_stream(f, "fuzz.ini", NULL, &opts));
    fclose(f);
    return 0;
}
