/* TLS contexts for termination: the certificates of a [tls] section checked and loaded
 * into an SSL_CTX with mux443's policy (TLS 1.2+, security level 2, no renegotiation,
 * rotating tickets, ALPN limited to what the routes take). */
#ifndef MUX443_TLS_TLS_CTX_H
#define MUX443_TLS_TLS_CTX_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "mux443/conf/desc.h"

/* Once per process, on the main thread before loading a configuration: ticket keys,
 * kernel TLS check. False when no randomness is available for the ticket keys. */
bool tls_global_init(void);
/* Whether the kernel offers TLS offload (the "tls" TCP ULP); contexts then enable it. */
bool tls_ktls_available(void);

/* The certificate check of the configuration loader (cfg_load_opts.check_tls): loads and
 * checks every chain and key of t (readable, key matches, valid now, chain in order,
 * accepted by the policy) and fills t->names from the leaf certificates (SAN DNS names;
 * the CN when there is no SAN), and checks the cipher lists (OpenSSL accepts them and
 * they leave a suite). False with a message in err; *bad_key names the key at fault. */
bool tls_check_section(struct cfg_tls *t, char *err, size_t cap, const char **bad_key);

/* Builds the context that terminates TLS for t under configuration c (its ALPN list;
 * c must outlive the context). NULL with a message in err. */
SSL_CTX *tls_ctx_new(const struct cfg *c, const struct cfg_tls *t, char *err, size_t cap);

#endif
