/* The ICE ufrag table (server ufrag -> backend server), its expiry, and its admin API
 * (/ufrags: register, unregister, list; JSON or one "UFRAG HOST:PORT [TTL]" per line). */
#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <http_parser.h>

#include "mux443/runtime/admin.h"
#include "mux443/lib/log.h"
#include "mux443/state/metrics.h"
#include "mux443/state/ufrag.h"

#define BUCKETS 8192

struct entry {
    char *ufrag;
    char backend[64], server[64]; /* by name: survives reloads, checked on use */
    bool learnt;                  /* by fan-out (else registered) */
    unsigned refs;                /* live connections using it */
    double expires;               /* monotonic seconds; meaningful when refs == 0 */
    struct entry *next;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct entry *table[BUCKETS];
static size_t nentries;
static double ttl = 600, grace = 30;

static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

bool ufrag_charset(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '+' && s[i] != '/')
            return false;
    return len > 0;
}

bool ufrag_valid(const char *s, size_t len)
{
    return len >= 4 && len <= 256 && ufrag_charset(s, len);
}

static struct entry **slot(const char *u)
{
    uint32_t h = 2166136261u;
    for (const char *p = u; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    struct entry **pp = &table[h % BUCKETS];
    while (*pp && strcmp((*pp)->ufrag, u) != 0)
        pp = &(*pp)->next;
    return pp;
}

static void unlink_entry(struct entry **pp)
{
    struct entry *e = *pp;
    *pp = e->next;
    free(e->ufrag);
    free(e);
    nentries--;
    atomic_store(&mx.ufrag_entries, (long long)nentries);
}

/* Inserts or updates; caller holds the lock. Returns NULL when the table is full. */
static struct entry *put(const char *u, const char *backend, const char *server, bool learnt,
                         double expires)
{
    struct entry **pp = slot(u), *e = *pp;
    if (!e) {
        if (nentries >= UFRAG_MAX_ENTRIES || !(e = calloc(1, sizeof(*e))) ||
            !(e->ufrag = strdup(u))) {
            free(e);
            return NULL;
        }
        *pp = e;
        nentries++;
        atomic_store(&mx.ufrag_entries, (long long)nentries);
    }
    snprintf(e->backend, sizeof(e->backend), "%s", backend);
    snprintf(e->server, sizeof(e->server), "%s", server);
    e->learnt = learnt;
    e->expires = expires;
    return e;
}

int ufrag_acquire(const char *u, const struct cfg_backend *b)
{
    int idx = -1;
    pthread_mutex_lock(&lock);
    struct entry **pp = slot(u), *e = *pp;
    if (e && strcmp(e->backend, b->name) == 0) {
        for (size_t i = 0; i < b->servers.n; i++)
            if (strcmp(b->servers.v[i].text, e->server) == 0)
                idx = (int)i;
    }
    if (idx >= 0) {
        e->refs++;
    } else if (e && !e->refs) {
        unlink_entry(pp); /* its server left the pool in a reload */
    }
    pthread_mutex_unlock(&lock);
    if (idx >= 0)
        MX_INC(mx.ufrag_hits);
    else
        MX_INC(mx.ufrag_misses);
    return idx;
}

void ufrag_learn(const char *u, const struct cfg_backend *b, size_t idx)
{
    pthread_mutex_lock(&lock);
    struct entry *e = put(u, b->name, b->servers.v[idx].text, true, now_mono() + ttl);
    if (e)
        e->refs++;
    pthread_mutex_unlock(&lock);
}

void ufrag_release(const char *u)
{
    pthread_mutex_lock(&lock);
    struct entry *e = *slot(u);
    /* A registration keeps the lifetime it was given; otherwise ufrag_grace from now. */
    if (e && e->refs && --e->refs == 0 && e->expires < now_mono() + grace)
        e->expires = now_mono() + grace;
    pthread_mutex_unlock(&lock);
}

static void sweep_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    double now = now_mono();
    (void)loop;
    (void)t;
    (void)revents;
    pthread_mutex_lock(&lock);
    for (size_t b = 0; b < BUCKETS; b++) {
        struct entry **pp = &table[b];
        while (*pp) {
            if (!(*pp)->refs && (*pp)->expires <= now)
                unlink_entry(pp);
            else
                pp = &(*pp)->next;
        }
    }
    pthread_mutex_unlock(&lock);
}

void ufrag_configure(struct ev_loop *loop, const struct cfg *c)
{
    static ev_timer sweep;
    pthread_mutex_lock(&lock);
    ttl = c->ufrag_ttl;
    grace = c->ufrag_grace;
    pthread_mutex_unlock(&lock);
    if (!ev_is_active(&sweep)) {
        ev_timer_init(&sweep, sweep_cb, 1.0, 1.0);
        ev_timer_start(loop, &sweep);
        ev_unref(loop); /* the sweep alone must not keep the main loop running */
    }
}

/* ---- admin API -------------------------------------------------------------------- */

struct reg {
    char ufrag[260], server[80], backend[80];
    double ttl; /* 0 = the configured ufrag_ttl */
};

/* Finds the backend with balance = ufrag that has `server` (or the named backend). */
static const char *check_reg(const struct cfg *c, struct reg *r)
{
    static _Thread_local char why[256];
    if (!ufrag_valid(r->ufrag, strlen(r->ufrag)))
        return "malformed ufrag (4 to 256 characters: ALPHA DIGIT + /)";
    if (!isfinite(r->ttl) || r->ttl < 0 || r->ttl > 604800)
        return "ttl out of range (0 to 604800 seconds)";
    for (size_t i = 0; i < c->nbackends; i++) {
        const struct cfg_backend *b = &c->backends[i];
        if (b->balance != BALANCE_UFRAG || (*r->backend && strcmp(b->name, r->backend) != 0))
            continue;
        for (size_t k = 0; k < b->servers.n; k++)
            if (strcmp(b->servers.v[k].text, r->server) == 0) {
                snprintf(r->backend, sizeof(r->backend), "%s", b->name);
                return NULL;
            }
    }
    snprintf(why, sizeof(why),
             "unknown server '%.80s': not a server of %s%.64s with balance = ufrag", r->server,
             *r->backend ? "backend " : "any backend", r->backend);
    return why;
}

/* A minimal strict JSON reader for what /ufrags accepts: an object, or an array of
 * objects, whose members are strings or numbers. */
struct json {
    const char *p, *end;
};

static void ws(struct json *j)
{
    while (j->p < j->end && strchr(" \t\r\n", *j->p))
        j->p++;
}

static bool lit(struct json *j, char ch)
{
    ws(j);
    if (j->p < j->end && *j->p == ch) {
        j->p++;
        return true;
    }
    return false;
}

static bool jstring(struct json *j, char *out, size_t cap)
{
    size_t n = 0;
    if (!lit(j, '"'))
        return false;
    while (j->p < j->end && *j->p != '"') {
        char ch = *j->p++;
        if ((unsigned char)ch < 0x20)
            return false;
        if (ch == '\\') {
            if (j->p >= j->end)
                return false;
            ch = *j->p++;
            if (ch == 'n')
                ch = '\n';
            else if (ch == 't')
                ch = '\t';
            else if (!strchr("\"\\/", ch))
                return false; /* \u and others: never needed for ufrags and addresses */
        }
        if (n + 1 >= cap)
            return false;
        out[n++] = ch;
    }
    out[n] = '\0';
    return lit(j, '"');
}

static bool jnumber(struct json *j, double *out)
{
    char *e;
    ws(j);
    if (j->p >= j->end || !(isdigit((unsigned char)*j->p) || *j->p == '-'))
        return false;
    *out = strtod(j->p, &e);
    if (e > j->end || e == j->p)
        return false;
    j->p = e;
    return true;
}

static const char *json_object(struct json *j, struct reg *r)
{
    memset(r, 0, sizeof(*r));
    if (!lit(j, '{'))
        return "expected a JSON object";
    if (lit(j, '}'))
        return "empty object: ufrag and server are required";
    do {
        char key[32];
        if (!jstring(j, key, sizeof(key)) || !lit(j, ':'))
            return "invalid JSON (expected \"key\": value)";
        bool ok;
        if (!strcmp(key, "ufrag"))
            ok = jstring(j, r->ufrag, sizeof(r->ufrag));
        else if (!strcmp(key, "server"))
            ok = jstring(j, r->server, sizeof(r->server));
        else if (!strcmp(key, "backend"))
            ok = jstring(j, r->backend, sizeof(r->backend));
        else if (!strcmp(key, "ttl"))
            ok = jnumber(j, &r->ttl);
        else
            return "unknown member (expected ufrag, server, backend, ttl)";
        if (!ok)
            return "invalid JSON value (strings for ufrag/server/backend, a number for ttl)";
    } while (lit(j, ','));
    if (!lit(j, '}'))
        return "invalid JSON (expected , or })";
    if (!*r->ufrag || !*r->server)
        return "ufrag and server are required";
    return NULL;
}

/* Parses the body into regs (at most max). Returns an error text, or NULL. */
static const char *parse_body(const char *body, size_t len, struct reg *regs, size_t max, size_t *n)
{
    *n = 0;
    struct json j = {body, body + len};
    ws(&j);
    if (j.p < j.end && (*j.p == '{' || *j.p == '[')) {
        bool array = lit(&j, '[');
        do {
            if (*n >= max)
                return "too many entries in one request";
            const char *e = json_object(&j, &regs[(*n)++]);
            if (e)
                return e;
        } while (array && lit(&j, ','));
        if (array && !lit(&j, ']'))
            return "invalid JSON (expected , or ])";
        ws(&j);
        return j.p == j.end ? NULL : "trailing bytes after the JSON value";
    }
    /* Line form: "UFRAG HOST:PORT [TTL]" per line, e.g. curl --data-binary. */
    char *copy = strndup(body, len), *save = NULL;
    const char *err = NULL;
    if (!copy)
        return "out of memory";
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *tok[4], *tsave = NULL, *end;
        int f = 0;
        for (char *t = strtok_r(line, " \t\r", &tsave); t && f < 4;
             t = strtok_r(NULL, " \t\r", &tsave))
            tok[f++] = t;
        if (f == 0)
            continue; /* blank */
        struct reg r = {0};
        if (f < 2 || f > 3 || strlen(tok[0]) >= sizeof(r.ufrag) ||
            strlen(tok[1]) >= sizeof(r.server)) {
            err = "expected lines of UFRAG HOST:PORT [TTL], or JSON";
            break;
        }
        strcpy(r.ufrag, tok[0]);
        strcpy(r.server, tok[1]);
        if (f == 3 && (r.ttl = strtod(tok[2], &end), *end || end == tok[2] || !isfinite(r.ttl))) {
            err = "TTL must be a number of seconds";
            break;
        }
        if (*n >= max) {
            err = "too many entries in one request";
            break;
        }
        regs[(*n)++] = r;
    }
    free(copy);
    if (!err && !*n)
        err = "empty request: nothing to register";
    return err;
}

/* Nothing here needs JSON escaping: ufrags enter the table only as ice-chars (checked by
 * check_reg and, for fan-outs, by conn.c), backend names and addresses were validated
 * by the configuration loader. */
static void list_json(FILE *f)
{
    double now = now_mono();
    bool first = true;
    fprintf(f, "[");
    pthread_mutex_lock(&lock);
    for (size_t b = 0; b < BUCKETS; b++)
        for (struct entry *e = table[b]; e; e = e->next) {
            fprintf(f,
                    "%s\n{\"ufrag\":\"%s\",\"backend\":\"%s\",\"server\":\"%s\",\"source\":\"%s\","
                    "\"connections\":%u,\"expires_in\":%.0f}",
                    first ? "" : ",", e->ufrag, e->backend, e->server,
                    e->learnt ? "fanout" : "registered", e->refs,
                    e->refs ? -1.0 : e->expires - now);
            first = false;
        }
    pthread_mutex_unlock(&lock);
    fprintf(f, "\n]\n");
}

void ufrag_admin(const struct admin_req *req, struct admin_resp *resp)
{
    static struct reg regs[1000];
    const char *sub = req->path[7] == '/' ? req->path + 8 : NULL; /* /ufrags/NAME */

    if (req->method == HTTP_GET && !sub) {
        resp->type = "application/json";
        list_json(resp->body);
        return;
    }
    if (req->method == HTTP_DELETE && sub) {
        pthread_mutex_lock(&lock);
        struct entry **pp = slot(sub);
        bool found = *pp != NULL;
        if (found)
            unlink_entry(pp);
        pthread_mutex_unlock(&lock);
        resp->status = found ? 200 : 404;
        fprintf(resp->body, found ? "unregistered\n" : "no such ufrag\n");
        return;
    }
    if ((req->method != HTTP_POST && req->method != HTTP_PUT) || sub) {
        resp->status = 405;
        fprintf(resp->body, "use GET /ufrags, POST /ufrags, DELETE /ufrags/UFRAG\n");
        return;
    }
    size_t n;
    const char *err = parse_body(req->body, req->body_len, regs, 1000, &n);
    struct cfg *c = admin_cfg_get();
    /* Check everything before changing anything: a bad request leaves the table as is. */
    for (size_t i = 0; !err && i < n; i++)
        if ((err = check_reg(c, &regs[i])))
            fprintf(resp->body, "entry %zu: ", i + 1);
    cfg_unref(c);
    if (err) {
        resp->status = 400;
        fprintf(resp->body, "%s; nothing registered\n", err);
        return;
    }
    double now = now_mono();
    pthread_mutex_lock(&lock);
    size_t room = UFRAG_MAX_ENTRIES - nentries;
    bool full = n > room; /* approximate (updates need no room): refuse rather than half-do */
    for (size_t i = 0; !full && i < n; i++)
        put(regs[i].ufrag, regs[i].backend, regs[i].server, false,
            now + (regs[i].ttl > 0 ? regs[i].ttl : ttl));
    pthread_mutex_unlock(&lock);
    if (full) {
        resp->status = 409;
        fprintf(resp->body, "the ufrag table is full (%d entries); nothing registered\n",
                UFRAG_MAX_ENTRIES);
        return;
    }
    resp->status = 201;
    for (size_t i = 0; i < n; i++)
        fprintf(resp->body, "registered %s -> %s %s\n", regs[i].ufrag, regs[i].backend,
                regs[i].server);
    log_info("admin: registered %zu ufrag%s", n, n == 1 ? "" : "s");
}
