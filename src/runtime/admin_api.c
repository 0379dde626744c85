/* The admin API's endpoints. Requests are answered on the main thread; the ufrag table
 * and the metrics are read without stopping the workers. */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <http_parser.h>

#include "mux443/lib/classes.h"
#include "mux443/lib/http_guard.h"
#include "mux443/lib/log.h"
#include "mux443/lib/ufrag_req.h"
#include "mux443/runtime/admin_api.h"
#include "mux443/runtime/reload.h"
#include "mux443/runtime/status.h"
#include "mux443/state/metrics.h"
#include "mux443/state/ufrag.h"

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
    struct snap *s = reload_current();
    const struct cfg *c = s->cfg;
    fprintf(f, "{\"config\":");
    json_str(f, c->path);
    fprintf(f, ",\"routes\":[");
    for (size_t i = 0; i < c->nroutes; i++) {
        const struct cfg_route *r = &c->routes[i];
        fprintf(f, "%s\n{\"name\":", i ? "," : "");
        json_str(f, r->name);
        fprintf(f, ",\"line\":%d,\"classes\":[", r->line);
        int first = 1;
        for (int k = CLASS_TLS; k < CLASS_COUNT; k++)
            if (r->classes & (1u << k)) {
                fprintf(f, "%s\"%s\"", first ? "" : ",", class_name((enum mux_class)k));
                first = 0;
            }
        fprintf(f, "],\"backend\":");
        json_str(f, r->backend->name);
        fprintf(f, ",\"idle_timeout\":%g}", r->idle_timeout);
    }
    fprintf(f, "\n],\"backends\":[");
    for (size_t i = 0; i < c->nbackends; i++) {
        const struct cfg_backend *b = &c->backends[i];
        fprintf(f, "%s\n{\"name\":", i ? "," : "");
        json_str(f, b->name);
        fprintf(f, ",\"servers\":[");
        for (size_t k = 0; k < b->servers.n; k++) {
            struct mx_server *sm = snap_server_mx(s, b, k);
            fprintf(f, "%s{\"address\":", k ? "," : "");
            json_str(f, b->servers.v[k].text);
            fprintf(f, ",\"up\":%s}", atomic_load(&sm->down) ? "false" : "true");
        }
        fprintf(f, "]}");
    }
    fprintf(f, "\n]}\n");
    snap_unref(s);
}

/* Finds the backend with balance = ufrag that has `server` (or the named backend). */
static const char *check_reg(const struct cfg *c, struct ufrag_reg *r)
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

/* A POST body's declared type must match its form: JSON as application/json, lines as
 * text/x-mux443-ufrags. Neither can be sent by a web page of another origin without a
 * CORS preflight, which the admin API never answers with an Allow-Origin. */
static const char *check_body_type(const struct admin_req *req)
{
    const char *p = req->body + strspn(req->body, " \t\r\n");
    bool json = *p == '{' || *p == '[';
    if (http_media_type_is(req->content_type, "application/json"))
        return json ? NULL : "a body of type application/json must be a JSON object or array";
    if (http_media_type_is(req->content_type, "text/x-mux443-ufrags"))
        return json ? "a body of type text/x-mux443-ufrags must be lines, not JSON" : NULL;
    return "";
}

/* /ufrags: list, register, unregister. */
static void ufrags(const struct admin_req *req, struct admin_resp *resp)
{
    static struct ufrag_reg regs[1000];
    const char *sub = req->path[7] == '/' ? req->path + 8 : NULL; /* /ufrags/NAME */

    if (req->method == HTTP_GET && !sub) {
        resp->type = "application/json";
        ufrag_list_json(resp->body);
        return;
    }
    if (req->method == HTTP_DELETE && sub) {
        bool found = ufrag_unregister(sub, strlen(sub)) > 0;
        resp->status = found ? 200 : 404;
        fprintf(resp->body, found ? "unregistered\n" : "no such ufrag\n");
        return;
    }
    if ((req->method != HTTP_POST && req->method != HTTP_PUT) || sub) {
        resp->status = 405;
        fprintf(resp->body, "use GET /ufrags, POST /ufrags, DELETE /ufrags/UFRAG\n");
        return;
    }
    const char *terr = check_body_type(req);
    if (terr) {
        resp->status = *terr ? 400 : 415;
        fprintf(resp->body, "%s\n",
                *terr ? terr
                      : "Content-Type must be application/json (JSON) or "
                        "text/x-mux443-ufrags (lines); nothing registered");
        return;
    }
    size_t n;
    const char *err = ufrag_req_parse(req->body, req->body_len, regs, 1000, &n);
    struct snap *s = reload_current();
    /* Check everything before changing anything: a bad request leaves the table as is. */
    for (size_t i = 0; !err && i < n; i++)
        if ((err = check_reg(s->cfg, &regs[i])))
            fprintf(resp->body, "entry %zu: ", i + 1);
    snap_unref(s);
    if (err) {
        resp->status = 400;
        fprintf(resp->body, "%s; nothing registered\n", err);
        return;
    }
    if (!ufrag_register(regs, n)) {
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

static bool listed(const struct cfg_strlist *l, const char *s, size_t n)
{
    for (size_t i = 0; i < l->n; i++)
        if (strlen(l->v[i]) == n && strncasecmp(l->v[i], s, n) == 0)
            return true;
    return false;
}

/* The guards of admin_api.h. Returns false with the refusal written to resp. */
static bool admit(const struct cfg *c, const struct admin_req *req, struct admin_resp *resp)
{
    if (req->nhost > 1) {
        resp->status = 400;
        fprintf(resp->body, "more than one Host header\n");
        return false;
    }
    if (req->norigin > 1 ||
        (req->norigin && !listed(&c->admin_origins, req->origin, strlen(req->origin)))) {
        resp->status = 403;
        fprintf(resp->body, "cross-origin requests are refused (Origin not in admin_origins)\n");
        return false;
    }
    if (req->nhost && !http_host_allowed(req->host, c->admin_hosts.v, c->admin_hosts.n)) {
        resp->status = 421;
        fprintf(resp->body, "unknown Host: use an IP address, localhost or a name listed in "
                            "admin_hosts\n");
        return false;
    }
    bool open =
        strcmp(req->path, "/healthz") == 0 && (req->method == HTTP_GET || req->method == HTTP_HEAD);
    if (c->admin_token && !open) {
        const char *a = req->authorization;
        if (!http_auth_carries(a, c->admin_token)) {
            resp->status = 401;
            fprintf(resp->body, "the admin token is required (Authorization: Bearer TOKEN, or "
                                "a browser's login with the token as password)\n");
            return false;
        }
    }
    return true;
}

void admin_api_dispatch(const struct admin_req *req, struct admin_resp *resp)
{
    struct snap *s = reload_current();
    bool admitted = admit(s->cfg, req, resp);
    snap_unref(s);
    if (!admitted)
        return;
    if (strcmp(req->path, "/ufrags") == 0 || strncmp(req->path, "/ufrags/", 8) == 0) {
        ufrags(req, resp);
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
        status_metrics(resp->body);
    } else if (strcmp(req->path, "/routes") == 0) {
        resp->type = "application/json";
        routes_json(resp->body);
    } else if (!status_serve(req->path, resp->body, &resp->type)) {
        resp->status = 404;
        fprintf(resp->body, "not found: try /status, /healthz, /metrics, /routes, /ufrags\n");
    }
}
