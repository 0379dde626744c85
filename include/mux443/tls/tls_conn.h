/* The TLS transport of a terminated client connection: the ClientHello already read
 * during detection is replayed into OpenSSL first, then the socket is read directly. */
#ifndef MUX443_TLS_TLS_CONN_H
#define MUX443_TLS_TLS_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "mux443/lib/transport.h"

extern const struct transport_ops transport_tls;

/* Switches t (a plain transport on the client socket) to server-side TLS with ctx; `pre`
 * (n bytes: what detection read) is handed to OpenSSL before anything else is read from
 * the socket. Returns false if out of memory (t is unchanged then). */
bool tls_conn_start(struct transport *t, SSL_CTX *ctx, const uint8_t *pre, size_t n);

/* Why a handshake failed, from OpenSSL's error (a small fixed set, for a metric). */
enum tls_fail {
    TLS_FAIL_PROTOCOL_VERSION, /* no version both sides accept */
    TLS_FAIL_NO_SHARED_CIPHER, /* no suite, group or signature algorithm in common */
    TLS_FAIL_CERTIFICATE,      /* the client refused our certificate (unknown CA, ...) */
    TLS_FAIL_CLOSED,           /* the client closed or reset the connection */
    TLS_FAIL_OTHER,
    TLS_FAIL_COUNT
};

/* Advances the handshake. 1: done; 0: in progress (wait for t->ops->wants(t)); -1:
 * failed, *why says why (thread-local text, valid until the next call), *kind its
 * class. */
int tls_conn_handshake(struct transport *t, const char **why, enum tls_fail *kind);

/* Whether the client's stream ended without close_notify (a read returned 0 for a bare
 * EOF: a truncated TLS stream, which a peer could use to cut a response short). */
bool tls_conn_truncated(const struct transport *t);

/* Negotiated protocol version and ALPN, for logs ("TLSv1.3", "http/1.1" or ""). */
const char *tls_conn_version(const struct transport *t);
void tls_conn_alpn(const struct transport *t, char *dst, size_t cap);
/* Whether kernel TLS carries this connection's records (send, receive). */
void tls_conn_ktls(const struct transport *t, bool *tx, bool *rx);

#endif
