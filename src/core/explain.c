/* --explain: the same detection and route selection as a live connection (probe_detect,
 * route_select, route_ufrag_prefix), over bytes from stdin, printed for an operator. */
#include <stdlib.h>
#include <string.h>

#include "mux443/core/explain.h"
#include "mux443/core/route.h"
#include "mux443/lib/classes.h"
#include "mux443/lib/classify.h"
#include "mux443/lib/log.h"
#include "mux443/lib/proxy_proto.h"

static void field(FILE *out, const char *name, const void *s, size_t len)
{
    char esc[1200];
    fprintf(out, "%-9s %s\n", name, len ? log_escape(esc, sizeof(esc), s, len) : "-");
}

/* For ICE-TCP to a pool balanced by ufrag: which server the ufrag leads to, decided by
 * the same function as a live connection's. */
static void explain_ufrag(FILE *out, const struct cfg_backend *b, const struct probe_out *p)
{
    if (b->balance != BALANCE_UFRAG || p->cls != CLASS_ICE_TCP)
        return;
    int i = route_ufrag_prefix(b, p->ufrag, p->ufrag_len);
    if (i >= 0) {
        fprintf(out, "server    %s (ufrag_prefix=%s)\n", b->servers.v[i].text, b->ufrag_prefix[i]);
        return;
    }
    fprintf(out,
            "server    decided at run time: the ufrag table (GET /ufrags on the admin "
            "listener), else a fan-out to the %zu servers\n",
            b->servers.n);
}

int explain_run(const struct cfg *c, const char *listener, FILE *in, FILE *out)
{
    const struct cfg_listener *l = listener ? cfg_listener_find(c, listener) : &c->listeners[0];
    struct probe_out p;

    if (!l) {
        fprintf(stderr, "mux443: no listener named '%s' in %s\n", listener, c->path);
        return 1;
    }
    uint8_t *buf = malloc(l->preread_max);
    if (!buf)
        fatal("out of memory");
    size_t n = fread(buf, 1, l->preread_max, in), off = 0;

    fprintf(out, "listener  %s\nbytes     %zu%s\n", l->name, n,
            n == l->preread_max ? " (preread_max reached: the rest is ignored)" : "");
    if (l->proxy_in) {
        struct proxy_info pi;
        const char *why = "incomplete";
        char src[64];
        if (proxy_parse(buf, n, &pi, &why) != PROBE_MATCH) {
            fprintf(out, "proxy     expected a PROXY header: %s\nroute     - (closed)\n", why);
            free(buf);
            return 0;
        }
        addr_format((struct sockaddr *)&pi.src, src, sizeof(src));
        fprintf(out, "proxy     %s (%zu header bytes)\n", pi.local ? "LOCAL" : src, pi.hdr_len);
        off = pi.hdr_len;
    }

    struct probe_state st;
    probe_state_init(&st);
    enum probe_result r = probe_detect(&st, buf + off, n - off, &p);
    if (r == PROBE_AGAIN) {
        /* A live connection would wait for more bytes, then hit peek_timeout. */
        fprintf(out, "result    incomplete: a probe still wants more bytes\n");
        memset(&p, 0, sizeof(p));
        p.cls = CLASS_TIMEOUT;
    }
    char alpn[600];
    fprintf(out, "class     %s\n", class_name(p.cls));
    if (p.why)
        fprintf(out, "note      %s\n", p.why);

    field(out, "sni", p.sni, p.sni_len);
    probe_alpn_format(&p, alpn, sizeof(alpn));
    field(out, "alpn", alpn, p.alpn_len ? strlen(alpn) : 0);
    if (p.cls == CLASS_TLS)
        fprintf(out, "%-9s 0x%04x%s\n", "version", p.tls_version,
                p.tls_sslv2 ? " (SSLv2 hello)" : "");
    field(out, "host", p.host, p.host_len);
    field(out, "path", p.path, p.path_len);
    field(out, "ufrag", p.ufrag, p.ufrag_len);
    if (p.cufrag_len)
        field(out, "client", p.cufrag, p.cufrag_len);
    if (p.cls == CLASS_WEBSOCKET)
        field(out, "ws_proto", p.ws_protocol, p.ws_protocol_len);
    if (p.cls == CLASS_SIP)
        field(out, "method", p.sip_response ? "(response)" : p.method,
              p.sip_response ? 10 : strlen(p.method));
    if (p.cls == CLASS_MQTT) {
        fprintf(out, "%-9s %u\n", "mqtt", p.mqtt_level);
        field(out, "client_id", p.mqtt_client, p.mqtt_client_len);
    }

    if (p.refuse) {
        fprintf(out, "route     - (refused: %s)\n", p.refuse);
        free(buf);
        return 0;
    }
    const struct cfg_tls *term = NULL;
    const struct cfg_route *rt =
        p.cls == CLASS_TLS ? route_tls_hello(c, &p, &term) : route_select(c, &p, VIA_PLAIN);
    if (term) {
        fprintf(out,
                "tls       terminate with [tls%s%s] (%s:%d); the route is chosen from the "
                "bytes inside\n",
                *term->name ? " " : "", term->name, c->path, term->line);
        const struct cfg_route *fb = route_inside_fallback(c, rt);
        if (fb && fb->inside_default)
            fprintf(out, "inside    what no class rule routes: [route] tls_default (%s:%d)\n",
                    c->path, fb->line);
        else if (fb)
            fprintf(out, "inside    what no class rule routes: [route %s] (%s:%d)\n", fb->name,
                    c->path, fb->line);
    } else if (rt && rt->tls == TLSM_TERMINATE) {
        fprintf(out,
                "route     %s (%s:%d) wants TLS terminated, but no certificate covers "
                "this SNI: the connection is closed\n",
                rt->name, c->path, rt->line);
    } else {
        explain_route(out, c, rt, &p);
    }
    free(buf);
    return 0;
}

void explain_route(FILE *out, const struct cfg *c, const struct cfg_route *rt,
                   const struct probe_out *p)
{
    if (!rt) {
        fprintf(out, "route     - (no route matches: the connection is closed)\n");
        return;
    }
    fprintf(out, "route     %s (%s:%d)\nbackend   %s:", rt->name, c->path, rt->line,
            rt->backend->name);
    for (size_t i = 0; i < rt->backend->servers.n; i++)
        fprintf(out, " %s", rt->backend->servers.v[i].text);
    fprintf(out, "\n");
    explain_ufrag(out, rt->backend, p);
}
