/* Classifying the first bytes of a connection: the table of probes and the dispatcher
 * that runs them, resuming each where it left off. */
#include <assert.h>
#include <string.h>

#include "mux443/lib/classify.h"
#include "mux443/lib/probe_http.h"
#include "mux443/lib/probe_mqtt.h"
#include "mux443/lib/probe_sip.h"
#include "mux443/lib/probe_ssh.h"
#include "mux443/lib/probe_stun.h"
#include "mux443/lib/probe_tls.h"

#ifdef MUX443_PROBE_COUNT
unsigned long long probe_work;
#endif

static bool claims_tls(const uint8_t *p, size_t n)
{
    return p[0] == 0x16 || (p[0] & 0x80);
}

static bool claims_http(const uint8_t *p, size_t n)
{
    return p[0] >= 'A' && p[0] <= 'Z';
}

static bool claims_stun(const uint8_t *p, size_t n)
{
    return (p[0] & 0xc0) == 0 && n >= 6 && p[4] == 0x21 && p[5] == 0x12;
}

static bool claims_ice_tcp(const uint8_t *p, size_t n)
{
    return (p[0] & 0xc0) == 0 && n >= 8 && p[6] == 0x21 && p[7] == 0x12;
}

static bool claims_sip(const uint8_t *p, size_t n)
{
    return n >= 4 && memcmp(p, "SIP/", 4) == 0;
}

static bool claims_mqtt(const uint8_t *p, size_t n)
{
    return p[0] == 0x10;
}

static bool claims_ssh(const uint8_t *p, size_t n)
{
    return n >= 4 && memcmp(p, "SSH-", 4) == 0;
}

/* Adding a probe: a step function (probe_step.h), an id in probe.h, a row here, and its
 * state in struct probe_state if it keeps any.
 * The classes' first bytes do not overlap (TLS 0x16 or >= 0x80, HTTP 'A'..'Z', STUN and
 * ICE-TCP < 0x40 with the cookie at different offsets), so at most one probe matches
 * and the order only decides whose work is skipped. */
static const struct probe_def {
    void (*init)(struct probe_state *st); /* NULL: zeroed state is ready */
    probe_step_fn step;
    /* On NOMATCH, the reason reported is that of the first probe that claims the first
     * bytes, so that the log says "bad TLS record length" rather than "not an HTTP
     * method". */
    bool (*claims)(const uint8_t *p, size_t n);
} probes[PROBE_ID_COUNT] = {
    [PROBE_ID_TLS] = {NULL, probe_tls_step, claims_tls},
    [PROBE_ID_HTTP] = {probe_http_init, probe_http_step, claims_http},
    [PROBE_ID_STUN] = {NULL, probe_stun_step, claims_stun},
    [PROBE_ID_ICE_TCP] = {NULL, probe_ice_tcp_step, claims_ice_tcp},
    /* SIP and SSH start with upper-case letters like HTTP: the SIP version "SIP/2.0" (not
     * "HTTP/1.x") and the sip:/sips:/tel: Request-URI, and "SSH-", tell them apart; each
     * refuses the others' lines. MQTT's CONNECT starts 0x10 like a STUN/ICE-TCP length,
     * but never has the STUN cookie at offset 4 or 6. */
    [PROBE_ID_SIP] = {NULL, probe_sip_step, claims_sip},
    [PROBE_ID_MQTT] = {NULL, probe_mqtt_step, claims_mqtt},
    [PROBE_ID_SSH] = {NULL, probe_ssh_step, claims_ssh},
};

static void probe_init_one(struct probe_state *st, enum probe_id id)
{
    st->slot[id].need = 0;
    st->slot[id].why = NULL;
    st->slot[id].result = PROBE_AGAIN;
    if (probes[id].init != NULL)
        probes[id].init(st);
}

void probe_state_init(struct probe_state *st)
{
    memset(st, 0, sizeof(*st));
    for (unsigned i = 0; i < PROBE_ID_COUNT; i++)
        probe_init_one(st, (enum probe_id)i);
}

enum probe_result probe_run(struct probe_state *st, enum probe_id id, const uint8_t *p, size_t n,
                            struct probe_out *out)
{
    size_t need = n + 1;
    enum probe_result r;

    if (st->slot[id].result == PROBE_NOMATCH)
        return PROBE_NOMATCH;
    if (n < st->slot[id].need)
        return PROBE_AGAIN;
    PROBE_WORK(1);
    r = probes[id].step(st, p, n, out, &need);
    if (r == PROBE_AGAIN) {
        st->slot[id].need = need;
    } else if (r == PROBE_NOMATCH) {
        st->slot[id].result = PROBE_NOMATCH;
        st->slot[id].why = out->why;
    }
    return r;
}

/* Why nothing matched: the reason of the probe the first bytes pointed at. */
static const char *nomatch_why(const struct probe_state *st, const uint8_t *p, size_t n)
{
    for (unsigned i = 0; i < PROBE_ID_COUNT; i++) {
        if (probes[i].claims(p, n))
            return st->slot[i].why;
    }
    if ((p[0] & 0xc0) == 0) /* STUN's first byte, and ICE-TCP's frame length below 16 KiB */
        return "no STUN magic cookie at offset 4 or 6";
    return "first byte starts no known protocol";
}

enum probe_result probe_detect(struct probe_state *st, const uint8_t *p, size_t n,
                               struct probe_out *out)
{
    bool again = false;

    assert(n >= st->seen); /* the caller passes every byte so far, each time */
    st->seen = n;
    for (unsigned i = 0; i < PROBE_ID_COUNT; i++) {
        enum probe_result r = probe_run(st, (enum probe_id)i, p, n, out);

        if (r == PROBE_MATCH)
            return r;
        if (r == PROBE_AGAIN)
            again = true;
    }
    memset(out, 0, sizeof(*out));
    if (again)
        return PROBE_AGAIN;
    if (st->why == NULL)
        st->why = nomatch_why(st, p, n); /* n > 0: every probe answers AGAIN on n == 0 */
    out->cls = CLASS_UNKNOWN;
    out->why = st->why;
    return PROBE_NOMATCH;
}
