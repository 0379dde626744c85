/* The bodies of POST /ufrags (admin API): a JSON object or array of objects
 * {"ufrag", "server", "backend"?, "ttl"?}, or lines of "UFRAG HOST:PORT [TTL]" (what
 * `curl -d` sends). Pure: the caller checks the entries against the configuration. */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mux443/lib/ufrag_req.h"

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

static const char *json_object(struct json *j, struct ufrag_reg *r)
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
const char *ufrag_req_parse(const char *body, size_t len, struct ufrag_reg *regs, size_t max,
                            size_t *n)
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
        struct ufrag_reg r = {0};
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
