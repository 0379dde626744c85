/* Rotating session-ticket keys shared by every TLS context of the process. */
#include <pthread.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/rand.h>

#include "mux443/lib/log.h"
#include "mux443/tls/ticket.h"

struct ticket_key {
    unsigned char name[16], aes[32], hmac[32];
};

static struct {
    pthread_mutex_t lock;
    struct ticket_key cur, prev;
    time_t made;
    int (*rand_bytes)(unsigned char *buf, int n);
} tk = {.lock = PTHREAD_MUTEX_INITIALIZER, .rand_bytes = RAND_bytes};

void ticket_set_rand(int (*rand_bytes)(unsigned char *buf, int n))
{
    pthread_mutex_lock(&tk.lock);
    tk.rand_bytes = rand_bytes ? rand_bytes : RAND_bytes;
    pthread_mutex_unlock(&tk.lock);
}

bool ticket_init(void)
{
    pthread_mutex_lock(&tk.lock);
    bool ok = tk.rand_bytes((unsigned char *)&tk.cur, sizeof(tk.cur)) == 1 &&
              tk.rand_bytes((unsigned char *)&tk.prev, sizeof(tk.prev)) == 1;
    tk.made = time(NULL);
    pthread_mutex_unlock(&tk.lock);
    return ok;
}

/* Caller holds the lock. */
static bool rotate_locked(time_t now)
{
    struct ticket_key k;
    if (now - tk.made < TICKET_ROTATE)
        return true;
    if (tk.rand_bytes((unsigned char *)&k, sizeof(k)) != 1) {
        OPENSSL_cleanse(&k, sizeof(k));
        return false; /* keep the current key; try again on the next handshake */
    }
    tk.prev = tk.cur;
    tk.cur = k;
    tk.made = now;
    OPENSSL_cleanse(&k, sizeof(k));
    return true;
}

bool ticket_rotate(time_t now)
{
    pthread_mutex_lock(&tk.lock);
    bool ok = rotate_locked(now);
    pthread_mutex_unlock(&tk.lock);
    return ok;
}

int ticket_cb(SSL *s, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *ectx,
              EVP_MAC_CTX *hctx, int enc)
{
    static _Atomic time_t warned;
    struct ticket_key k;
    int rc = 1;
    (void)s;

    pthread_mutex_lock(&tk.lock);
    time_t now = time(NULL);
    if (!rotate_locked(now) && warned != now) {
        warned = now;
        log_warnx("TLS: cannot draw a new session-ticket key: the current one stays in use");
    }
    if (enc) {
        k = tk.cur;
    } else if (memcmp(name, tk.cur.name, 16) == 0) {
        k = tk.cur;
    } else if (memcmp(name, tk.prev.name, 16) == 0) {
        k = tk.prev;
        rc = 2; /* valid, but issue a ticket under the current key */
    } else {
        rc = 0; /* unknown key: full handshake */
    }
    pthread_mutex_unlock(&tk.lock);
    if (rc == 0)
        return 0;

    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, k.hmac, sizeof(k.hmac)),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end()};
    if (enc) {
        memcpy(name, k.name, 16);
        if (RAND_bytes(iv, 16) != 1 ||
            !EVP_EncryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, k.aes, iv))
            rc = -1;
    } else if (!EVP_DecryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, k.aes, iv)) {
        rc = -1;
    }
    if (rc > 0 && !EVP_MAC_CTX_set_params(hctx, params))
        rc = -1;
    OPENSSL_cleanse(&k, sizeof(k));
    return rc;
}
