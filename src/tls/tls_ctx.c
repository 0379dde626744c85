/* TLS termination: SSL_CTX per [tls] section (chain, key, checks), certificate choice by
 * SNI, ALPN selection, rotating ticket keys, and the TLS transport of a client leg. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "mux443/conf/config.h"
#include "mux443/core/conn.h"
#include "mux443/lib/log.h"
#include "mux443/core/route.h"
#include "mux443/tls/tls_ctx.h"

/* ---- session tickets ------------------------------------------------------------ */

/* Ticket keys live in memory only and rotate: a new key encrypts every
 * TICKET_ROTATE seconds, the previous one still decrypts (and asks for a fresh ticket),
 * so a stolen key exposes at most two periods of resumed sessions. */
#define TICKET_ROTATE (6 * 3600)

struct ticket_key {
    unsigned char name[16], aes[32], hmac[32];
};

static struct {
    pthread_mutex_t lock;
    struct ticket_key cur, prev;
    time_t made;
    bool ktls;
} tls_g = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void ticket_key_new(struct ticket_key *k)
{
    if (RAND_bytes((unsigned char *)k, sizeof(*k)) != 1)
        fatalx("RAND_bytes failed: cannot make session ticket keys");
}

static int ticket_cb(SSL *s, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *ectx,
                     EVP_MAC_CTX *hctx, int enc)
{
    struct ticket_key k;
    int rc = 1;
    (void)s;

    pthread_mutex_lock(&tls_g.lock);
    time_t now = time(NULL);
    if (now - tls_g.made >= TICKET_ROTATE) {
        tls_g.prev = tls_g.cur;
        ticket_key_new(&tls_g.cur);
        tls_g.made = now;
    }
    if (enc) {
        k = tls_g.cur;
    } else if (memcmp(name, tls_g.cur.name, 16) == 0) {
        k = tls_g.cur;
    } else if (memcmp(name, tls_g.prev.name, 16) == 0) {
        k = tls_g.prev;
        rc = 2; /* valid, but issue a ticket under the current key */
    } else {
        rc = 0; /* unknown key: full handshake */
    }
    pthread_mutex_unlock(&tls_g.lock);
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

void tls_global_init(void)
{
    char ulp[256] = "";
    FILE *f;

    pthread_mutex_lock(&tls_g.lock);
    ticket_key_new(&tls_g.cur);
    ticket_key_new(&tls_g.prev);
    tls_g.made = time(NULL);
    pthread_mutex_unlock(&tls_g.lock);

    /* Kernel TLS needs the "tls" TCP upper-layer protocol (module tls). */
    if ((f = fopen("/proc/sys/net/ipv4/tcp_available_ulp", "r"))) {
        if (!fgets(ulp, sizeof(ulp), f))
            ulp[0] = '\0';
        fclose(f);
    }
    tls_g.ktls = strstr(ulp, "tls") != NULL;
}

bool tls_ktls_available(void)
{
    return tls_g.ktls;
}

/* ---- certificates -------------------------------------------------------------- */

static void names_from_cert(struct cfg_tls *t, X509 *x)
{
    GENERAL_NAMES *san = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    int found = 0;
    char buf[256];

    for (int i = 0; san && i < sk_GENERAL_NAME_num(san); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(san, i);
        if (g->type != GEN_DNS)
            continue;
        int len = ASN1_STRING_length(g->d.dNSName);
        if (len <= 0 || len >= (int)sizeof(buf))
            continue;
        memcpy(buf, ASN1_STRING_get0_data(g->d.dNSName), (size_t)len);
        buf[len] = '\0';
        cfg_strlist_add(&t->names, buf);
        found++;
    }
    GENERAL_NAMES_free(san);
    /* RFC 6125: the CN counts only when there is no DNS SAN at all. */
    if (!found &&
        X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, buf, sizeof(buf)) > 0)
        cfg_strlist_add(&t->names, buf);
}

static int load_chain(const char *path, STACK_OF(X509) * chain, char *err, size_t cap)
{
    BIO *b = BIO_new_file(path, "r");
    X509 *x;

    if (!b) {
        snprintf(err, cap, "cannot read certificate file %s: %s", path, strerror(errno));
        return -1;
    }
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)))
        sk_X509_push(chain, x);
    ERR_clear_error();
    BIO_free(b);
    if (sk_X509_num(chain) == 0) {
        snprintf(err, cap, "no PEM certificate in %s", path);
        return -1;
    }
    return 0;
}

static bool check_chain(const char *path, STACK_OF(X509) * chain, char *err, size_t cap)
{
    X509 *leaf = sk_X509_value(chain, 0);
    if (X509_cmp_current_time(X509_get0_notAfter(leaf)) < 0) {
        char when[64] = "?";
        BIO *m = BIO_new(BIO_s_mem());
        if (m && ASN1_TIME_print(m, X509_get0_notAfter(leaf)) > 0) {
            int n = BIO_read(m, when, sizeof(when) - 1);
            when[n > 0 ? n : 0] = '\0';
        }
        BIO_free(m);
        snprintf(err, cap, "certificate in %s expired on %s", path, when);
        return false;
    }
    if (X509_cmp_current_time(X509_get0_notBefore(leaf)) > 0) {
        snprintf(err, cap, "certificate in %s is not valid yet", path);
        return false;
    }
    /* Leaf first, then each certificate issued by the next one (RFC 8446 4.4.2 allows
     * disorder, but many clients do not: refuse it where it is easy to fix). */
    for (int i = 0; i + 1 < sk_X509_num(chain); i++) {
        if (X509_check_issued(sk_X509_value(chain, i + 1), sk_X509_value(chain, i)) != X509_V_OK) {
            snprintf(err, cap,
                     "chain in %s is out of order: certificate %d was not issued by "
                     "certificate %d (put the leaf first, then each issuer)",
                     path, i + 1, i + 2);
            return false;
        }
    }
    return true;
}

static int alpn_select_cb(SSL *s, const unsigned char **out, unsigned char *outlen,
                          const unsigned char *in, unsigned int inlen, void *arg)
{
    const struct cfg *c = arg;
    unsigned char *sel = NULL;
    (void)s;

    /* Our preference order, restricted to what the routes behind us can take. */
    if (c->alpn_len && SSL_select_next_proto(&sel, outlen, c->alpn, c->alpn_len, in, inlen) ==
                           OPENSSL_NPN_NEGOTIATED) {
        *out = sel;
        return SSL_TLSEXT_ERR_OK;
    }
    return SSL_TLSEXT_ERR_NOACK; /* carry on without ALPN */
}

/* Without a callback OpenSSL would prompt for a passphrase on the terminal and block a
 * daemon (or `mux443 -t`) forever: refuse encrypted keys instead. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

bool tls_ctx_build(struct cfg_tls *t, const struct cfg *c, char *err, size_t cap, bool *bad_key)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    *bad_key = false;
    if (!ctx) {
        snprintf(err, cap, "cannot create a TLS context");
        return false;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_security_level(ctx, 2);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_IGNORE_UNEXPECTED_EOF);
    if (tls_g.ktls)
        SSL_CTX_set_options(ctx, SSL_OP_ENABLE_KTLS);
    /* Idle terminated connections keep no record buffers. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* Resumption by stateless tickets only: no per-session state on the server. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    /* Tickets are encrypted with process-wide keys: bind each session to its [tls]
     * section, or a ticket issued under one certificate would resume under another. */
    char sid[SSL_MAX_SID_CTX_LENGTH + 1];
    int sl = snprintf(sid, sizeof(sid), "mux443 tls %s", t->name);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)sid,
                                   (unsigned)(sl < (int)sizeof(sid) ? sl : (int)sizeof(sid) - 1));
    SSL_CTX_set_num_tickets(ctx, 1);
    /* Read whole socket buffers, not one record header and then its body: half the
     * recv calls in bulk. Buffered records count as pending (tls_pending). */
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select_cb, (void *)c);

    for (size_t i = 0; i < t->certs.n; i++) {
        const char *cp = t->certs.v[i], *kp = t->keys.v[i];
        STACK_OF(X509) *chain = sk_X509_new_null();
        EVP_PKEY *key = NULL;
        BIO *kb = NULL;
        bool ok = false;

        if (load_chain(cp, chain, err, cap) < 0 || !check_chain(cp, chain, err, cap))
            goto next;
        if (!(kb = BIO_new_file(kp, "r"))) {
            snprintf(err, cap, "cannot read key file %s: %s", kp, strerror(errno));
            *bad_key = true;
            goto next;
        }
        if (!(key = PEM_read_bio_PrivateKey(kb, NULL, no_passphrase, NULL))) {
            snprintf(err, cap,
                     "no usable PEM private key in %s (encrypted keys are refused: "
                     "decrypt it with openssl pkey -in KEY -out KEY.plain)",
                     kp);
            *bad_key = true;
            goto next;
        }
        X509 *leaf = sk_X509_value(chain, 0);
        if (X509_check_private_key(leaf, key) != 1) {
            snprintf(err, cap, "key %s does not match certificate %s", kp, cp);
            *bad_key = true;
            goto next;
        }
        /* RSA and ECDSA certificates for the same names share one context; OpenSSL picks
         * the one the client's signature algorithms allow. */
        if (SSL_CTX_use_certificate(ctx, leaf) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1) {
            unsigned long e = ERR_get_error();
            snprintf(err, cap, "certificate %s refused: %s", cp, ERR_reason_error_string(e));
            goto next;
        }
        for (int j = 1; j < sk_X509_num(chain); j++)
            SSL_CTX_add1_chain_cert(ctx, sk_X509_value(chain, j));
        names_from_cert(t, leaf);
        ok = true;
    next:
        ERR_clear_error();
        EVP_PKEY_free(key);
        BIO_free(kb);
        sk_X509_pop_free(chain, X509_free);
        if (!ok) {
            SSL_CTX_free(ctx);
            return false;
        }
    }
    t->ctx = ctx;
    return true;
}

void tls_ctx_free(struct cfg_tls *t)
{
    SSL_CTX_free(t->ctx);
    t->ctx = NULL;
}

const struct cfg_tls *tls_find(const struct cfg *c, const char *sni, size_t len)
{
    /* Exact names win over wildcards, whatever the order of the sections. */
    for (int pass = 0; pass < 2 && len; pass++)
        for (size_t i = 0; i < c->ntls; i++)
            for (size_t k = 0; k < c->tls[i].names.n; k++) {
                const char *n = c->tls[i].names.v[k];
                if ((n[0] == '*') == (pass == 1) && route_name_match(n, sni, len))
                    return &c->tls[i];
            }
    return c->tls_default;
}

/* ---- the transport of a terminated client leg ------------------------------------ */

struct tls_leg {
    SSL *ssl;
    BIO *replay; /* memory BIO holding the preread ClientHello; NULL once drained */
    int wants;   /* events the last WANT_READ/WANT_WRITE asked for */
};

bool tls_leg_start(struct leg *l, SSL_CTX *ctx, const uint8_t *pre, size_t n)
{
    struct tls_leg *t = calloc(1, sizeof(*t));
    if (!t || !(t->ssl = SSL_new(ctx)) || !(t->replay = BIO_new(BIO_s_mem()))) {
        if (t)
            SSL_free(t->ssl);
        free(t);
        return false;
    }
    /* The bytes already read go to OpenSSL first; then the socket (see tls_io_done). */
    BIO_write(t->replay, pre, (int)n);
    BIO_set_mem_eof_return(t->replay, -1);
    BIO *wb = BIO_new_socket(l->fd, BIO_NOCLOSE);
    SSL_set_bio(t->ssl, t->replay, wb);
    SSL_set_accept_state(t->ssl);
    l->tp = &transport_tls;
    l->tp_state = t;
    return true;
}

/* Once OpenSSL has consumed the replayed bytes, read from the socket directly (a socket
 * BIO is also what kernel TLS needs). */
static void tls_io_done(struct leg *l, struct tls_leg *t)
{
    if (t->replay && BIO_ctrl_pending(t->replay) == 0) {
        BIO *rb = BIO_new_socket(l->fd, BIO_NOCLOSE);
        if (rb) {
            SSL_set0_rbio(t->ssl, rb); /* frees the memory BIO */
            t->replay = NULL;
        }
    }
}

/* Maps an SSL result to the transport contract (errno EAGAIN + wants, or an error). */
static int tls_result(struct tls_leg *t, int r, bool reading)
{
    int e = SSL_get_error(t->ssl, r);
    t->wants = 0;
    switch (e) {
    case SSL_ERROR_WANT_READ:
        t->wants = EV_READ;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        t->wants = EV_WRITE;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        if (reading)
            return 0;
        errno = EPIPE;
        return -1;
    case SSL_ERROR_SYSCALL:
        if (errno == 0)
            errno = reading ? 0 : EPIPE;
        if (reading && errno == 0)
            return 0;
        return -1;
    default:
        errno = EPROTO;
        return -1;
    }
}

static ssize_t tls_read(struct leg *l, void *buf, size_t len)
{
    struct tls_leg *t = l->tp_state;
    size_t got = 0;
    ERR_clear_error();
    errno = 0;
    int r = SSL_read_ex(t->ssl, buf, len, &got);
    int rc = r == 1 ? (t->wants = 0, (int)got) : tls_result(t, 0, true);
    tls_io_done(l, t);
    return rc;
}

static ssize_t tls_write(struct leg *l, const void *buf, size_t len)
{
    struct tls_leg *t = l->tp_state;
    size_t put = 0;
    ERR_clear_error();
    errno = 0;
    int r = SSL_write_ex(t->ssl, buf, len, &put);
    int rc = r == 1 ? (t->wants = 0, (int)put) : tls_result(t, 0, false);
    tls_io_done(l, t);
    return rc;
}

static int tls_shutdown_wr(struct leg *l)
{
    struct tls_leg *t = l->tp_state;
    /* close_notify, then FIN. SSL_shutdown returns 0 ("sent, peer's not seen yet"): fine,
     * the peer's own close_notify or FIN arrives through the normal read path. */
    ERR_clear_error();
    SSL_shutdown(t->ssl);
    return shutdown(l->fd, SHUT_WR);
}

static void tls_release(struct leg *l)
{
    struct tls_leg *t = l->tp_state;
    if (!t)
        return;
    SSL_free(t->ssl); /* frees both BIOs */
    free(t);
    l->tp_state = NULL;
}

static int tls_wants(const struct leg *l)
{
    const struct tls_leg *t = l->tp_state;
    return t ? t->wants : 0;
}

static size_t tls_pending(const struct leg *l)
{
    const struct tls_leg *t = l->tp_state;
    /* SSL_has_pending also sees records read ahead but not decrypted yet: no socket event
     * will announce those. */
    return t && (SSL_pending(t->ssl) > 0 || SSL_has_pending(t->ssl)) ? 1 : 0;
}

const struct transport_ops transport_tls = {
    .name = "tls",
    .raw = false,
    .read = tls_read,
    .write = tls_write,
    .shutdown_wr = tls_shutdown_wr,
    .release = tls_release,
    .wants = tls_wants,
    .pending = tls_pending,
};

int tls_handshake(struct leg *l, const char **why)
{
    struct tls_leg *t = l->tp_state;
    static _Thread_local char reason[160];

    ERR_clear_error();
    errno = 0;
    int r = SSL_do_handshake(t->ssl);
    if (r == 1) {
        t->wants = 0;
        tls_io_done(l, t);
        return 1;
    }
    int e = SSL_get_error(t->ssl, r), saved = errno;
    unsigned long err = ERR_peek_error();
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        t->wants = e == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE;
        tls_io_done(l, t);
        return 0;
    }
    if (e == SSL_ERROR_SSL && err)
        snprintf(reason, sizeof(reason), "%s", ERR_reason_error_string(err));
    else if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN)
        snprintf(reason, sizeof(reason), "%s", saved ? strerror(saved) : "client closed");
    else
        snprintf(reason, sizeof(reason), "SSL error %d", e);
    *why = reason;
    ERR_clear_error();
    return -1;
}

const char *tls_leg_version(const struct leg *l)
{
    const struct tls_leg *t = l->tp_state;
    return t ? SSL_get_version(t->ssl) : "";
}

void tls_leg_alpn(const struct leg *l, char *dst, size_t cap)
{
    const struct tls_leg *t = l->tp_state;
    const unsigned char *p = NULL;
    unsigned int n = 0;
    if (t)
        SSL_get0_alpn_selected(t->ssl, &p, &n);
    log_escape(dst, cap, p, n);
}

void tls_leg_ktls(const struct leg *l, bool *tx, bool *rx)
{
    const struct tls_leg *t = l->tp_state;
    *tx = t && BIO_get_ktls_send(SSL_get_wbio(t->ssl));
    *rx = t && BIO_get_ktls_recv(SSL_get_rbio(t->ssl));
}
