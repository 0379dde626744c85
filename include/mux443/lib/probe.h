/* Traffic-class probes: pure functions that classify the first bytes of a connection.
 * No I/O, no allocation, no logging: unit-testable and fuzzable. */
#ifndef MUX443_PROBE_H
#define MUX443_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
    CLASS_UNKNOWN,   /* no probe matched: routed by `default` */
    CLASS_TIMEOUT,   /* client silent or too slow: routed by `on_timeout` */
    CLASS_COUNT
};

/* Bounds on what the probes extract. Longer values are cut (the *_cut flag is set);
 * longer TLS handshakes are refused. */
#define PROBE_NAME_MAX   255   /* SNI and Host (a DNS name is at most 253) */
#define PROBE_ALPN_MAX   255   /* ALPN protocol_name_list, wire format */
#define PROBE_PATH_MAX   1024  /* HTTP path, without the query */
#define PROBE_UFRAG_MAX  256   /* RFC 8445: ice-ufrag is 4..256 chars */
#define PROBE_TLS_HS_MAX 16384 /* ClientHello handshake message body bound */

/* What a probe found. Strings are copied (not sliced) because a TLS ClientHello may be
 * spread over several records, so a field can straddle a record header; one
 * representation for every probe keeps the routing code simple. Every string is also
 * NUL-terminated; lengths are authoritative (the bytes are client-controlled and may
 * contain anything: escape before logging). */
struct probe_out {
    enum mux_class cls;
    const char *why; /* static text: why NOMATCH, or a note; may be NULL */
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

    /* WebSocket: the Sec-WebSocket-Protocol header's value as sent, e.g. "sip" */
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

/* Each probe: p/n are all bytes received so far (n may be 0). Re-run from the start
 * on a longer buffer until it stops answering PROBE_AGAIN. On MATCH, out->cls and the
 * protocol's fields are set; on NOMATCH, out->why may be set. out is reset by the
 * probe itself. */
enum probe_result probe_tls(const uint8_t *p, size_t n, struct probe_out *out);
enum probe_result probe_http(const uint8_t *p, size_t n, struct probe_out *out);
enum probe_result probe_stun(const uint8_t *p, size_t n, struct probe_out *out);
enum probe_result probe_ice_tcp(const uint8_t *p, size_t n, struct probe_out *out);
/* probe_sip, probe_mqtt and probe_ssh are declared in probe_sip.h, probe_mqtt.h and
 * probe_ssh.h. */

/* Detection state of one connection (TEMPORARY shim until the resumable probes land). */
struct probe_state {
    int unused;
};
void probe_state_init(struct probe_state *st);

/* Runs every probe. MATCH: out is the matching probe's result. AGAIN: at least one probe
 * still wants bytes. NOMATCH: none can match (out->cls = CLASS_UNKNOWN, out->why says
 * what was seen). */
enum probe_result probe_detect(struct probe_state *st, const uint8_t *p, size_t n,
                               struct probe_out *out);

/* "tls", "http", "websocket", "stun", "ice-tcp", "sip", "mqtt", "ssh", "unknown", "timeout". */
const char *probe_class_name(enum mux_class cls);
/* Inverse of probe_class_name; CLASS_NONE when unknown. */
enum mux_class probe_class_from_name(const char *name);

/* True when the client offered ALPN protocol `proto` (len bytes). */
bool probe_alpn_offers(const struct probe_out *out, const char *proto, size_t len);

/* Writes the ALPN list as "h2,http/1.1" (escaped for logs) into dst; returns dst. */
char *probe_alpn_format(const struct probe_out *out, char *dst, size_t cap);

#endif
