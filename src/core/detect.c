/* Detection phases: read the first bytes, strip PROXY, probe, and the TLS handshake. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mux443/core/detect.h"
#include "mux443/lib/classify.h"
#include "mux443/lib/log.h"
#include "mux443/lib/proxy_proto.h"
#include "mux443/state/limits.h"
#include "mux443/state/metrics.h"
#include "mux443/tls/tls_conn.h"

enum rd { RD_DATA, RD_WAIT, RD_EOF, RD_ERROR, RD_BUDGET };

/* Reads what the client has sent (plain, or decrypted inside terminated TLS) into the
 * preread buffer, at most up to max bytes in all. Every byte of the buffer's capacity
 * is counted in the preread budget: RD_BUDGET when it cannot grow. */
static enum rd read_some(struct conn *c, size_t max)
{
    struct buf *b = &c->client.pend;
    size_t before = b->cap;
    /* A plain read that emptied the socket said so (transport.h): its next bytes come with
     * an event. TLS may hold decrypted bytes: it is asked. */
    if (c->client.tp.ops->raw && !(c->client.tp.ready & TP_WANT_READ))
        return RD_WAIT;
    if (!buf_reserve(b, b->len ? b->len : DETECT_FIRST_BLOCK, max))
        return errno = ENOMEM, RD_ERROR;
    if (b->cap > c->budget_held) {
        size_t grow = b->cap - c->budget_held;
        if (!limits_preread_take(grow, c->snap->cfg->preread_budget, c->budget_held == 0)) {
            MX_INC(mx.refused[MXR_PREREAD_BUDGET]);
            if (!before)
                buf_release(b); /* nothing counted for it */
            return RD_BUDGET;
        }
        c->budget_held = (uint32_t)b->cap;
    }
    ssize_t n = c->client.tp.ops->read(&c->client.tp, b->data + b->len, b->cap - b->len);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? RD_WAIT : RD_ERROR;
    if (n == 0)
        return RD_EOF;
    b->len += (uint32_t)n;
    c->client.bytes += (uint64_t)n;
    return RD_DATA;
}

/* Why read_some could not read. */
static enum step read_failed(struct conn *c, enum rd why)
{
    if (why == RD_BUDGET && !c->budget_held)
        return conn_fail(c,
                         "preread_budget (%u bytes, all clients) spent: this client cannot be "
                         "read",
                         c->snap->cfg->preread_budget);
    if (why == RD_BUDGET)
        return conn_fail(c,
                         "preread_budget (%u bytes, all clients) spent: this client's %u-byte "
                         "detection buffer cannot grow",
                         c->snap->cfg->preread_budget, (unsigned)c->budget_held);
    return conn_fail(c, "client error during detection: %s", strerror(errno));
}

enum step detect_proxy(struct conn *c, int revents)
{
    struct buf *b = &c->client.pend;
    size_t max = c->lst->preread_max;

    if (revents & EV_TIMER)
        return conn_fail(c, "peek timeout waiting for the PROXY header");
    for (;;) {
        enum rd rd = read_some(c, max);
        switch (rd) {
        case RD_WAIT:
            return STEP_AGAIN;
        case RD_EOF:
            MX_INC(mx.detect[MXD_CLOSED]);
            if (!b->len) /* port scanners, health checks, aborted dials: not a failure */
                return conn_end(c, "client closed without sending a byte");
            return conn_fail(c, "client closed during detection after %u bytes", b->len);
        case RD_ERROR:
        case RD_BUDGET:
            return read_failed(c, rd);
        case RD_DATA:
            break;
        }
        if (buf_unread(b) < c->proxy_need)
            continue;
        struct proxy_info pi = {.need = 0};
        const char *why = "not a PROXY header";
        switch (proxy_parse(b->data + b->off, buf_unread(b), &pi, &why)) {
        case PROBE_AGAIN:
            c->proxy_need = (uint32_t)(pi.need > buf_unread(b) ? pi.need : buf_unread(b) + 1);
            if (b->len >= max)
                return conn_fail(c, "PROXY header longer than preread_max");
            continue;
        case PROBE_NOMATCH:
            MX_INC(mx.detect[MXD_PROXY_ERROR]);
            return conn_fail(c, "listener %s expects a PROXY header: %s", c->lst->name, why);
        case PROBE_MATCH:
            break;
        }
        if (!pi.local) {
            char via[ADDR_TEXT_MAX], client[ADDR_TEXT_MAX];
            conn_peer_text(c, via);
            addr_ip_set(&c->peer_addr, (const struct sockaddr *)&pi.src, sizeof(pi.src));
            addr_ip_set(&c->local_addr, (const struct sockaddr *)&pi.dst, sizeof(pi.dst));
            log_debug("conn=%llu client=%s via PROXY header from %s", (unsigned long long)c->id,
                      conn_peer_text(c, client), via);
        }
        buf_consume(b, pi.hdr_len);
        uint8_t key[16];
        if (!conn_admit_client(c->snap->cfg, &c->peer_addr.sa, key, &c->limit_held)) {
            char client[ADDR_TEXT_MAX];
            c->refused = true;
            return conn_fail(c, "max_connections_per_client reached for %s",
                             conn_peer_text(c, client));
        }
        return STEP_DONE;
    }
}

enum step detect_first_bytes(struct conn *c, int revents, struct probe_out *out)
{
    struct buf *b = &c->client.pend;
    size_t max = c->lst->preread_max;

    if (revents & EV_TIMER) {
        memset(out, 0, sizeof(*out));
        out->cls = CLASS_TIMEOUT;
        return STEP_DONE;
    }
    if (!c->probe) {
        if (!(c->probe = malloc(sizeof(*c->probe))))
            return conn_fail(c, "out of memory during detection");
        probe_state_init(c->probe);
        c->probed = 0;
    }
    for (;;) {
        /* Bytes that arrived with an earlier read (after a PROXY header, or decrypted with
         * the handshake's last record) are probed before anything is read. */
        if (buf_unread(b) > c->probed) {
            c->probed = (uint32_t)buf_unread(b);
            /* A PROXY header where none is expected claims another client's address to
             * the backend: a spoofing attempt, never relayed. */
            enum probe_result sig = PROBE_NOMATCH;
            if (!c->lst->proxy_in && !c->terminated &&
                (sig = proxy_signature(b->data + b->off, buf_unread(b))) == PROBE_MATCH) {
                MX_INC(mx.detect[MXD_PROXY_ERROR]);
                return conn_fail(c,
                                 "PROXY header on a listener that does not expect one "
                                 "(listener %s has no proxy_protocol)",
                                 c->lst->name);
            }
            enum probe_result r =
                sig == PROBE_AGAIN ? PROBE_AGAIN
                                   : probe_detect(c->probe, b->data + b->off, buf_unread(b), out);
            if (r == PROBE_AGAIN && b->len >= max) {
                memset(out, 0, sizeof(*out));
                out->cls = CLASS_UNKNOWN;
                out->why = "preread_max reached before the first message was complete";
                c->preread_full = true;
                r = PROBE_NOMATCH;
            }
            if (r != PROBE_AGAIN) {
                if (c->terminated && out->cls == CLASS_TLS) {
                    out->cls = CLASS_UNKNOWN;
                    out->why = "TLS inside TLS";
                }
                detect_release(c);
                return STEP_DONE;
            }
        }
        enum rd rd = read_some(c, max);
        switch (rd) {
        case RD_DATA:
            continue;
        case RD_WAIT:
            return STEP_AGAIN;
        case RD_EOF:
            MX_INC(mx.detect[MXD_CLOSED]);
            if (!c->terminated && !c->client.bytes)
                return conn_end(c, "client closed without sending a byte");
            return conn_fail(c, "client closed during detection after %zu bytes", buf_unread(b));
        case RD_ERROR:
        case RD_BUDGET:
            return read_failed(c, rd);
        }
    }
}

enum step detect_handshake(struct conn *c, int revents)
{
    const char *why = NULL;

    if (revents & EV_TIMER) {
        MX_INC(mx.tls_failures[MXT_TIMEOUT]);
        return conn_fail(c, "peek timeout during the TLS handshake");
    }
    enum tls_fail kind = TLS_FAIL_OTHER;
    int r = tls_conn_handshake(&c->client.tp, &why, &kind);
    if (r < 0) {
        _Static_assert((int)TLS_FAIL_COUNT == (int)MXT_TIMEOUT, "the TLS failure kinds match");
        MX_INC(mx.tls_failures[kind]);
        return conn_fail(c, "TLS handshake failed: %s", why);
    }
    if (r == 0)
        return STEP_AGAIN;
    MX_INC(mx.tls_handshakes);
    if (log_debug_enabled()) {
        char alpn[64];
        bool tx, rx;
        tls_conn_alpn(&c->client.tp, alpn, sizeof(alpn));
        tls_conn_ktls(&c->client.tp, &tx, &rx);
        log_debug("conn=%llu TLS %s established, alpn=\"%s\", kTLS send %s receive %s",
                  (unsigned long long)c->id, tls_conn_version(&c->client.tp), alpn,
                  tx ? "on" : "off", rx ? "on" : "off");
    }
    return STEP_DONE;
}

void detect_release(struct conn *c)
{
    free(c->probe);
    c->probe = NULL;
    /* Detection is over (or the connection): its buffer no longer counts. */
    limits_preread_give(c->budget_held);
    c->budget_held = 0;
}
