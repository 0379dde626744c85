/* Session-ticket keys: in memory only, rotating every TICKET_ROTATE seconds; the
 * previous key still decrypts (and asks for a fresh ticket), so a stolen key exposes at
 * most two periods of resumed sessions. */
#ifndef MUX443_TLS_TICKET_H
#define MUX443_TLS_TICKET_H

#include <stdbool.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>

#define TICKET_ROTATE (6 * 3600)

/* Makes the first keys. Main thread, at start: false when no randomness is available. */
bool ticket_init(void);

/* Rotates the keys if they are older than TICKET_ROTATE at `now`. When new key material
 * cannot be drawn, the current key stays in use (and rotation is tried again on the next
 * handshake): never exits, since it runs on worker threads. Returns false then. */
bool ticket_rotate(time_t now);

/* For tests: the source of key material (default OpenSSL's RAND_bytes). */
void ticket_set_rand(int (*rand_bytes)(unsigned char *buf, int n));

/* SSL_CTX_set_tlsext_ticket_key_evp_cb callback. */
int ticket_cb(SSL *s, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *ectx,
              EVP_MAC_CTX *hctx, int enc);

#endif
