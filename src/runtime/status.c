/* The status page: one HTML document that renders /status.json, and that JSON. */
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mux443/runtime/reload.h"
#include "mux443/runtime/status.h"
#include "mux443/runtime/workers.h"
#include "mux443/state/history.h"
#include "mux443/state/metrics.h"
#include "mux443/state/ufrag.h"

#define EXPIRY_WARN_DAYS 14

static time_t started_at;

/* Strings in JSON: names come from the configuration (validated) or are ours, ufrags
 * are ice-chars; everything is escaped anyway. */
static void jstr(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20 || *p >= 0x7f)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

/* The first certificate of a [tls] section: its notAfter (Unix time) and issuer. */
static bool cert_info(const struct snap *s, const struct cfg_tls *t, time_t *not_after,
                      char *issuer, size_t cap)
{
    SSL_CTX *ctx = snap_tls_ctx(s, t);
    X509 *x = ctx ? SSL_CTX_get0_certificate(ctx) : NULL;
    struct tm tm;

    if (!x || !ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm))
        return false;
    *not_after = timegm(&tm);
    X509_NAME_oneline(X509_get_issuer_name(x), issuer, (int)cap);
    return true;
}

static const char *tls_label(const struct cfg_tls *t)
{
    return *t->name ? t->name : "tls";
}

void status_metrics(FILE *out)
{
    struct snap *s = reload_current();
    char issuer[256];
    time_t na;

    fprintf(out, "# HELP mux443_tls_certificate_expiry_seconds Unix time at which the "
                 "certificate of each [tls] section expires (notAfter); [tls] is tls=\"tls\".\n"
                 "# TYPE mux443_tls_certificate_expiry_seconds gauge\n");
    for (size_t i = 0; i < s->cfg->ntls; i++)
        if (cert_info(s, &s->cfg->tls[i], &na, issuer, sizeof(issuer)))
            fprintf(out, "mux443_tls_certificate_expiry_seconds{tls=\"%s\"} %lld\n",
                    tls_label(&s->cfg->tls[i]), (long long)na);
    snap_unref(s);
}

static void json_classes(FILE *f, const struct snap *s)
{
    fprintf(f, "\"accepted\":%llu,\"classes\":[", (unsigned long long)atomic_load(&mx.accepted));
    for (int i = 1; i < LABEL_COUNT; i++)
        fprintf(f, "%s{\"class\":\"%s\",\"total\":%llu,\"open\":%lld}", i > 1 ? "," : "",
                class_label_name((enum class_label)i),
                (unsigned long long)atomic_load(&mx.conns_total[i]),
                (long long)atomic_load(&mx.conns_open[i]));
    for (int i = 0; i < MXO_COUNT; i++)
        fprintf(f, ",{\"class\":\"%s\",\"total\":%llu,\"open\":null}",
                mx_outcome_name((enum mx_outcome)i),
                (unsigned long long)atomic_load(&mx.conns_outcome[i]));
    fprintf(f, "],\n");

    static struct history_sample h[HISTORY_LEN];
    size_t n = history_samples(h, HISTORY_LEN);
    fprintf(f, "\"history\":{\"seconds\":%zu,\"accepted\":[", n);
    for (size_t k = 0; k < n; k++)
        fprintf(f, "%s%u", k ? "," : "", h[k].accepted);
    fprintf(f, "],\"open\":{");
    for (int i = 1; i < LABEL_COUNT; i++) {
        fprintf(f, "%s\"%s\":[", i > 1 ? "," : "", class_label_name((enum class_label)i));
        for (size_t k = 0; k < n; k++)
            fprintf(f, "%s%u", k ? "," : "", h[k].open[i]);
        fprintf(f, "]");
    }
    fprintf(f, "},\"routes\":{");
    bool first = true;
    for (size_t r = 0; r < s->cfg->nroutes; r++) {
        int slot = history_route_slot(s->route_mx[r]);
        if (slot < 0)
            continue;
        fprintf(f, "%s", first ? "" : ",");
        jstr(f, s->cfg->routes[r].name);
        fprintf(f, ":[");
        for (size_t k = 0; k < n; k++)
            fprintf(f, "%s%u", k ? "," : "", h[k].route[slot]);
        fprintf(f, "]");
        first = false;
    }
    fprintf(f, "}},\n");
}

static void json_routes(FILE *f, const struct snap *s)
{
    const struct cfg *c = s->cfg;
    fprintf(f, "\"routes\":[");
    for (size_t i = 0; i < c->nroutes; i++) {
        const struct cfg_route *r = &c->routes[i];
        struct mx_route *m = snap_route_mx(s, r);
        fprintf(f, "%s\n{\"name\":", i ? "," : "");
        jstr(f, r->name);
        fprintf(f, ",\"backend\":");
        jstr(f, r->backend->name);
        fprintf(f, ",\"connections\":%llu,\"bytes_in\":%llu,\"bytes_out\":%llu}",
                (unsigned long long)atomic_load(&m->conns),
                (unsigned long long)atomic_load(&m->bytes_in),
                (unsigned long long)atomic_load(&m->bytes_out));
    }
    fprintf(f, "],\n\"backends\":[");
    bool ufrag = false;
    for (size_t i = 0; i < c->nbackends; i++) {
        const struct cfg_backend *b = &c->backends[i];
        static const char *const balance[] = {"roundrobin", "source", "ufrag"};
        ufrag |= b->balance == BALANCE_UFRAG;
        fprintf(f, "%s\n{\"name\":", i ? "," : "");
        jstr(f, b->name);
        fprintf(f, ",\"balance\":\"%s\",\"servers\":[",
                (unsigned)b->balance < 3 ? balance[b->balance] : "?");
        for (size_t k = 0; k < b->servers.n; k++) {
            struct mx_server *m = snap_server_mx(s, b, k);
            fprintf(f, "%s{\"address\":", k ? "," : "");
            jstr(f, b->servers.v[k].text);
            fprintf(f, ",\"up\":%s,\"last_check\":", atomic_load(&m->down) ? "false" : "true");
            jstr(f, m->last_check_at ? m->last_check : "");
            fprintf(f, ",\"last_check_at\":%.0f,\"connects\":%llu,\"failures\":%llu}",
                    m->last_check_at, (unsigned long long)atomic_load(&m->connects),
                    (unsigned long long)atomic_load(&m->connect_failures));
        }
        fprintf(f, "]}");
    }
    fprintf(f, "],\n");
    if (!ufrag) {
        fprintf(f, "\"ufrag\":null,\n");
        return;
    }
    struct history_fanout fo[HISTORY_EVENTS];
    size_t n = history_fanouts(fo, HISTORY_EVENTS);
    fprintf(f, "\"ufrag\":{\"entries\":%lld,\"fanouts\":[",
            (long long)atomic_load(&mx.ufrag_entries));
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "%s{\"at\":%lld,\"ufrag\":", i ? "," : "", (long long)fo[i].at);
        jstr(f, fo[i].ufrag);
        fprintf(f, ",\"backend\":");
        jstr(f, fo[i].backend);
        fprintf(f, ",\"winner\":");
        jstr(f, fo[i].winner);
        fprintf(f, "}");
    }
    fprintf(f, "]},\n");
}

static void json_tls(FILE *f, const struct snap *s, time_t now)
{
    fprintf(f, "\"tls\":[");
    for (size_t i = 0; i < s->cfg->ntls; i++) {
        const struct cfg_tls *t = &s->cfg->tls[i];
        char issuer[256] = "";
        time_t na = 0;
        bool ok = cert_info(s, t, &na, issuer, sizeof(issuer));
        fprintf(f, "%s\n{\"section\":", i ? "," : "");
        jstr(f, tls_label(t));
        fprintf(f, ",\"cert\":");
        jstr(f, t->certs.n ? t->certs.v[0] : "");
        fprintf(f, ",\"names\":[");
        for (size_t k = 0; k < t->names.n; k++) {
            fprintf(f, "%s", k ? "," : "");
            jstr(f, t->names.v[k]);
        }
        fprintf(f, "],\"issuer\":");
        jstr(f, issuer);
        if (ok)
            fprintf(f, ",\"not_after\":%lld,\"expires_in\":%lld,\"warn\":%s}", (long long)na,
                    (long long)(na - now), na - now < EXPIRY_WARN_DAYS * 86400 ? "true" : "false");
        else
            fprintf(f, ",\"not_after\":null,\"expires_in\":null,\"warn\":true}");
    }
    fprintf(f, "],\n");
}

static void json_reloads(FILE *f)
{
    struct history_reload r[HISTORY_EVENTS];
    size_t n = history_reloads(r, HISTORY_EVENTS);
    fprintf(f, "\"reloads\":{\"ok\":%llu,\"failed\":%llu,\"latest\":[",
            (unsigned long long)atomic_load(&mx.reloads_ok),
            (unsigned long long)atomic_load(&mx.reloads_failed));
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "%s{\"at\":%lld,\"ok\":%s,\"error\":", i ? "," : "", (long long)r[i].at,
                r[i].ok ? "true" : "false");
        jstr(f, r[i].error);
        fprintf(f, "}");
    }
    fprintf(f, "]},\n");
}

static void status_json(FILE *f)
{
    struct snap *s = reload_current();
    time_t now = time(NULL);

    fprintf(f, "{\"version\":\"%s\",\"now\":%lld,\"uptime\":%lld,\"config\":", MUX443_VERSION,
            (long long)now, (long long)(now - started_at));
    jstr(f, s->cfg->path);
    fprintf(f, ",\n");
    json_classes(f, s);
    json_routes(f, s);
    json_tls(f, s, now);
    json_reloads(f);
    fprintf(f,
            "\"process\":{\"pid\":%ld,\"workers\":%u,\"open_fds\":%ld,\"max_fds\":%ld,"
            "\"rss_bytes\":%ld}}\n",
            (long)getpid(), workers_count(), mx_open_fds(), mx_max_fds(), mx_rss_bytes());
    snap_unref(s);
}

void status_init(void)
{
    started_at = time(NULL);
}

/* The status page (GET / or /status): one self-contained HTML document whose script
 * renders /status.json every two seconds. Edited here; kept as one string per line. */
static const char status_html[] =
    "<!DOCTYPE html>\n"
    "<html lang=\"en\">\n"
    "<head>\n"
    "<meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<title>mux443 status</title>\n"
    "<style>\n"
    "body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; background: #fafafa; "
    "}\n"
    "h1 { font-size: 1.4em; margin: 0 0 .2em; }\n"
    "h2 { font-size: 1.1em; margin: 1.4em 0 .4em; border-bottom: 1px solid #ccc; }\n"
    "table { border-collapse: collapse; background: #fff; }\n"
    "th, td { padding: .25em .8em; border: 1px solid #ddd; text-align: left; }\n"
    "td.n { text-align: right; font-variant-numeric: tabular-nums; }\n"
    ".up { color: #176117; font-weight: bold; }\n"
    ".down, .warn { color: #b00020; font-weight: bold; }\n"
    ".muted { color: #777; }\n"
    "svg { vertical-align: middle; }\n"
    "#err { color: #b00020; }\n"
    "</style>\n"
    "</head>\n"
    "<body>\n"
    "<h1>mux443 <span id=\"version\"></span></h1>\n"
    "<div class=\"muted\"><span id=\"config\"></span> &middot; up <span id=\"uptime\"></span> "
    "&middot; updated <span id=\"updated\">never</span> <span id=\"err\"></span></div>\n"
    "\n"
    "<h2>Connections by class</h2>\n"
    "<p>Accepted: <b id=\"accepted\">-</b> &middot; new connections per second, last <span "
    "id=\"span\">-</span>: <span id=\"rate\"></span></p>\n"
    "<table id=\"classes\"><thead><tr><th>class</th><th>open</th><th>open, last "
    "minutes</th><th>total</th></tr></thead><tbody></tbody></table>\n"
    "\n"
    "<h2>Routes</h2>\n"
    "<table id=\"routes\"><thead><tr><th>route</th><th>backend</th><th>connections</th><th>new "
    "per second, last minutes</th><th>bytes in</th><th>bytes "
    "out</th></tr></thead><tbody></tbody></table>\n"
    "\n"
    "<h2>Backends</h2>\n"
    "<table "
    "id=\"backends\"><thead><tr><th>backend</th><th>balance</th><th>server</th><th>health</"
    "th><th>last check</th><th>connects</th><th>failures</th></tr></thead><tbody></tbody></table>\n"
    "\n"
    "<div id=\"ufrag-section\" hidden>\n"
    "<h2>ICE-TCP ufrags</h2>\n"
    "<p>Table entries: <b id=\"ufrag-entries\">-</b></p>\n"
    "<table "
    "id=\"fanouts\"><thead><tr><th>time</th><th>ufrag</th><th>backend</th><th>outcome</th></tr></"
    "thead><tbody></tbody></table>\n"
    "</div>\n"
    "\n"
    "<h2>TLS certificates</h2>\n"
    "<table "
    "id=\"tls\"><thead><tr><th>section</th><th>names</th><th>issuer</th><th>expires</th></tr></"
    "thead><tbody></tbody></table>\n"
    "\n"
    "<h2>Reloads</h2>\n"
    "<p>OK: <b id=\"reloads-ok\">-</b> &middot; failed: <b id=\"reloads-failed\">-</b></p>\n"
    "<table id=\"reloads\"><thead><tr><th>time</th><th>result</th><th>first "
    "error</th></tr></thead><tbody></tbody></table>\n"
    "\n"
    "<h2>Process</h2>\n"
    "<table id=\"process\"><tbody>\n"
    "<tr><th>pid</th><td class=\"n\" id=\"pid\"></td></tr>\n"
    "<tr><th>workers</th><td class=\"n\" id=\"workers\"></td></tr>\n"
    "<tr><th>open descriptors</th><td class=\"n\" id=\"fds\"></td></tr>\n"
    "<tr><th>resident memory</th><td class=\"n\" id=\"rss\"></td></tr>\n"
    "</tbody></table>\n"
    "\n"
    "<script>\n"
    "'use strict';\n"
    "// Everything shown comes from /status.json (same origin, GET, no parameters); text goes\n"
    "// in with textContent only, never as markup.\n"
    "const $ = (id) => document.getElementById(id);\n"
    "\n"
    "function cell(tr, text, cls) {\n"
    "  const td = document.createElement('td');\n"
    "  td.textContent = text;\n"
    "  if (cls) td.className = cls;\n"
    "  tr.appendChild(td);\n"
    "  return td;\n"
    "}\n"
    "\n"
    "function rows(id, list, fill) {\n"
    "  const body = $(id).tBodies[0];\n"
    "  body.replaceChildren();\n"
    "  for (const item of list) {\n"
    "    const tr = document.createElement('tr');\n"
    "    fill(tr, item);\n"
    "    body.appendChild(tr);\n"
    "  }\n"
    "}\n"
    "\n"
    "function spark(values) {\n"
    "  const ns = 'http://www.w3.org/2000/svg', w = 180, h = 24;\n"
    "  const svg = document.createElementNS(ns, 'svg');\n"
    "  svg.setAttribute('width', w);\n"
    "  svg.setAttribute('height', h);\n"
    "  const max = Math.max(1, ...values);\n"
    "  const pts = values.map((v, i) =>\n"
    "    `${(values.length > 1 ? i * w / (values.length - 1) : 0).toFixed(1)},${(h - 2 - v * (h - "
    "4) / max).toFixed(1)}`);\n"
    "  const line = document.createElementNS(ns, 'polyline');\n"
    "  line.setAttribute('points', pts.join(' '));\n"
    "  line.setAttribute('fill', 'none');\n"
    "  line.setAttribute('stroke', '#1565c0');\n"
    "  line.setAttribute('stroke-width', '1.5');\n"
    "  svg.appendChild(line);\n"
    "  return svg;\n"
    "}\n"
    "\n"
    "const time = (t) => new Date(t * 1000).toISOString().replace('T', ' ').replace(/\\.\\d+Z$/, "
    "'Z');\n"
    "const bytes = (n) => n >= 1 << 20 ? (n / (1 << 20)).toFixed(1) + ' MiB' : n >= 1024 ? (n / "
    "1024).toFixed(1) + ' KiB' : n + ' B';\n"
    "\n"
    "function render(s) {\n"
    "  $('version').textContent = s.version;\n"
    "  $('config').textContent = s.config;\n"
    "  $('uptime').textContent = s.uptime + ' s';\n"
    "  $('accepted').textContent = s.accepted;\n"
    "  $('span').textContent = s.history.seconds + ' s';\n"
    "  $('rate').replaceChildren(spark(s.history.accepted));\n"
    "  rows('classes', s.classes, (tr, c) => {\n"
    "    tr.id = 'class-' + c.class;\n"
    "    cell(tr, c.class);\n"
    "    cell(tr, c.open === null ? '' : c.open, 'n open');\n"
    "    const td = cell(tr, '');\n"
    "    if (s.history.open[c.class]) td.appendChild(spark(s.history.open[c.class]));\n"
    "    cell(tr, c.total, 'n total');\n"
    "  });\n"
    "  rows('routes', s.routes, (tr, r) => {\n"
    "    tr.id = 'route-' + r.name;\n"
    "    cell(tr, r.name);\n"
    "    cell(tr, r.backend);\n"
    "    cell(tr, r.connections, 'n total');\n"
    "    const td = cell(tr, '');\n"
    "    if (s.history.routes[r.name]) td.appendChild(spark(s.history.routes[r.name]));\n"
    "    cell(tr, bytes(r.bytes_in), 'n');\n"
    "    cell(tr, bytes(r.bytes_out), 'n');\n"
    "  });\n"
    "  const servers = [];\n"
    "  for (const b of s.backends) for (const v of b.servers) servers.push([b, v]);\n"
    "  rows('backends', servers, (tr, [b, v]) => {\n"
    "    cell(tr, b.name);\n"
    "    cell(tr, b.balance);\n"
    "    cell(tr, v.address);\n"
    "    cell(tr, v.up ? 'up' : 'DOWN', v.up ? 'up' : 'down');\n"
    "    cell(tr, v.last_check_at ? `${v.last_check} at ${time(v.last_check_at)}` : 'not checked', "
    "v.last_check_at ? '' : 'muted');\n"
    "    cell(tr, v.connects, 'n');\n"
    "    cell(tr, v.failures, 'n');\n"
    "  });\n"
    "  $('ufrag-section').hidden = !s.ufrag;\n"
    "  if (s.ufrag) {\n"
    "    $('ufrag-entries').textContent = s.ufrag.entries;\n"
    "    rows('fanouts', s.ufrag.fanouts, (tr, f) => {\n"
    "      cell(tr, time(f.at));\n"
    "      cell(tr, f.ufrag);\n"
    "      cell(tr, f.backend);\n"
    "      cell(tr, f.winner ? 'won by ' + f.winner : 'no server took it', f.winner ? '' : "
    "'warn');\n"
    "    });\n"
    "  }\n"
    "  rows('tls', s.tls, (tr, t) => {\n"
    "    cell(tr, t.section);\n"
    "    cell(tr, t.names.join(', '));\n"
    "    cell(tr, t.issuer);\n"
    "    cell(tr, t.not_after === null ? 'unknown' :\n"
    "      `${time(t.not_after)} (${Math.floor(t.expires_in / 86400)} days)`, t.warn ? 'warn' : "
    "'');\n"
    "  });\n"
    "  $('reloads-ok').textContent = s.reloads.ok;\n"
    "  $('reloads-failed').textContent = s.reloads.failed;\n"
    "  rows('reloads', s.reloads.latest, (tr, r) => {\n"
    "    cell(tr, time(r.at));\n"
    "    cell(tr, r.ok ? 'ok' : 'FAILED', r.ok ? 'up' : 'down');\n"
    "    cell(tr, r.error);\n"
    "  });\n"
    "  const p = s.process;\n"
    "  $('pid').textContent = p.pid;\n"
    "  $('workers').textContent = p.workers;\n"
    "  $('fds').textContent = p.max_fds >= 0 ? `${p.open_fds} of ${p.max_fds}` : p.open_fds;\n"
    "  $('rss').textContent = bytes(p.rss_bytes);\n"
    "  $('updated').textContent = time(s.now);\n"
    "  document.body.dataset.now = s.now;\n"
    "}\n"
    "\n"
    "async function refresh() {\n"
    "  try {\n"
    "    const r = await fetch('/status.json', { cache: 'no-store', credentials: 'same-origin' "
    "});\n"
    "    if (!r.ok) throw new Error('HTTP ' + r.status);\n"
    "    render(await r.json());\n"
    "    $('err').textContent = '';\n"
    "  } catch (e) {\n"
    "    $('err').textContent = '(update failed: ' + e.message + ')';\n"
    "  }\n"
    "}\n"
    "refresh();\n"
    "setInterval(refresh, 2000);\n"
    "</script>\n"
    "</body>\n"
    "</html>\n";

bool status_serve(const char *path, FILE *body, const char **type)
{
    if (strcmp(path, "/status.json") == 0) {
        *type = "application/json";
        status_json(body);
        return true;
    }
    if (strcmp(path, "/") == 0 || strcmp(path, "/status") == 0) {
        *type = "text/html; charset=utf-8";
        fputs(status_html, body);
        return true;
    }
    return false;
}
