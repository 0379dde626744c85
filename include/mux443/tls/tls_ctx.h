/* TLS termination: certificates and their SSL_CTX (built and checked at config load),
 * choice of certificate by SNI, ALPN selection, rotating session-ticket keys, and the
 * TLS transport of a client leg (preread ClientHello replayed into OpenSSL first). */
#ifndef MUX443_TLS_H
#define MUX443_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <openssl/ssl.h>

struct cfg;
struct cfg_tls;
struct leg;

/* Once per process, before loading a configuration: ticket keys, kernel TLS check. */
void tls_global_init(void);
/* Whether the kernel offers TLS offload (the "tls" TCP ULP); contexts then enable it. */
bool tls_ktls_available(void);

/* Loads the certificate chains and keys of `t` into a new SSL_CTX and fills t->names from
 * the leaf certificates (SAN DNS names, CN when there is no SAN). On failure returns
 * false with a message naming the file in err; `bad_key` says whether the problem is in a
 * key file (so that the caller can point at the `key` line) rather than a cert file. */
bool tls_ctx_build(struct cfg_tls *t, const struct cfg *c, char *err, size_t cap, bool *bad_key);
void tls_ctx_free(struct cfg_tls *t);

/* The certificate section serving `sni` (exact names first, then wildcards), else the
 * default one, else NULL. */
const struct cfg_tls *tls_find(const struct cfg *c, const char *sni, size_t len);

/* Starts server-side TLS on a client leg: `pre` (n bytes: the ClientHello already read)
 * is handed to OpenSSL before anything else is read from the socket. Returns false if
 * out of memory. */
bool tls_leg_start(struct leg *l, SSL_CTX *ctx, const uint8_t *pre, size_t n);

/* Advances the handshake. 1: done; 0: in progress (wait for l->tp->wants(l));
 * -1: failed, *why says why (static or thread-local text). */
int tls_handshake(struct leg *l, const char **why);

/* Negotiated protocol version and ALPN, for logs ("TLSv1.3", "http/1.1" or ""). */
const char *tls_leg_version(const struct leg *l);
void tls_leg_alpn(const struct leg *l, char *dst, size_t cap);
/* Whether kernel TLS carries this leg's records (send, receive). */
void tls_leg_ktls(const struct leg *l, bool *tx, bool *rx);

#endif
