/* The TLS transport: SSL_read/SSL_write behind the transport ops, the handshake, and a
 * half-close that never lets the FIN overtake close_notify. */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>

#include "mux443/lib/log.h"
#include "mux443/tls/tls_conn.h"
#include "mux443/tls/tls_ctx.h"

/* t->state is the SSL object; t->flags holds the rest, no allocation of its own:
 * the TP_WANT_* the last WANT_READ/WANT_WRITE asked for, and: */
enum {
    TLS_WANTS = TP_WANT_READ | TP_WANT_WRITE,
    TLS_CLOSE_SENT = 4, /* close_notify is out of OpenSSL's buffer */
    TLS_TRUNCATED = 8,  /* the client's EOF came without close_notify */
};
static void set_wants(struct transport *t, unsigned w)
{
    t->flags = (uint16_t)((t->flags & ~(unsigned)TLS_WANTS) | w);
}

/* ---- the worker's socket BIO -------------------------------------------------------
 * A BIO costs ~200 bytes (the object and its lock) for as long as a connection lives, 1.3 %
 * of an idle terminated connection. OpenSSL only touches its BIOs inside the SSL_* calls
 * this file makes, one connection at a time per thread, and keeps nothing in a socket BIO
 * between calls but its retry and EOF flags, which the same call reads back. So every
 * connection of a worker thread shares one BIO, pointed at the connection's socket for the
 * duration of each call (sock_fd); the flags are set again by each read and write. Kernel
 * TLS needs OpenSSL's own socket BIO (it hands the keys to that socket): with kTLS
 * available, each connection has its own. */
static _Thread_local int sock_fd = -1;
static _Thread_local bool sock_eof;
static _Thread_local BIO *sock_bio;
static BIO_METHOD *sock_method;
static pthread_key_t sock_key;
static pthread_once_t sock_once = PTHREAD_ONCE_INIT;

static int sock_read(BIO *b, char *buf, int len)
{
    ssize_t n;
    BIO_clear_retry_flags(b);
    do
        n = recv(sock_fd, buf, (size_t)len, 0);
    while (n < 0 && errno == EINTR);
    sock_eof = n == 0;
    /* A retry means the socket answered EAGAIN (the edge-triggered readiness relies on
     * it, lib/transport.h). */
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        BIO_set_retry_read(b);
    return (int)n;
}

static int sock_write(BIO *b, const char *buf, int len)
{
    ssize_t n;
    BIO_clear_retry_flags(b);
    do
        n = send(sock_fd, buf, (size_t)len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        BIO_set_retry_write(b);
    return (int)n;
}

static long sock_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_EOF: /* asked right after the read that saw it */
        return sock_eof;
    default:
        return 0;
    }
}

static void sock_thread_done(void *bio)
{
    BIO_free(bio);
}

static void sock_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "mux443 socket");
    if (m && BIO_meth_set_read(m, sock_read) && BIO_meth_set_write(m, sock_write) &&
        BIO_meth_set_ctrl(m, sock_ctrl) && pthread_key_create(&sock_key, sock_thread_done) == 0)
        sock_method = m;
    else
        BIO_meth_free(m);
}

/* This thread's shared BIO with one more reference for the caller, or NULL. */
static BIO *sock_bio_get(void)
{
    if (!sock_bio) {
        pthread_once(&sock_once, sock_init);
        if (!sock_method || !(sock_bio = BIO_new(sock_method)))
            return NULL;
        BIO_set_init(sock_bio, 1);
        pthread_setspecific(sock_key, sock_bio); /* freed when the thread ends */
    }
    return BIO_up_ref(sock_bio) ? sock_bio : NULL;
}

/* Before each SSL_* call that may read or write: the socket the shared BIO stands for. */
static inline void sock_point(const struct transport *t)
{
    sock_fd = t->fd;
    sock_eof = false; /* no read of this call has seen the FIN yet */
}

bool tls_conn_start(struct transport *t, SSL_CTX *ctx, const uint8_t *pre, size_t n)
{
    SSL *ssl = SSL_new(ctx);
    BIO *replay = NULL, *wb = NULL;
    if (!ssl || !(replay = BIO_new(BIO_s_mem())) ||
        !(wb = tls_ktls_available() ? BIO_new_socket(t->fd, BIO_NOCLOSE) : sock_bio_get())) {
        BIO_free(replay);
        SSL_free(ssl);
        return false;
    }
    /* The bytes already read go to OpenSSL first; then the socket (see io_done). */
    BIO_write(replay, pre, (int)n);
    BIO_set_mem_eof_return(replay, -1);
    SSL_set_bio(ssl, replay, wb);
    SSL_set_accept_state(ssl);
    t->ops = &transport_tls;
    t->state = ssl;
    t->flags = 0; /* TLS's own; the socket's readiness stays */
    return true;
}

/* Until OpenSSL has consumed the replayed bytes, it reads them from a memory BIO (its
 * rbio is not its wbio): then a WANT_READ says nothing about the socket. */
static bool replaying(SSL *ssl)
{
    return SSL_get_rbio(ssl) != SSL_get_wbio(ssl);
}

/* Once the replayed bytes are consumed, OpenSSL reads the socket directly, through the
 * BIO it writes to (one BIO for both ways, as SSL_set_fd makes). */
static void io_done(SSL *ssl)
{
    BIO *wb = SSL_get_wbio(ssl);
    if (replaying(ssl) && BIO_ctrl_pending(SSL_get_rbio(ssl)) == 0 && BIO_up_ref(wb))
        SSL_set0_rbio(ssl, wb); /* frees the memory BIO */
}

/* The socket's readiness after OpenSSL asked for more (e = SSL_ERROR_WANT_*): it answered
 * EAGAIN, unless the call read from the replayed bytes (`replayed`, asked before it). */
static void tls_unready(struct transport *t, int e, bool replayed)
{
    if (e == SSL_ERROR_WANT_WRITE)
        t->ready &= (uint8_t)~TP_WANT_WRITE;
    else if (e == SSL_ERROR_WANT_READ && !replayed)
        t->ready &= (uint8_t)~TP_WANT_READ;
}

/* Maps an SSL result to the transport contract (errno EAGAIN + wants, or an error). */
static int tls_result(struct transport *t, int r, bool reading, bool replayed)
{
    int e = SSL_get_error(t->state, r);
    set_wants(t, 0);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        set_wants(t, TP_WANT_READ);
        tls_unready(t, e, replayed);
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        set_wants(t, TP_WANT_WRITE);
        tls_unready(t, e, replayed);
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        if (!reading) {
            errno = EPIPE;
            return -1;
        }
        /* The end of the client's stream: its close_notify, or (SSL_OP_IGNORE_UNEXPECTED_EOF,
         * tls_ctx.c) a FIN without it, which this call's read of the socket answered with
         * 0. OpenSSL stops reading at a close_notify, so a clean end never reaches the
         * FIN within the same call. Remembered so that the relay counts and logs it. */
        if (!replayed && BIO_eof(SSL_get_rbio(t->state)))
            t->flags |= TLS_TRUNCATED;
        return 0;
    case SSL_ERROR_SYSCALL:
        if (errno == 0)
            errno = reading ? 0 : EPIPE;
        if (reading && errno == 0)
            return 0;
        return -1;
    case SSL_ERROR_SSL:
        errno = EPROTO;
        return -1;
    default:
        errno = EPROTO;
        return -1;
    }
}

static ssize_t tls_read(struct transport *t, void *buf, size_t len)
{
    size_t got = 0;
    bool replayed = replaying(t->state);
    ERR_clear_error();
    errno = 0;
    sock_point(t);
    int r = SSL_read_ex(t->state, buf, len, &got);
    int rc = r == 1 ? (set_wants(t, 0), (int)got) : tls_result(t, 0, true, replayed);
    io_done(t->state);
    return rc;
}

static ssize_t tls_write(struct transport *t, const void *buf, size_t len)
{
    size_t put = 0;
    bool replayed = replaying(t->state);
    ERR_clear_error();
    errno = 0;
    sock_point(t);
    int r = SSL_write_ex(t->state, buf, len, &put);
    int rc = r == 1 ? (set_wants(t, 0), (int)put) : tls_result(t, 0, false, replayed);
    io_done(t->state);
    return rc;
}

static int tls_shutdown_wr(struct transport *t)
{
    /* close_notify, then FIN. When the socket is full, SSL_shutdown keeps the alert in
     * its buffer and asks to be called again: the FIN must wait, or it would end the
     * stream before the alert and the client would see a truncated stream. A return of
     * 0 ("sent, the peer's not seen yet") is fine: the peer's own close_notify or FIN
     * arrives through the normal read path. */
    if (!(t->flags & TLS_CLOSE_SENT)) {
        ERR_clear_error();
        errno = 0;
        bool replayed = replaying(t->state);
        sock_point(t);
        int r = SSL_shutdown(t->state);
        if (r < 0) {
            int rc = tls_result(t, r, false, replayed);
            if (errno == EAGAIN)
                return rc;
            /* Any other failure: the peer is gone or broke the protocol; the FIN below
             * still ends the stream. */
        }
        set_wants(t, 0);
        t->flags |= TLS_CLOSE_SENT;
    }
    return shutdown(t->fd, SHUT_WR);
}

static void tls_release(struct transport *t)
{
    SSL_free(t->state); /* frees both BIOs (SSL_free(NULL) is a no-op) */
    t->state = NULL;
}

static int tls_wants(const struct transport *t)
{
    return t->state ? (int)(t->flags & TLS_WANTS) : 0;
}

static bool tls_pending(const struct transport *t)
{
    const SSL *ssl = t->state;
    /* SSL_has_pending also sees records read ahead but not decrypted yet: no socket event
     * will announce those. */
    return ssl && (SSL_pending(ssl) > 0 || SSL_has_pending(ssl));
}

const struct transport_ops transport_tls = {
    .raw = false,
    .read = tls_read,
    .write = tls_write,
    .shutdown_wr = tls_shutdown_wr,
    .release = tls_release,
    .wants = tls_wants,
    .pending = tls_pending,
};

bool tls_conn_truncated(const struct transport *t)
{
    return t->ops == &transport_tls && t->state && (t->flags & TLS_TRUNCATED);
}

/* The class of a failed handshake's error. */
static enum tls_fail fail_kind(int e, unsigned long err)
{
    if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN)
        return TLS_FAIL_CLOSED;
    switch (ERR_GET_REASON(err)) {
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_VERSION_TOO_LOW:
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
        return TLS_FAIL_PROTOCOL_VERSION;
    case SSL_R_NO_SHARED_CIPHER:
    case SSL_R_NO_SHARED_GROUPS:
    case SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM:
    case SSL_R_NO_CIPHERS_AVAILABLE:
        return TLS_FAIL_NO_SHARED_CIPHER;
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
        return TLS_FAIL_CERTIFICATE;
    default:
        return TLS_FAIL_OTHER;
    }
}

int tls_conn_handshake(struct transport *t, const char **why, enum tls_fail *kind)
{
    SSL *ssl = t->state;
    static _Thread_local char reason[160];
    bool replayed = replaying(ssl);

    ERR_clear_error();
    errno = 0;
    sock_point(t);
    int r = SSL_do_handshake(ssl);
    if (r == 1) {
        set_wants(t, 0);
        io_done(ssl);
        return 1;
    }
    int e = SSL_get_error(ssl, r), saved = errno;
    unsigned long err = ERR_peek_error();
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        set_wants(t, e == SSL_ERROR_WANT_READ ? TP_WANT_READ : TP_WANT_WRITE);
        tls_unready(t, e, replayed);
        io_done(ssl);
        return 0;
    }
    if (e == SSL_ERROR_SSL && err)
        snprintf(reason, sizeof(reason), "%s", ERR_reason_error_string(err));
    else if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN)
        snprintf(reason, sizeof(reason), "%s", saved ? strerror(saved) : "client closed");
    else
        snprintf(reason, sizeof(reason), "SSL error %d", e);
    *why = reason;
    *kind = fail_kind(e, err);
    ERR_clear_error();
    return -1;
}

const char *tls_conn_version(const struct transport *t)
{
    return t->state ? SSL_get_version(t->state) : "";
}

void tls_conn_alpn(const struct transport *t, char *dst, size_t cap)
{
    const unsigned char *p = NULL;
    unsigned int n = 0;
    if (t->state)
        SSL_get0_alpn_selected(t->state, &p, &n);
    log_escape(dst, cap, p, n);
}

void tls_conn_ktls(const struct transport *t, bool *tx, bool *rx)
{
    SSL *ssl = t->state;
    *tx = ssl && BIO_get_ktls_send(SSL_get_wbio(ssl));
    *rx = ssl && BIO_get_ktls_recv(SSL_get_rbio(ssl));
}
