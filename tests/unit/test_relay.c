/* Unit tests for the relay phase (core/relay.c): back-pressure against a client that does
 * not read, half-close in each direction, and the byte counts of the close line. A real
 * libev loop, the client end of a socketpair, a loopback backend. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "conn_harness.h"

#define CONFIG                                                                                     \
    "[mux443]\nlisten = 127.0.0.1:9\n[backend web]\nserver = 127.0.0.1:%u\n[route]\nhttp = web\n"

static const char req[] = "GET /big HTTP/1.1\r\nHost: a.test\r\n\r\n";
#define REQ_LEN (sizeof(req) - 1)

/* A connection relaying: the client's request went through; *be is the backend's end. */
static int relaying(struct harness *h, int *lw, int *be)
{
    unsigned pw;

    *lw = h_listen(&pw);
    h_init(h, CONFIG, pw);
    int cl = h_client(h, "main", 0);
    h_send(cl, req, REQ_LEN);
    *be = h_accept(h, *lw);
    char *got = malloc(REQ_LEN);
    assert_non_null(got);
    h_read(h, *be, got, REQ_LEN);
    assert_memory_equal(got, req, REQ_LEN);
    free(got);
    return cl;
}

static void assert_close_line(struct harness *h, size_t in, size_t out)
{
    char want[128], *line = h_close_line(h);
    snprintf(want, sizeof(want), "bytes_in=%zu bytes_out=%zu ", in, out);
    if (!strstr(line, want) || !strstr(line, "reason=\"done\""))
        fail_msg("expected \"%s\" and reason \"done\" in: %s", want, line);
    free(line);
}

/* ---- back-pressure ------------------------------------------------------------------ */

#define BULK (6u * 1024 * 1024)

/* The byte at offset i of the backend's stream: position-dependent, so that a lost,
 * repeated or reordered chunk shows. */
static uint8_t pattern(size_t i)
{
    return (uint8_t)(i * 31 + (i >> 11) + (i >> 19));
}

struct bulk {
    struct harness *h;
    int cl, be;
    size_t sent, got;
    bool eof;
    uint8_t chunk[64 * 1024];
};

/* The backend sends what its socket takes now. Returns the bytes sent. */
static size_t bulk_send(struct bulk *b)
{
    size_t before = b->sent;
    while (b->sent < BULK) {
        size_t n = BULK - b->sent < sizeof(b->chunk) ? BULK - b->sent : sizeof(b->chunk);
        for (size_t i = 0; i < n; i++)
            b->chunk[i] = pattern(b->sent + i);
        ssize_t w = send(b->be, b->chunk, n, MSG_NOSIGNAL);
        if (w < 0) {
            assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
            break;
        }
        b->sent += (size_t)w;
    }
    return b->sent - before;
}

/* The client reads what has arrived and checks it byte by byte. */
static void bulk_recv(struct bulk *b)
{
    uint8_t buf[64 * 1024];
    while (!b->eof) {
        ssize_t n = recv(b->cl, buf, sizeof(buf), 0);
        if (n < 0) {
            assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
            return;
        }
        b->eof = n == 0;
        for (ssize_t i = 0; i < n; i++, b->got++)
            if (buf[i] != pattern(b->got))
                fail_msg("byte %zu differs: %#x, sent %#x", b->got, buf[i], pattern(b->got));
    }
}

/* What mux443 holds of the backend's bytes: in its buffer, and in its splice pipe (a
 * kernel buffer, bounded by the pipe's size). Checked between loop iterations. */
static size_t held(const struct conn *c)
{
    const struct leg *l = &c->backend_leg;
    size_t pend = buf_unread(&l->pend);

    assert_true(pend <= RELAY_BUF);
    if (l->pipe[0] >= 0)
        assert_true(l->piped <= (size_t)fcntl(l->pipe[1], F_GETPIPE_SZ));
    else
        assert_int_equal(l->piped, 0);
    /* Read iff room: while bytes wait for the client, the backend is not read. */
    if (leg_pending(l))
        assert_false(l->want & EV_READ);
    return pend + l->piped;
}

static bool sent_all(void *arg)
{
    struct bulk *b = arg;
    bulk_recv(b);
    bulk_send(b);
    return b->sent == BULK;
}

static bool got_all(void *arg)
{
    struct bulk *b = arg;
    bulk_recv(b);
    return b->eof;
}

/* The backend sends BULK bytes while the client reads nothing: once nothing moves any
 * more, the backend is blocked (the relay stopped reading it), mux443 holds at most one
 * buffer, and every byte it read is either held or queued to the client. Then the client
 * reads: everything arrives, in order, followed by the backend's end of stream. */
static void test_backpressure(void **state)
{
    struct harness h;
    int lw, be;
    int cl = relaying(&h, &lw, &be);
    struct bulk *b = calloc(1, sizeof(*b));
    struct conn *c = h_conn(&h);
    (void)state;

    assert_non_null(b);
    *b = (struct bulk){.h = &h, .cl = cl, .be = be};
    /* A fixed send buffer (no autotuning up to megabytes): what the backend gets out
     * before it blocks is then far below BULK, unless the relay keeps reading. */
    int sndbuf = 256 * 1024;
    assert_int_equal(setsockopt(be, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)), 0);
    /* Not waiting on readiness here: the state sought is the one where nothing is ready.
     * Loopback delivers within the send call, so a few quiet iterations in a row mean
     * everything has settled. */
    unsigned quiet = 0, steps = 0;
    while (quiet < 50) {
        if (++steps > H_MAX_STEPS)
            fail_msg("the relay never settled (backend sent %zu bytes)", b->sent);
        uint64_t moved = bulk_send(b);
        uint64_t before = c->backend_leg.bytes;
        h_step(&h, EVRUN_NOWAIT);
        held(c);
        quiet = moved || c->backend_leg.bytes != before ? 0 : quiet + 1;
    }
    int queued = 0;
    assert_int_equal(ioctl(cl, FIONREAD, &queued), 0);
    print_message("settled: backend sent %zu, mux443 read %llu, holds %zu, client queue %d\n",
                  b->sent, (unsigned long long)c->backend_leg.bytes, held(c), queued);
    assert_true(b->sent < BULK);               /* the backend was stopped ... */
    assert_true(leg_pending(&c->backend_leg)); /* ... by mux443 holding bytes back */
    assert_false(c->backend_leg.want & EV_READ);
    assert_int_equal(c->backend_leg.bytes, (uint64_t)queued + held(c));
    assert_int_equal(b->got, 0);

    h_watch(&h, cl, EV_READ);
    h_watch(&h, be, EV_WRITE);
    h_run(&h, sent_all, b, "the backend's bulk sent while the client reads");
    assert_int_equal(shutdown(be, SHUT_WR), 0);
    h_watch(&h, cl, EV_READ);
    h_run(&h, got_all, b, "the rest of the bulk and end of stream at the client");
    assert_int_equal(b->got, BULK);

    close(cl);
    h_read_eof(&h, be);
    h_wait_closed(&h);
    assert_close_line(&h, REQ_LEN, BULK);
    close(be);
    free(b);
    h_fini(&h);
    close(lw);
}

/* ---- half-close --------------------------------------------------------------------- */

/* The client ends its side first: the backend sees end of stream after the request and
 * can still answer. */
static void test_half_close_client_first(void **state)
{
    static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlate";
    struct harness h;
    int lw, be;
    int cl = relaying(&h, &lw, &be);
    (void)state;

    assert_int_equal(shutdown(cl, SHUT_WR), 0);
    h_read_eof(&h, be);
    assert_int_equal(h.pool.nconns, 1); /* the other direction is still open */
    h_pass(&h, be, cl, answer, sizeof(answer) - 1);
    assert_int_equal(shutdown(be, SHUT_WR), 0);
    h_read_eof(&h, cl);
    h_wait_closed(&h);
    assert_close_line(&h, REQ_LEN, sizeof(answer) - 1);
    close(cl);
    close(be);
    h_fini(&h);
    close(lw);
}

/* The backend ends its side first: the client sees end of stream and can still send. */
static void test_half_close_backend_first(void **state)
{
    static const char first[] = "HTTP/1.1 100 Continue\r\n\r\n", more[] = "the request body";
    struct harness h;
    int lw, be;
    int cl = relaying(&h, &lw, &be);
    (void)state;

    h_pass(&h, be, cl, first, sizeof(first) - 1);
    assert_int_equal(shutdown(be, SHUT_WR), 0);
    h_read_eof(&h, cl);
    assert_int_equal(h.pool.nconns, 1);
    h_pass(&h, cl, be, more, sizeof(more) - 1);
    assert_int_equal(shutdown(cl, SHUT_WR), 0);
    h_read_eof(&h, be);
    h_wait_closed(&h);
    assert_close_line(&h, REQ_LEN + sizeof(more) - 1, sizeof(first) - 1);
    close(cl);
    close(be);
    h_fini(&h);
    close(lw);
}

/* ---- TLS half-close with a full socket ---------------------------------------------- */

/* A self-signed ECDSA certificate and its key, in files under dir. */
static void make_cert(const char *dir, char *cert, char *key, size_t cap)
{
    EVP_PKEY *pk = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    assert_non_null(pk);
    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, pk);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"relay.test", -1,
                               -1, 0);
    X509_set_issuer_name(x, name);
    assert_true(X509_sign(x, pk, EVP_sha256()) > 0);
    snprintf(cert, cap, "%s/cert.pem", dir);
    snprintf(key, cap, "%s/key.pem", dir);
    FILE *cf = fopen(cert, "w"), *kf = fopen(key, "w");
    assert_non_null(cf);
    assert_non_null(kf);
    assert_true(PEM_write_X509(cf, x));
    assert_true(PEM_write_PrivateKey(kf, pk, NULL, NULL, 0, NULL, NULL));
    fclose(cf);
    fclose(kf);
    X509_free(x);
    EVP_PKEY_free(pk);
}

struct tls_client {
    SSL *ssl;
    size_t got;
    int end; /* SSL_get_error of the read that ended the stream, 0 while open */
};

static bool handshake_done(void *arg)
{
    struct tls_client *t = arg;
    int r = SSL_do_handshake(t->ssl);
    if (r == 1)
        return true;
    int e = SSL_get_error(t->ssl, r);
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
        fail_msg("client handshake: SSL error %d", e);
    return false;
}

/* Reads everything until the stream ends, one way or the other. */
static bool tls_stream_ended(void *arg)
{
    struct tls_client *t = arg;
    uint8_t buf[16384];
    for (;;) {
        int r = SSL_read(t->ssl, buf, sizeof(buf));
        if (r > 0) {
            t->got += (size_t)r;
            continue;
        }
        int e = SSL_get_error(t->ssl, r);
        if (e == SSL_ERROR_WANT_READ)
            return false;
        t->end = e;
        ERR_clear_error();
        return true;
    }
}

struct sent_wait {
    const struct conn *c;
    size_t sent;
};

/* What the backend sent has been read and handed to TLS in full. */
static bool relayed(void *arg)
{
    const struct sent_wait *w = arg;
    return w->c->backend_leg.bytes == w->sent && !leg_pending(&w->c->backend_leg);
}

static bool backend_eof_seen(void *arg)
{
    return ((const struct conn *)arg)->backend_leg.rd_eof;
}

/* The backend sends records' worth of data until mux443's socket to the client is full
 * (the client reads nothing), then closes. The client then reads: it must get every byte
 * and then close_notify, a clean TLS end of stream.
 * Regression (fixed in 9a70af1): the half-close called SSL_shutdown and then
 * shutdown(SHUT_WR) at once; with the socket full, close_notify stayed in OpenSSL's
 * buffer and the FIN overtook it: the client saw a truncated stream. (Checked by putting
 * the old tls_shutdown_wr back locally: the client ends with SSL_ERROR_SSL, unexpected
 * EOF.) A Unix socket makes "full" exact: a write fails once the bytes queued reach
 * SO_SNDBUF, whereas TCP still appends a short alert to its last unsent segment. */
static void test_tls_half_close_full_socket(void **state)
{
    char dir[] = "/tmp/mux443-test-relay.XXXXXX", cert[64], key[64];
    struct harness h;
    unsigned pw;
    int lw = h_listen(&pw);
    (void)state;

    assert_non_null(mkdtemp(dir));
    make_cert(dir, cert, key, sizeof(cert));
    h_init(&h,
           "[mux443]\nlisten = 127.0.0.1:9\n[tls]\ncert = %s\nkey = %s\n"
           "[backend web]\nserver = 127.0.0.1:%u\n[route]\nhttp = web\n",
           cert, key, pw);
    /* 32 KiB: the kernel makes it 64 KiB, and a 16 KiB record goes out in one piece. */
    int cl = h_client(&h, "main", 32 * 1024);
    struct conn *c = h_conn(&h);
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(ctx);
    struct tls_client t = {.ssl = SSL_new(ctx)};
    assert_non_null(t.ssl);
    SSL_set_fd(t.ssl, cl);
    SSL_set_connect_state(t.ssl);
    h_watch(&h, cl, EV_READ);
    h_run(&h, handshake_done, &t, "the client's TLS handshake");
    assert_int_equal(SSL_write(t.ssl, req, REQ_LEN), REQ_LEN);
    int be = h_accept(&h, lw);
    char got[REQ_LEN];
    h_read(&h, be, got, REQ_LEN);
    assert_memory_equal(got, req, REQ_LEN);
    assert_true(c->terminated);

    /* One TLS record at a time, until mux443's socket to the client is full. */
    int sndbuf = 0, queued = 0;
    socklen_t sl = sizeof(sndbuf);
    uint8_t record[16384];
    size_t sent = 0;
    memset(record, 'r', sizeof(record));
    assert_int_equal(getsockopt(c->client.tp.fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &sl), 0);
    for (;;) {
        assert_int_equal(ioctl(c->client.tp.fd, SIOCOUTQ, &queued), 0);
        if (queued >= sndbuf)
            break;
        assert_true(sent < 16 * sizeof(record));
        h_send(be, record, sizeof(record));
        sent += sizeof(record);
        h_run(&h, relayed, &(struct sent_wait){c, sent}, "a record's worth relayed");
    }
    close(be);
    h_run(&h, backend_eof_seen, c, "the backend's end of stream");
    /* The FIN waits for close_notify, which waits for room. */
    assert_false(c->client.wr_shut);

    h_watch(&h, cl, EV_READ);
    h_run(&h, tls_stream_ended, &t, "the client's end of stream");
    if (t.end != SSL_ERROR_ZERO_RETURN)
        fail_msg("after %zu of %zu bytes the stream ended without close_notify (SSL error %d)",
                 t.got, sent, t.end);
    assert_int_equal(t.got, sent);

    SSL_free(t.ssl);
    SSL_CTX_free(ctx);
    close(cl);
    h_wait_closed(&h);
    assert_close_line(&h, REQ_LEN, sent);
    h_fini(&h);
    close(lw);
    unlink(cert);
    unlink(key);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backpressure),
        cmocka_unit_test(test_half_close_client_first),
        cmocka_unit_test(test_half_close_backend_first),
        cmocka_unit_test(test_tls_half_close_full_socket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
