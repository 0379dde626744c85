/* TLS contexts: the certificates and keys of a [tls] section, checked (mux443 -t, and
 * every load) and built into an SSL_CTX with mux443's policy: versions, options, ALPN
 * selection limited to what the routes take, tickets, read-ahead. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "mux443/lib/log.h"
#include "mux443/tls/ticket.h"
#include "mux443/tls/tls_ctx.h"

static bool ktls;

bool tls_global_init(void)
{
    char ulp[256] = "";
    FILE *f;

    /* Kernel TLS needs the "tls" TCP upper-layer protocol (module tls). */
    if ((f = fopen("/proc/sys/net/ipv4/tcp_available_ulp", "r"))) {
        if (!fgets(ulp, sizeof(ulp), f))
            ulp[0] = '\0';
        fclose(f);
    }
    ktls = strstr(ulp, "tls") != NULL;
    return ticket_init();
}

bool tls_ktls_available(void)
{
    return ktls;
}

/* ---- certificates -------------------------------------------------------------- */

static void names_from_cert(struct cfg_strlist *names, X509 *x)
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
        cfg_strlist_add(names, buf);
        found++;
    }
    GENERAL_NAMES_free(san);
    /* RFC 6125: the CN counts only when there is no DNS SAN at all. */
    if (!found &&
        X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, buf, sizeof(buf)) > 0)
        cfg_strlist_add(names, buf);
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
    if (c && c->alpn_len &&
        SSL_select_next_proto(&sel, outlen, c->alpn, c->alpn_len, in, inlen) ==
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

/* Applies mux443's TLS policy to a new context: the section's versions and suites
 * (checked: a list OpenSSL refuses, or one that leaves no suite, fails with *bad_key set
 * to its key). A truncated stream (EOF without close_notify) ends the client's half like a
 * close_notify (SSL_OP_IGNORE_UNEXPECTED_EOF): without it OpenSSL would put the connection
 * in its fatal state, and the backend's answer to a request that ended with a bare FIN
 * could not be written. tls_conn.c still tells the two apart, and the relay counts and
 * logs the truncated ones. */
static SSL_CTX *ctx_new(const struct cfg *c, const struct cfg_tls *t, char *err, size_t cap,
                        const char **bad_key)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        snprintf(err, cap, "cannot create a TLS context");
        *bad_key = "cert";
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, t->min_version ? TLS1_3_VERSION : TLS1_2_VERSION);
    SSL_CTX_set_security_level(ctx, 2);
    const char *ciphers = t->ciphers ? t->ciphers : CFG_TLS12_CIPHERS;
    if (SSL_CTX_set_cipher_list(ctx, ciphers) != 1) {
        snprintf(err, cap, "no usable TLS 1.2 cipher in '%s' (OpenSSL cipher list syntax)",
                 ciphers);
        *bad_key = "ciphers";
        goto bad;
    }
    if (t->ciphersuites && SSL_CTX_set_ciphersuites(ctx, t->ciphersuites) != 1) {
        snprintf(err, cap, "no usable TLS 1.3 suite in '%s' (e.g. TLS_AES_128_GCM_SHA256)",
                 t->ciphersuites);
        *bad_key = "ciphersuites";
        goto bad;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_IGNORE_UNEXPECTED_EOF);
    if (ktls)
        SSL_CTX_set_options(ctx, SSL_OP_ENABLE_KTLS);
    /* Idle terminated connections keep no record buffers. The chain sent is the one the
     * certificate file holds (fullchain.pem): without NO_AUTO_CHAIN, OpenSSL would build
     * one for every handshake of a leaf-only file (X509_verify_cert against a store mux443
     * never fills: the same leaf alone, for ~1,600 instructions and an error queue). */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_NO_AUTO_CHAIN);
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
     * recv calls in bulk. Buffered records count as pending (tls_conn.c). */
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select_cb, (void *)c);
    return ctx;
bad:
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
}

/* Loads each certificate chain and key of t, checks them, and installs them into ctx
 * (when not NULL) or fills t->names (when names is set). */
static bool load_section(const struct cfg_tls *t, SSL_CTX *ctx, struct cfg_strlist *names,
                         char *err, size_t cap, const char **bad_key)
{
    *bad_key = "cert";
    for (size_t i = 0; i < t->certs.n; i++) {
        const char *cp = t->certs.v[i], *kp = t->keys.v[i];
        STACK_OF(X509) *chain = sk_X509_new_null();
        EVP_PKEY *key = NULL;
        BIO *kb = NULL;
        bool ok = false;

        if (!chain) {
            snprintf(err, cap, "out of memory");
            return false;
        }
        if (load_chain(cp, chain, err, cap) < 0 || !check_chain(cp, chain, err, cap))
            goto next;
        if (!(kb = BIO_new_file(kp, "r"))) {
            snprintf(err, cap, "cannot read key file %s: %s", kp, strerror(errno));
            *bad_key = "key";
            goto next;
        }
        if (!(key = PEM_read_bio_PrivateKey(kb, NULL, no_passphrase, NULL))) {
            snprintf(err, cap,
                     "no usable PEM private key in %s (encrypted keys are refused: "
                     "decrypt it with openssl pkey -in KEY -out KEY.plain)",
                     kp);
            *bad_key = "key";
            goto next;
        }
        X509 *leaf = sk_X509_value(chain, 0);
        if (X509_check_private_key(leaf, key) != 1) {
            snprintf(err, cap, "key %s does not match certificate %s", kp, cp);
            *bad_key = "key";
            goto next;
        }
        /* RSA and ECDSA certificates for the same names share one context; OpenSSL picks
         * the one the client's signature algorithms allow. */
        if (ctx) {
            if (SSL_CTX_use_certificate(ctx, leaf) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1) {
                unsigned long e = ERR_get_error();
                snprintf(err, cap, "certificate %s refused: %s", cp, ERR_reason_error_string(e));
                goto next;
            }
            for (int j = 1; j < sk_X509_num(chain); j++)
                SSL_CTX_add1_chain_cert(ctx, sk_X509_value(chain, j));
        }
        if (names)
            names_from_cert(names, leaf);
        ok = true;
    next:
        ERR_clear_error();
        EVP_PKEY_free(key);
        BIO_free(kb);
        sk_X509_pop_free(chain, X509_free);
        if (!ok)
            return false;
    }
    return true;
}

bool tls_check_section(struct cfg_tls *t, char *err, size_t cap, const char **bad_key)
{
    /* A throw-away context: SSL_CTX_use_PrivateKey also refuses keys the policy does not
     * allow (e.g. too short for security level 2), which -t must report too. */
    SSL_CTX *ctx = ctx_new(NULL, t, err, cap, bad_key);
    if (!ctx)
        return false;
    bool ok = load_section(t, ctx, &t->names, err, cap, bad_key);
    SSL_CTX_free(ctx);
    return ok;
}

SSL_CTX *tls_ctx_new(const struct cfg *c, const struct cfg_tls *t, char *err, size_t cap)
{
    const char *bad_key;
    SSL_CTX *ctx = ctx_new(c, t, err, cap, &bad_key);
    if (!ctx)
        return NULL;
    if (!load_section(t, ctx, NULL, err, cap, &bad_key)) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}
