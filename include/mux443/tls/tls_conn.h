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

/* Advances the handshake. 1: done; 0: in progress (wait for t->ops->wants(t)); -1:
 * failed, *why says why (thread-local text, valid until the next call). */
int tls_conn_handshake(struct transport *t, const char **why);

/* Negotiated protocol version and ALPN, for logs ("TLSv1.3", "http/1.1" or ""). */
const char *tls_conn_version(const struct transport *t);
void tls_conn_alpn(const struct transport *t, char *dst, size_t cap);
/* Whether kernel TLS carries this connection's records (send, receive). */
void tls_conn_ktls(const struct transport *t, bool *tx, bool *rx);

#endif
