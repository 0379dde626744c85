/* Traffic-class probes: pure functions that classify the first bytes of a connection.
 * No I/O, no allocation, no logging: unit-testable and fuzzable. */
#ifndef MUX443_LIB_PROBE_H
#define MUX443_LIB_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <http_parser.h>

#include "mux443/lib/ice.h"

enum probe_result {
    PROBE_AGAIN = 0, /* could still match: need more bytes */
    PROBE_MATCH,     /* recognised; the out fields are filled */
    PROBE_NOMATCH,   /* cannot be this protocol (out->why may say why) */
};

/* Traffic classes. The order is the order of the class map in the config. */
enum mux_class {
    CLASS_NONE = 0,
    CLASS_TLS,       /* TLS ClientHello (or SSLv2-format hello, tls_sslv2) */
    CLASS_HTTP,      /* HTTP/1.x request that is not a WebSocket upgrade */
    CLASS_WEBSOCKET, /* HTTP/1.1 GET with Connection: upgrade + Upgrade: websocket */
    CLASS_STUN,      /* STUN / TURN over TCP (RFC 8489, RFC 8656) */
    CLASS_ICE_TCP,   /* RFC 4571-framed STUN (RFC 6544 ICE-TCP) */
    CLASS_SIP,       /* SIP request or response line (RFC 3261) */
    CLASS_MQTT,      /* MQTT 3.1 / 3.1.1 / 5.0 CONNECT packet */
    CLASS_SSH,       /* SSH identification string "SSH-2.0-" (RFC 4253) */
    CLASS_QUIC,      /* QUIC over UDP only (a flow opened by a client Initial, RFC 9000) */
    CLASS_UNKNOWN,   /* no probe matched: routed by `default` */
    CLASS_TIMEOUT,   /* client silent or too slow: routed by `on_timeout` */
    CLASS_COUNT
};

/* Bounds on what the probes extract. Longer values are cut (the *_cut flag is set);
 * longer TLS handshakes are refused. */
#define PROBE_NAME_MAX   255       /* SNI and Host (a DNS name is at most 253) */
#define PROBE_ALPN_MAX   255       /* ALPN protocol_name_list, wire format */
#define PROBE_PATH_MAX   1024      /* HTTP path, without the query */
#define PROBE_UFRAG_MAX  UFRAG_MAX /* RFC 8445: ice-ufrag is 4..256 chars */
#define PROBE_TLS_HS_MAX 16384     /* ClientHello handshake message body bound */

/* What a probe found. Strings are copied (not sliced) because a TLS ClientHello may be
 * spread over several records, so a field can straddle a record header; one
 * representation for every probe keeps the routing code simple. Every string is also
 * NUL-terminated; lengths are authoritative (the bytes are client-controlled and may
 * contain anything: escape before logging). */
struct probe_out {
    enum mux_class cls;
    const char *why; /* static text: why NOMATCH, or a note; may be NULL */
    /* On MATCH: a protocol violation that makes routing ambiguous (e.g. two Host headers):
     * the connection is refused rather than routed. Static text; NULL when fine. */
    const char *refuse;
    size_t consumed; /* bytes of the recognised unit (hello records, HTTP head, frame) */

    /* TLS */
    bool tls_sslv2;       /* SSLv2-format ClientHello: no extensions, no SNI */
    uint16_t tls_version; /* highest version offered, GREASE skipped (0x0304 = TLS 1.3) */
    uint16_t sni_len;
    char sni[PROBE_NAME_MAX + 1];
    uint16_t alpn_len; /* wire format: repeated (1-byte length, name); whole entries only */
    uint8_t alpn[PROBE_ALPN_MAX + 1];
    bool alpn_cut;

    /* HTTP / WebSocket */
    char method[16];
    uint16_t host_len; /* Host header without the port, e.g. "example.com" or "[::1]" */
    char host[PROBE_NAME_MAX + 1];
    bool host_cut;
    uint16_t path_len; /* path of the request target, without "?query" */
    char path[PROBE_PATH_MAX + 1];
    bool path_cut;

    /* STUN / ICE-TCP */
    uint16_t stun_type; /* STUN message type, e.g. 0x0001 Binding request, 0x0003 Allocate */
    uint16_t ufrag_len; /* server (local) ufrag: the part of USERNAME before ':' */
    char ufrag[PROBE_UFRAG_MAX + 1];
    uint16_t cufrag_len; /* client (remote) ufrag: the part after ':' */
    char cufrag[PROBE_UFRAG_MAX + 1];
    bool stun_integrity; /* ICE-TCP: MESSAGE-INTEGRITY(-SHA256) present (not verified) */

    /* WebSocket: the first Sec-WebSocket-Protocol header's value as sent, e.g. "sip" */
    uint16_t ws_protocol_len;
    char ws_protocol[PROBE_NAME_MAX + 1];
    bool ws_protocol_cut;

    /* SIP: method (in method[] above) and the Request-URI host (in host[] above: the
     * rules' `host` key matches both HTTP Host and SIP Request-URI host). */
    bool sip_response; /* a status line ("SIP/2.0 200 OK"), not a request */

    /* MQTT CONNECT */
    uint8_t mqtt_level; /* protocol level: 3 (3.1), 4 (3.1.1), 5 (5.0) */
    uint16_t mqtt_client_len;
    char mqtt_client[PROBE_NAME_MAX + 1];
    bool mqtt_client_cut;
};

/* The probes probe_detect runs, in its table's order (probe.c). */
enum probe_id {
    PROBE_ID_TLS,
    PROBE_ID_HTTP,
    PROBE_ID_STUN,
    PROBE_ID_ICE_TCP,
    PROBE_ID_SIP,
    PROBE_ID_MQTT,
    PROBE_ID_SSH,
    PROBE_ID_COUNT
};

/* Header names longer than this are none of ours: only a prefix is kept. */
#define PROBE_HTTP_NAME_KEEP 24 /* "sec-websocket-protocol" */
/* The Host value is kept with room for a port and some slack before being cut. */
#define PROBE_HTTP_HOST_KEEP (PROBE_NAME_MAX + 16)

/* The rest of this section is the probes' private progress, here only so that callers
 * can embed struct probe_state: read none of it. Offsets, never pointers into the
 * buffer, which may move between calls. */

/* TLS: where the record walk stands. Nothing of the hello is copied while it arrives;
 * once its last record is in, the records are walked again and the hello parsed once. */
struct probe_tls_state {
    size_t rec;         /* offset of the first record not yet complete */
    size_t hs_got;      /* handshake bytes in the records before rec (at most hs_need) */
    size_t hs_need;     /* 4 + ClientHello body length once its header is in, else 0 */
    uint8_t hs_head[4]; /* the handshake header (type, length), which may span records */
};

/* One token of a comma-separated header list (RFC 9110 section 5.6.1), matched byte by
 * byte: values arrive in pieces (obs-fold, reads). */
struct probe_http_tok {
    const char *want; /* lower-case token (static text) */
    uint32_t len;     /* bytes of the current element seen so far (OWS trimmed) */
    bool ws_after;    /* whitespace seen after the token started */
    bool bad;         /* the current element cannot be `want` */
    bool found;
};

/* HTTP: http-parser is a streaming parser; only new bytes are fed to it. */
struct probe_http_state {
    http_parser hp;
    size_t fed;      /* bytes given to the parser so far */
    size_t head_end; /* once done: offset of the byte that ended the head */
    size_t url_off;  /* request target: offset and length (pieces are adjacent) */
    size_t url_len;
    bool url_seen;
    bool done;          /* on_headers_complete was called: the parser is paused */
    bool in_value;      /* last callback was a value: the next field starts a new name */
    bool host_seen;     /* a Host header already started: later ones are ignored */
    uint8_t host_count; /* Host headers seen (saturating): two are refused */
    bool host_taken;    /* this header is the Host we keep */
    uint8_t kind;       /* the current header, as probe_http.c classifies it */
    uint16_t name_len;  /* past PROBE_HTTP_NAME_KEEP: not a header we want */
    uint16_t host_len;  /* past PROBE_HTTP_HOST_KEEP: the value was cut */
    char name[PROBE_HTTP_NAME_KEEP];
    char host[PROBE_HTTP_HOST_KEEP];
    struct probe_http_tok conn, upg;
    uint16_t wsp_len; /* first Sec-WebSocket-Protocol; past sizeof(wsp): cut */
    bool wsp_seen;    /* that header is complete: later ones are ignored */
    char wsp[PROBE_NAME_MAX];
};

/* Per connection during detection. 544 bytes on x86-64 (test_probe_resume checks < 1 KiB);
 * STUN and ICE-TCP need no state of their own: their checks are over the first bytes,
 * and the dispatcher does not re-run them before the bytes they wait for are in. */
struct probe_state {
    size_t seen;     /* n of the previous call */
    const char *why; /* once every probe refused: the reason given, kept for later calls */
    struct {
        size_t need;              /* do not run the probe before this many bytes */
        const char *why;          /* its NOMATCH reason, once refused */
        enum probe_result result; /* PROBE_AGAIN while live, PROBE_NOMATCH once refused */
    } slot[PROBE_ID_COUNT];
    struct probe_tls_state tls;
    struct probe_http_state http;
};

/* True when the client offered ALPN protocol `proto` (len bytes). */
bool probe_alpn_offers(const struct probe_out *out, const char *proto, size_t len);

/* Writes the ALPN list as "h2,http/1.1" (escaped for logs) into dst; returns dst. */
char *probe_alpn_format(const struct probe_out *out, char *dst, size_t cap);

/* ---- for the probes themselves (probe_*.c) and their tests ------------------------ */

/* One probe over p[0..n), resuming from its part of st (n never less than at the previous
 * call). MATCH/NOMATCH: out is reset and filled as the stateless probe would. AGAIN: out
 * holds nothing (callers reset it), and *need (preset to n + 1) may be raised to the
 * buffer length below which the answer cannot change, so that the dispatcher can skip
 * calls until then.
 * Each call costs O(1 + new bytes), plus the parse of the unit once it is complete. */
typedef enum probe_result (*probe_step_fn)(struct probe_state *st, const uint8_t *p, size_t n,
                                           struct probe_out *out, size_t *need);

/* The stateless form of a probe: a fresh state (readied by init, when not NULL) and one
 * call of its step. */
static inline enum probe_result probe_step_once(probe_step_fn step,
                                                void (*init)(struct probe_state *st),
                                                const uint8_t *p, size_t n, struct probe_out *out)
{
    struct probe_state st;
    size_t need = n + 1;
    memset(&st, 0, sizeof(st));
    if (init)
        init(&st);
    enum probe_result r = step(&st, p, n, out, &need);
    if (r == PROBE_AGAIN)
        memset(out, 0, sizeof(*out));
    return r;
}

/* Work counter for the linearity test: built with -DMUX443_PROBE_COUNT only (it is a
 * global, which the daemon's worker threads must not share). Counts step calls and the
 * bytes a probe examines beyond a constant per call. */
#ifdef MUX443_PROBE_COUNT
extern unsigned long long probe_work;
#define PROBE_WORK(k) (probe_work += (unsigned long long)(k))
#else
#define PROBE_WORK(k) ((void)0)
#endif

#endif
