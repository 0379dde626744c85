/* mux443 benchmark: load generator and tiny backends in one binary (epoll, OpenSSL).
 *
 *   loadgen serve [--cert F --key F] MODE:PORT[:ARG] ...    backends (one thread, epoll)
 *       sink      read and discard (splice to /dev/null) until EOF
 *       echo      write back everything
 *       reply:N   on the first bytes: send N bytes, then discard until the client closes
 *       rs:N      on the first bytes: send N bytes, then sink until EOF (reply-then-sink)
 *       stun      answer a STUN request with a Binding success response (client closes)
 *       ice:TAG   the same inside RFC 4571 framing; TAG (one letter) in a SOFTWARE attribute
 *       tls-rs:N  bare OpenSSL server: TLS handshake, then rs:N on the plain text
 *       udpecho   UDP: every datagram back to its sender (recvmmsg/sendmmsg)
 *
 *   loadgen SCENARIO --port P [options]          one measurement, prints key=value on stdout
 *       bulk   --proto ch|tls --conns C --bytes B       MB/s (ch: ClientHello then plain bytes)
 *       short  --proto ch|tls|stun|ice --conns C --secs S   conn/s, latency percentiles
 *       idle   --proto ch|tls --conns N [--hold S]       RSS of --pids before/after N idle conns
 *       --raw (with --proto tls): the first plain-text message is binary, not HTTP, so a
 *              terminating proxy's generic path is measured (mux443: tls_default)
 *       ping   --count N --size 64                       ping-pong RTT through an echo backend
 *       trickle --proto http|ch --size B [--seg N --rate R] --conns C --secs S
 *              a B-byte first flight (HTTP request head, or ClientHello padded to B) sent
 *              at once for S s, then N bytes per send() at R sends/s in all for 2S s (and
 *              a B/4 flight so for S s): proxy CPU per KiB of first flight, trickled / at
 *              once, and how it grows with the flight's size
 *       stat                                             RSS and descriptors of --pids
 *       udp    --conns F --secs S [--gap MS]              F UDP flows (connected sockets),
 *              each opened by a STUN Binding request with USERNAME "bnch0000:cli" (routed
 *              by ufrag), then 200-byte RTP-like datagrams through a udpecho backend: one
 *              in flight per flow (closed loop: datagrams relayed per second, and per
 *              second of proxy CPU), or with --gap the next one MS after each answer
 *              (paced: round-trip p50/p99)
 *   serve with LOADGEN_FASTOPEN set in the environment: listeners accept TCP Fast Open
 *   common: --host 127.0.0.1 --sni NAME --pids P1,P2 (proxy tree: CPU and RSS read from /proc)
 *           --bpids P (backends: CPU) --expect N (reply bytes) --warm S
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define BUFSZ (256 * 1024)
static uint8_t scratch[BUFSZ];
static int ep;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    perror(what);
    exit(2);
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void ep_set(int fd, uint32_t ev, void *ptr, int op)
{
    struct epoll_event e = {.events = ev, .data.ptr = ptr};
    if (epoll_ctl(ep, op, fd, &e) < 0 && op != EPOLL_CTL_DEL)
        die("epoll_ctl");
}

/* ---- /proc readings for the process tree under test ------------------------------- */

static int npids;
static int pids[64];
static int nbpids;
static int bpids[64];

static void parse_pids(const char *s, int *v, int *n)
{
    *n = 0;
    while (s && *s && *n < 64) {
        v[(*n)++] = atoi(s);
        s = strchr(s, ',');
        if (s)
            s++;
    }
}

static double cpu_of(const int *v, int n)
{
    double t = 0;
    long hz = sysconf(_SC_CLK_TCK);
    for (int i = 0; i < n; i++) {
        char path[64], buf[1024];
        snprintf(path, sizeof(path), "/proc/%d/stat", v[i]);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t len = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[len] = 0;
        char *p = strrchr(buf, ')');
        if (!p)
            continue;
        unsigned long ut = 0, st = 0;
        /* after ") ": state(3) ... utime is field 14, stime 15 */
        if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2)
            t += (double)(ut + st) / (double)hz;
    }
    return t;
}

static long rss_kib(void)
{
    long t = 0;
    for (int i = 0; i < npids; i++) {
        char path[64], line[256];
        snprintf(path, sizeof(path), "/proc/%d/status", pids[i]);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        while (fgets(line, sizeof(line), f))
            if (strncmp(line, "VmRSS:", 6) == 0)
                t += atol(line + 6);
        fclose(f);
    }
    return t;
}

static long nfds(void)
{
    long t = 0;
    for (int i = 0; i < npids; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/fd", pids[i]);
        FILE *f = NULL;
        (void)f;
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "ls %s 2>/dev/null | wc -l", path);
        FILE *p = popen(cmd, "r");
        if (p) {
            long n = 0;
            if (fscanf(p, "%ld", &n) == 1)
                t += n;
            pclose(p);
        }
    }
    return t;
}

/* CPU time of the whole machine (all cores), from /proc/stat. all = false: process time
 * only (user + nice + system, as in /proc/PID/stat): what is not the proxy, the generator
 * or the backends is interference from other work. all = true: with interrupt and
 * softirq time too, where splice, sockmap and most loopback packet processing run: the
 * honest cost of a unit of work, wherever the proxy moved it. */
static double machine_time(bool all)
{
    unsigned long long v[8] = {0};
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return 0;
    int k = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (k < 7)
        return 0;
    /* user + nice + system: process time only, as in /proc/PID/stat (interrupt and
     * softirq time, i.e. most loopback packet processing, is counted apart) */
    return (double)(v[0] + v[1] + v[2] + (all ? v[5] + v[6] : 0)) / (double)sysconf(_SC_CLK_TCK);
}
static double machine_busy(void)
{
    return machine_time(false);
}
static double busy0, all0;
static void machine_mark(void)
{
    busy0 = machine_busy();
    all0 = machine_time(true);
}

static double self_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* ---- first flights ------------------------------------------------------------------ */

static uint8_t hello[2048];
static size_t hello_len;
static SSL_CTX *cctx;

/* A real ClientHello from OpenSSL for `sni` (for passthrough: the proxy only reads it). */
static void make_hello(const char *sni)
{
    SSL *s = SSL_new(cctx);
    BIO *r = BIO_new(BIO_s_mem()), *w = BIO_new(BIO_s_mem());
    SSL_set_bio(s, r, w);
    SSL_set_tlsext_host_name(s, sni);
    SSL_set_connect_state(s);
    SSL_do_handshake(s);
    int n = BIO_read(w, hello, sizeof(hello));
    if (n <= 0)
        die("ClientHello");
    hello_len = (size_t)n;
    SSL_free(s);
}

static void client_ctx(void)
{
    cctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(cctx, TLS1_3_VERSION);
    SSL_CTX_set_ciphersuites(cctx, "TLS_AES_128_GCM_SHA256");
    SSL_CTX_set1_groups_list(cctx, "X25519:P-256");
    SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_session_cache_mode(cctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(cctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_mode(cctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
}

static const uint8_t cookie[4] = {0x21, 0x12, 0xa4, 0x42};

/* Appends a STUN attribute (type, len bytes of val, zero padding to 4) at m + *n. */
static void put_attr(uint8_t *m, size_t *n, uint16_t type, const void *val, size_t len)
{
    size_t padded = (len + 3) & ~(size_t)3;
    m[*n] = (uint8_t)(type >> 8);
    m[*n + 1] = (uint8_t)type;
    m[*n + 2] = (uint8_t)(len >> 8);
    m[*n + 3] = (uint8_t)len;
    memset(m + *n + 4, 0, padded);
    memcpy(m + *n + 4, val, len);
    *n += 4 + padded;
}

/* STUN Binding request (optionally in RFC 4571 framing with an ICE USERNAME). */
static size_t make_stun(uint8_t *b, bool ice, const char *ufrag, uint32_t seq)
{
    uint8_t *m = ice ? b + 2 : b;
    size_t n = 20;
    memset(m, 0, 20);
    m[1] = 0x01;
    memcpy(m + 4, cookie, 4);
    memcpy(m + 8, &seq, 4);
    memcpy(m + 12, "benchtxid", 8);
    if (ice) {
        char user[64];
        uint8_t fill[20];
        int ul = snprintf(user, sizeof(user), "%s:peerufrag", ufrag);
        put_attr(m, &n, 0x0006, user, (size_t)ul); /* USERNAME */
        /* PRIORITY, MESSAGE-INTEGRITY (not checked by a router), FINGERPRINT */
        put_attr(m, &n, 0x0024, memset(fill, 0x6e, 4), 4);
        put_attr(m, &n, 0x0008, memset(fill, 0xab, 20), 20);
        put_attr(m, &n, 0x8028, memset(fill, 0x5a, 4), 4);
    } else {
        put_attr(m, &n, 0x8022, "bench", 5); /* SOFTWARE */
    }
    m[2] = (uint8_t)((n - 20) >> 8);
    m[3] = (uint8_t)(n - 20);
    if (ice) {
        b[0] = (uint8_t)(n >> 8);
        b[1] = (uint8_t)n;
        return n + 2;
    }
    return n;
}

static const char http_req[] =
    "GET /bench HTTP/1.1\r\nHost: term.bench\r\nUser-Agent: loadgen\r\n\r\n";
static const char http_post[] =
    "POST /upload HTTP/1.1\r\nHost: term.bench\r\nContent-Type: application/octet-stream\r\n\r\n";

/* ======================================================================================
 * backends
 * ====================================================================================== */

enum smode { S_SINK, S_ECHO, S_REPLY, S_RS, S_STUN, S_ICE, S_TLS_RS, S_UDP_ECHO };

struct lsn {
    int fd;
    enum smode mode;
    int arg;
    char tag;
};

struct sconn {
    int fd;
    struct lsn *l;
    SSL *ssl;
    bool hs_done, replied;
    uint8_t *pend;
    size_t plen, poff;
};

/* epoll data points at a tagged union: first byte tells listener or connection */
struct ref {
    int kind; /* 0 listener, 1 connection */
    void *p;
};

static int devnull, pipefd[2];
static struct lsn sink_after_reply = {.fd = -1, .mode = S_SINK};
static SSL_CTX *sctx;
static uint8_t replybuf[65536];

static void sclose(struct ref *r)
{
    struct sconn *c = r->p;
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    if (c->ssl)
        SSL_free(c->ssl);
    close(c->fd);
    free(c->pend);
    free(c);
    free(r);
}

/* Discards whatever is readable. Returns 0 on EOF/error (close), 1 otherwise. */
static int sink_plain(int fd)
{
    for (int i = 0; i < 16; i++) {
        ssize_t n = splice(fd, NULL, pipefd[1], NULL, 1 << 20, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n == 0)
            return 0;
        if (n < 0) {
            if (errno == EAGAIN)
                return 1;
            return 0;
        }
        while (n > 0) {
            ssize_t m = splice(pipefd[0], NULL, devnull, NULL, (size_t)n, SPLICE_F_MOVE);
            if (m <= 0)
                die("splice /dev/null");
            n -= m;
        }
    }
    return 1;
}

static size_t stun_answer(uint8_t *out, const uint8_t *req, bool ice, char tag)
{
    uint8_t *m = ice ? out + 2 : out;
    const uint8_t *q = ice ? req + 2 : req;
    size_t n = 20;
    memcpy(m, q, 20);
    m[0] = 0x01;
    m[1] = 0x01; /* Binding success */
    /* XOR-MAPPED-ADDRESS 127.0.0.1:4242 */
    m[n] = 0;
    m[n + 1] = 0x20;
    m[n + 2] = 0;
    m[n + 3] = 8;
    m[n + 4] = 0;
    m[n + 5] = 1;
    uint16_t port = 4242 ^ 0x2112;
    m[n + 6] = (uint8_t)(port >> 8);
    m[n + 7] = (uint8_t)port;
    uint8_t ip[4] = {127, 0, 0, 1};
    for (int i = 0; i < 4; i++)
        m[n + 8 + i] = ip[i] ^ cookie[i];
    n += 12;
    /* SOFTWARE: the backend's tag, so the client can check the routing */
    m[n] = 0x80;
    m[n + 1] = 0x22;
    m[n + 2] = 0;
    m[n + 3] = 4;
    m[n + 4] = 'b';
    m[n + 5] = 'k';
    m[n + 6] = '-';
    m[n + 7] = (uint8_t)tag;
    n += 8;
    m[2] = (uint8_t)((n - 20) >> 8);
    m[3] = (uint8_t)(n - 20);
    if (ice) {
        out[0] = (uint8_t)(n >> 8);
        out[1] = (uint8_t)n;
        return n + 2;
    }
    return n;
}

/* Writes all of buf or closes; small replies go in one write on a fresh socket. */
static bool put_all(struct sconn *c, const void *buf, size_t n)
{
    while (n) {
        ssize_t w = c->ssl ? SSL_write(c->ssl, buf, (int)n) : send(c->fd, buf, n, MSG_NOSIGNAL);
        if (w <= 0)
            return false;
        buf = (const uint8_t *)buf + w;
        n -= (size_t)w;
    }
    return true;
}

/* udpecho: every datagram goes back to its sender unchanged, in batches. */
static void udp_echo(int fd)
{
    enum { B = 64 };
    static uint8_t buf[B][2048];
    static struct sockaddr_in6 from[B];
    struct mmsghdr m[B];
    struct iovec iov[B];
    for (;;) {
        for (int i = 0; i < B; i++) {
            iov[i] = (struct iovec){buf[i], sizeof(buf[i])};
            m[i].msg_hdr = (struct msghdr){.msg_name = &from[i],
                                           .msg_namelen = sizeof(from[i]),
                                           .msg_iov = &iov[i],
                                           .msg_iovlen = 1};
        }
        int n = recvmmsg(fd, m, B, MSG_DONTWAIT, NULL);
        if (n <= 0)
            return;
        for (int i = 0; i < n; i++)
            iov[i].iov_len = m[i].msg_len;
        sendmmsg(fd, m, (unsigned)n, 0);
    }
}

static void serve_event(struct ref *r, uint32_t ev)
{
    if (r->kind == 0 && ((struct lsn *)r->p)->mode == S_UDP_ECHO) {
        udp_echo(((struct lsn *)r->p)->fd);
        return;
    }
    if (r->kind == 0) {
        struct lsn *l = r->p;
        for (int i = 0; i < 128; i++) {
            int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0)
                return;
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            struct sconn *c = calloc(1, sizeof(*c));
            struct ref *cr = malloc(sizeof(*cr));
            c->fd = fd;
            c->l = l;
            cr->kind = 1;
            cr->p = c;
            if (l->mode == S_TLS_RS) {
                c->ssl = SSL_new(sctx);
                SSL_set_fd(c->ssl, fd);
                SSL_set_accept_state(c->ssl);
            }
            ep_set(fd, EPOLLIN, cr, EPOLL_CTL_ADD);
        }
        return;
    }
    struct sconn *c = r->p;
    struct lsn *l = c->l;
    (void)ev;
    if (c->ssl && !c->hs_done) {
        int k = SSL_do_handshake(c->ssl);
        if (k == 1) {
            c->hs_done = true;
        } else {
            int e = SSL_get_error(c->ssl, k);
            if (e == SSL_ERROR_WANT_READ)
                ep_set(c->fd, EPOLLIN, r, EPOLL_CTL_MOD);
            else if (e == SSL_ERROR_WANT_WRITE)
                ep_set(c->fd, EPOLLOUT, r, EPOLL_CTL_MOD);
            else {
                ERR_clear_error();
                sclose(r);
            }
            return;
        }
        ep_set(c->fd, EPOLLIN, r, EPOLL_CTL_MOD);
    }
    switch (l->mode) {
    case S_SINK:
        if (!sink_plain(c->fd))
            sclose(r);
        return;
    case S_ECHO: {
        if (c->plen > c->poff) { /* EPOLLOUT: flush */
            ssize_t w = send(c->fd, c->pend + c->poff, c->plen - c->poff, MSG_NOSIGNAL);
            if (w < 0 && errno != EAGAIN) {
                sclose(r);
                return;
            }
            if (w > 0)
                c->poff += (size_t)w;
            if (c->poff < c->plen)
                return;
            c->plen = c->poff = 0;
            ep_set(c->fd, EPOLLIN, r, EPOLL_CTL_MOD);
            return;
        }
        ssize_t n = recv(c->fd, scratch, BUFSZ, 0);
        if (n <= 0) {
            if (n < 0 && errno == EAGAIN)
                return;
            sclose(r);
            return;
        }
        ssize_t w = send(c->fd, scratch, (size_t)n, MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN) {
            sclose(r);
            return;
        }
        if (w < 0)
            w = 0;
        if (w < n) {
            c->pend = realloc(c->pend, (size_t)(n - w));
            memcpy(c->pend, scratch + w, (size_t)(n - w));
            c->plen = (size_t)(n - w);
            c->poff = 0;
            ep_set(c->fd, EPOLLOUT, r, EPOLL_CTL_MOD);
        }
        return;
    }
    case S_REPLY:
    case S_STUN:
    case S_ICE: {
        ssize_t n = recv(c->fd, scratch, BUFSZ, 0);
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            sclose(r);
            return;
        }
        if (l->mode == S_REPLY) {
            put_all(c, replybuf, (size_t)l->arg);
        } else {
            uint8_t out[128];
            bool ice = l->mode == S_ICE;
            if (n >= (ice ? 22 : 20))
                put_all(c, out, stun_answer(out, scratch, ice, l->tag));
        }
        /* The client closes first once it has the whole reply: TIME_WAIT then stays on
         * the connecting sides (client, proxy), where the kernel reuses it safely, and
         * never meets a new SYN on the accepting side. */
        c->replied = true;
        c->l = &sink_after_reply;
        return;
    }
    case S_UDP_ECHO: /* a datagram socket is a listener, never a connection */
        return;
    case S_RS:
    case S_TLS_RS:
        if (!c->replied) {
            ssize_t n;
            if (c->ssl) {
                n = SSL_read(c->ssl, scratch, BUFSZ);
                if (n <= 0) {
                    int e = SSL_get_error(c->ssl, (int)n);
                    ERR_clear_error();
                    if (e == SSL_ERROR_WANT_READ)
                        return;
                    sclose(r);
                    return;
                }
            } else {
                n = recv(c->fd, scratch, BUFSZ, 0);
                if (n < 0 && errno == EAGAIN)
                    return;
                if (n <= 0) {
                    sclose(r);
                    return;
                }
            }
            c->replied = true;
            if (!put_all(c, replybuf, (size_t)l->arg)) {
                ERR_clear_error();
                sclose(r);
            }
            return;
        }
        if (c->ssl) {
            for (;;) {
                int n = SSL_read(c->ssl, scratch, BUFSZ);
                if (n > 0)
                    continue;
                int e = SSL_get_error(c->ssl, n);
                ERR_clear_error();
                if (e != SSL_ERROR_WANT_READ)
                    sclose(r);
                return;
            }
        }
        if (!sink_plain(c->fd))
            sclose(r);
        return;
    }
}

static int listen_on(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (getenv("LOADGEN_FASTOPEN")) { /* accept data in SYNs (net.ipv4.tcp_fastopen & 2) */
        int qlen = 4096;
        setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN, &qlen, sizeof(qlen));
    }
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 4096) < 0) {
        fprintf(stderr, "port %d: ", port);
        die("listen");
    }
    return fd;
}

static int udp_bind(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), big = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        fprintf(stderr, "udp port %d: ", port);
        die("bind");
    }
    return fd;
}

static int cmd_serve(int argc, char **argv)
{
    const char *cert = NULL, *key = NULL;
    int i = 0;
    for (i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--cert") && i + 1 < argc)
            cert = argv[++i];
        else if (!strcmp(argv[i], "--key") && i + 1 < argc)
            key = argv[++i];
        else
            break;
    }
    memset(replybuf, 'r', sizeof(replybuf));
    devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        die("pipe");
    fcntl(pipefd[1], F_SETPIPE_SZ, 1 << 20);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (cert) {
        sctx = SSL_CTX_new(TLS_server_method());
        SSL_CTX_set_min_proto_version(sctx, TLS1_3_VERSION);
        SSL_CTX_set_session_cache_mode(sctx, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_num_tickets(sctx, 0);
        SSL_CTX_set_mode(sctx, SSL_MODE_RELEASE_BUFFERS);
        if (SSL_CTX_use_certificate_chain_file(sctx, cert) != 1 ||
            SSL_CTX_use_PrivateKey_file(sctx, key, SSL_FILETYPE_PEM) != 1) {
            ERR_print_errors_fp(stderr);
            return 2;
        }
    }
    for (; i < argc; i++) {
        struct lsn *l = calloc(1, sizeof(*l));
        char m[32];
        int port = 0;
        char arg[32] = "";
        if (sscanf(argv[i], "%31[^:]:%d:%31s", m, &port, arg) < 2) {
            fprintf(stderr, "bad spec %s\n", argv[i]);
            return 2;
        }
        if (!strcmp(m, "sink"))
            l->mode = S_SINK;
        else if (!strcmp(m, "echo"))
            l->mode = S_ECHO;
        else if (!strcmp(m, "reply"))
            l->mode = S_REPLY;
        else if (!strcmp(m, "rs"))
            l->mode = S_RS;
        else if (!strcmp(m, "stun"))
            l->mode = S_STUN;
        else if (!strcmp(m, "ice"))
            l->mode = S_ICE;
        else if (!strcmp(m, "tls-rs"))
            l->mode = S_TLS_RS;
        else if (!strcmp(m, "udpecho"))
            l->mode = S_UDP_ECHO;
        else {
            fprintf(stderr, "bad mode %s\n", m);
            return 2;
        }
        if (l->mode == S_TLS_RS && !sctx) {
            fprintf(stderr, "tls-rs needs --cert and --key\n");
            return 2;
        }
        l->arg = atoi(arg);
        if (l->arg > (int)sizeof(replybuf))
            l->arg = sizeof(replybuf);
        l->tag = arg[0] ? arg[0] : 'S';
        l->fd = l->mode == S_UDP_ECHO ? udp_bind(port) : listen_on(port);
        struct ref *r = malloc(sizeof(*r));
        r->kind = 0;
        r->p = l;
        ep_set(l->fd, EPOLLIN, r, EPOLL_CTL_ADD);
    }
    printf("ready\n");
    fflush(stdout);
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        for (int k = 0; k < n; k++)
            serve_event(evs[k].data.ptr, evs[k].events);
    }
}

/* ======================================================================================
 * clients
 * ====================================================================================== */

enum proto { P_CH, P_TLS, P_STUN, P_ICE, P_HTTP /* trickle only: a plain request head */ };
enum cst { C_CONNECT, C_HS, C_SEND, C_STREAM, C_READ, C_IDLE, C_DRAIN };

struct cc {
    int fd;
    enum cst st;
    SSL *ssl;
    double t0;
    uint64_t sent, got, quota;
    char tag;
    uint8_t first[512];
    size_t first_len;
};

static struct {
    enum proto proto;
    const char *host;
    int port;
    const char *sni;
    int conns;
    double secs, warm;
    uint64_t bytes;
    long expect;
    int count, size;
    double hold;
    const char *ufrags; /* "bnchA,bnchB" */
    bool raw;           /* --raw: a binary first message instead of HTTP (tls only) */
    size_t seg;         /* trickle: bytes per send() */
    double rate;        /* trickle: send() calls per second, all connections together */
} o = {.seg = 1,
       .rate = 100000,
       .proto = P_CH,
       .host = "127.0.0.1",
       .sni = "bench",
       .conns = 64,
       .secs = 5,
       .warm = 1,
       .expect = -1,
       .count = 20000,
       .size = 64,
       .ufrags = "bnchA,bnchB"};

static struct sockaddr_in dst;
static int memfd;
static size_t memfd_len = 4 << 20;
static uint64_t n_ok, n_err, n_badroute;
static double *lat;
static size_t nlat, caplat;
static bool measuring;
static double t_stop;
static uint32_t seqno;

/* A non-blocking connect to --host:--port, TCP_NODELAY (every send() its own segment).
 * Returns the descriptor, or -1. */
static int connect_to_dst(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0)
        return -1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Stops watching fd and closes it. */
static void ep_close(int fd)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
}

static int open_conn(struct cc *c)
{
    int fd = connect_to_dst();
    if (fd < 0)
        return -1;
    c->fd = fd;
    c->st = C_CONNECT;
    c->t0 = now_s();
    c->sent = c->got = 0;
    c->ssl = NULL;
    ep_set(fd, EPOLLOUT, c, EPOLL_CTL_ADD);
    /* first flight */
    if (o.proto == P_CH) {
        memcpy(c->first, hello, hello_len);
        c->first_len = hello_len;
    } else if (o.proto == P_STUN) {
        c->first_len = make_stun(c->first, false, NULL, ++seqno);
    } else if (o.proto == P_ICE) {
        /* alternate between the ufrags so that routing matters */
        static int k;
        char u[2][32];
        int nu = sscanf(o.ufrags, "%31[^,],%31s", u[0], u[1]);
        int pick = nu == 2 ? (k++ & 1) : 0;
        c->first_len = make_stun(c->first, true, u[pick], ++seqno);
        c->tag = u[pick][strlen(u[pick]) - 1];
    } else if (o.raw) {
        /* No probe takes it: 'M','U' ends HTTP, the NUL ends a SIP method token. */
        static const char raw_req[] = "MUXBENCH\0\1\2\3 raw first message\n";
        c->first_len = sizeof(raw_req) - 1;
        memcpy(c->first, raw_req, c->first_len);
    } else {
        c->first_len = strlen(o.bytes ? http_post : http_req);
        memcpy(c->first, o.bytes ? http_post : http_req, c->first_len);
    }
    return 0;
}

static void close_conn(struct cc *c)
{
    if (c->ssl)
        SSL_free(c->ssl);
    c->ssl = NULL;
    ep_close(c->fd);
    c->fd = -1;
}

static void record(struct cc *c, bool ok)
{
    if (!measuring)
        return;
    if (!ok) {
        n_err++;
        return;
    }
    n_ok++;
    if (nlat == caplat) {
        caplat = caplat ? caplat * 2 : 1 << 16;
        lat = realloc(lat, caplat * sizeof(*lat));
    }
    lat[nlat++] = now_s() - c->t0;
}

/* Runs one connection's state machine as far as it goes. Returns 1 when finished (ok),
 * -1 when failed, 0 when waiting. */
static int step(struct cc *c, uint32_t ev)
{
    if (c->st == C_CONNECT) {
        int err = 0;
        socklen_t l = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err || (ev & (EPOLLERR | EPOLLHUP)))
            return -1;
        if (o.proto == P_TLS) {
            c->ssl = SSL_new(cctx);
            SSL_set_fd(c->ssl, c->fd);
            SSL_set_tlsext_host_name(c->ssl, o.sni);
            SSL_set_connect_state(c->ssl);
            c->st = C_HS;
        } else {
            c->st = C_SEND;
        }
    }
    if (c->st == C_HS) {
        int k = SSL_do_handshake(c->ssl);
        if (k != 1) {
            int e = SSL_get_error(c->ssl, k);
            ERR_clear_error();
            if (e == SSL_ERROR_WANT_READ) {
                ep_set(c->fd, EPOLLIN, c, EPOLL_CTL_MOD);
                return 0;
            }
            if (e == SSL_ERROR_WANT_WRITE) {
                ep_set(c->fd, EPOLLOUT, c, EPOLL_CTL_MOD);
                return 0;
            }
            return -1;
        }
        c->st = C_SEND;
    }
    if (c->st == C_SEND) {
        ssize_t w = c->ssl ? SSL_write(c->ssl, c->first, (int)c->first_len)
                           : send(c->fd, c->first, c->first_len, MSG_NOSIGNAL);
        if (w != (ssize_t)c->first_len)
            return -1;
        c->st = c->quota ? C_STREAM : C_READ;
        ep_set(c->fd, c->quota ? EPOLLOUT : EPOLLIN, c, EPOLL_CTL_MOD);
        if (c->quota)
            return 0;
        return 0;
    }
    if (c->st == C_STREAM) {
        while (c->sent < c->quota) {
            size_t want = c->quota - c->sent;
            ssize_t w;
            if (c->ssl) {
                if (want > 65536)
                    want = 65536;
                w = SSL_write(c->ssl, scratch, (int)want);
                if (w <= 0) {
                    int e = SSL_get_error(c->ssl, (int)w);
                    ERR_clear_error();
                    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
                        return 0;
                    return -1;
                }
            } else {
                off_t off = (off_t)(c->sent % memfd_len);
                if (want > memfd_len - (size_t)off)
                    want = memfd_len - (size_t)off;
                w = sendfile(c->fd, memfd, &off, want);
                if (w < 0) {
                    if (errno == EAGAIN)
                        return 0;
                    return -1;
                }
            }
            c->sent += (uint64_t)w;
        }
        /* done: FIN, then wait for the backend's EOF to come back through the proxy */
        if (c->ssl)
            SSL_shutdown(c->ssl);
        shutdown(c->fd, SHUT_WR);
        c->st = C_DRAIN;
        ep_set(c->fd, EPOLLIN, c, EPOLL_CTL_MOD);
        return 0;
    }
    if (c->st == C_DRAIN) {
        for (;;) {
            ssize_t n = recv(c->fd, scratch, BUFSZ, 0);
            if (n > 0)
                continue;
            if (n < 0 && errno == EAGAIN)
                return 0;
            return 1; /* EOF or reset after our FIN: the stream is over */
        }
    }
    if (c->st == C_READ || c->st == C_IDLE) {
        for (;;) {
            ssize_t n;
            if (c->ssl) {
                n = SSL_read(c->ssl, scratch, BUFSZ);
                if (n <= 0) {
                    int e = SSL_get_error(c->ssl, (int)n);
                    ERR_clear_error();
                    if (e == SSL_ERROR_WANT_READ)
                        return 0;
                    n = 0;
                }
            } else {
                n = recv(c->fd, scratch, BUFSZ, 0);
                if (n < 0 && errno == EAGAIN)
                    return 0;
            }
            if (n <= 0) {
                if (c->st == C_IDLE)
                    return -1;
                return (o.expect < 0 || (long)c->got >= o.expect) ? 1 : -1;
            }
            if ((o.proto == P_ICE || o.proto == P_STUN) && n >= 4 &&
                scratch[n - 1] != (uint8_t)c->tag && o.proto == P_ICE)
                n_badroute++;
            c->got += (uint64_t)n;
            /* Replies are complete at `expect` bytes: then the client closes first */
            if (o.expect >= 0 && (long)c->got >= o.expect)
                return c->st == C_IDLE ? 2 : 1;
        }
    }
    return 0;
}

static double pct(double p)
{
    if (!nlat)
        return 0;
    size_t i = (size_t)(p * (double)(nlat - 1));
    return lat[i] * 1e6;
}

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Also prints the whole machine's CPU (all cores, with softirq) per unit of work: KEY =
 * machine CPU seconds x scale / units. */
static void print_cpu(double t, double pcpu0, double bcpu0, double gcpu0, const char *key,
                      double units, double scale)
{
    double mc = machine_time(true) - all0;
    printf(" machine_cpu=%.3f %s=%.3f", mc, key, units > 0 ? mc * scale / units : 0);
    double pc = cpu_of(pids, npids) - pcpu0, bc = cpu_of(bpids, nbpids) - bcpu0;
    double gc = self_cpu() - gcpu0;
    double other = machine_busy() - busy0 - pc - gc - bc;
    if (other < 0)
        other = 0;
    printf(
        " secs=%.3f proxy_cpu=%.3f gen_cpu=%.3f backend_cpu=%.3f gen_core=%.0f%% proxy_core=%.0f%%"
        " other_cpu=%.0f%%",
        t, pc, gc, bc, 100 * (gc + bc) / t, 100 * pc / t, 100 * other / t);
}

/* short: C concurrent connections, each opened again as soon as it finishes */
static int cmd_short(void)
{
    struct cc *cs = calloc((size_t)o.conns, sizeof(*cs));
    struct epoll_event evs[512];
    double start = now_s(), t_meas = start + o.warm, pcpu0 = 0, bcpu0 = 0, gcpu0 = 0;
    t_stop = t_meas + o.secs;
    for (int i = 0; i < o.conns; i++)
        if (open_conn(&cs[i]) < 0)
            die("connect");
    for (;;) {
        double t = now_s();
        if (!measuring && t >= t_meas) {
            measuring = true;
            pcpu0 = cpu_of(pids, npids);
            bcpu0 = cpu_of(bpids, nbpids);
            gcpu0 = self_cpu();
            machine_mark();
            t_meas = t;
        }
        if (t >= t_stop)
            break;
        int n = epoll_wait(ep, evs, 512, 100);
        for (int k = 0; k < n; k++) {
            struct cc *c = evs[k].data.ptr;
            int r = step(c, evs[k].events);
            if (r == 0)
                continue;
            record(c, r > 0);
            close_conn(c);
            if (open_conn(c) < 0) {
                n_err++;
                usleep(1000);
                if (open_conn(c) < 0)
                    die("connect");
            }
        }
    }
    double el = now_s() - t_meas;
    qsort(lat, nlat, sizeof(*lat), cmpd);
    printf("rate=%.1f ok=%llu err=%llu badroute=%llu p50_us=%.0f p99_us=%.0f", (double)n_ok / el,
           (unsigned long long)n_ok, (unsigned long long)n_err, (unsigned long long)n_badroute,
           pct(0.5), pct(0.99));
    double pc = cpu_of(pids, npids) - pcpu0;
    printf(" proxy_us_per=%.1f", n_ok ? pc * 1e6 / (double)n_ok : 0);
    print_cpu(el, pcpu0, bcpu0, gcpu0, "machine_us_per", (double)n_ok, 1e6);
    printf("\n");
    return 0;
}

static int cmd_bulk(void)
{
    struct cc *cs = calloc((size_t)o.conns, sizeof(*cs));
    struct epoll_event evs[64];
    int left = o.conns;
    double t0 = now_s(), pcpu0 = cpu_of(pids, npids), bcpu0 = cpu_of(bpids, nbpids),
           gcpu0 = self_cpu();
    machine_mark();
    for (int i = 0; i < o.conns; i++) {
        cs[i].quota = o.bytes / (uint64_t)o.conns;
        if (open_conn(&cs[i]) < 0)
            die("connect");
    }
    double deadline = t0 + 600;
    while (left > 0 && now_s() < deadline) {
        int n = epoll_wait(ep, evs, 64, 1000);
        for (int k = 0; k < n; k++) {
            struct cc *c = evs[k].data.ptr;
            int r = step(c, evs[k].events);
            if (r == 0)
                continue;
            if (r < 0 || c->sent < c->quota)
                n_err++;
            close_conn(c);
            left--;
        }
    }
    double el = now_s() - t0;
    uint64_t tot = 0;
    for (int i = 0; i < o.conns; i++)
        tot += cs[i].sent;
    double pc = cpu_of(pids, npids) - pcpu0;
    printf("mbps=%.1f bytes=%llu err=%llu left=%d proxy_s_per_gb=%.3f", (double)tot / el / 1e6,
           (unsigned long long)tot, (unsigned long long)n_err, left, pc / ((double)tot / 1e9));
    print_cpu(el, pcpu0, bcpu0, gcpu0, "machine_s_per_gb", (double)tot / 1e9, 1);
    printf("\n");
    return 0;
}

/* idle: open N connections that each get a reply (so the whole chain is up), hold them,
 * read the proxy tree's RSS, close. */
static int cmd_idle(void)
{
    struct cc *cs = calloc((size_t)o.conns, sizeof(*cs));
    struct epoll_event evs[512];
    /* The previous scenario's connections may still be closing: wait for the proxy's
     * descriptor count to stop changing before taking the baseline. */
    long fd0 = nfds();
    for (int i = 0; i < 100; i++) {
        usleep(200000);
        long f = nfds();
        if (f == fd0)
            break;
        fd0 = f;
    }
    long rss0 = rss_kib();
    int opened = 0, up = 0, inflight = 0, failed = 0;
    double deadline = now_s() + 120;
    while (up + failed < o.conns && now_s() < deadline) {
        while (inflight < 256 && opened < o.conns) {
            if (open_conn(&cs[opened]) < 0) {
                failed++;
                opened++;
                continue;
            }
            opened++;
            inflight++;
        }
        int n = epoll_wait(ep, evs, 512, 1000);
        for (int k = 0; k < n; k++) {
            struct cc *c = evs[k].data.ptr;
            if (c->st == C_SEND || c->st == C_CONNECT || c->st == C_HS) {
                int r = step(c, evs[k].events);
                if (r < 0) {
                    close_conn(c);
                    failed++;
                    inflight--;
                    continue;
                }
                if (c->st == C_READ)
                    c->st = C_IDLE;
                continue;
            }
            int r = step(c, evs[k].events);
            if (r == 2) { /* acknowledged: idle from now on, no more events wanted */
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                c->st = C_DRAIN;
                up++;
                inflight--;
            } else if (r < 0) {
                close_conn(c);
                failed++;
                inflight--;
            }
        }
    }
    sleep(2); /* let the proxy settle (lazy frees, timers) */
    long rss1 = rss_kib(), fd1 = nfds();
    printf("conns=%d up=%d failed=%d rss0_kib=%ld rss1_kib=%ld bytes_per_conn=%.0f fds0=%ld "
           "fds1=%ld\n",
           o.conns, up, failed, rss0, rss1, up ? (double)(rss1 - rss0) * 1024 / up : 0, fd0, fd1);
    fflush(stdout);
    if (o.hold > 0) /* soak: keep them while churn runs next to us */
        usleep((useconds_t)(o.hold * 1e6));
    for (int i = 0; i < opened; i++)
        if (cs[i].fd > 0) {
            if (cs[i].ssl)
                SSL_free(cs[i].ssl);
            close(cs[i].fd);
        }
    return 0;
}

static int cmd_ping(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) < 0)
        die("connect");
    uint8_t buf[4096];
    /* the ClientHello goes first (routing), the echo server sends it back */
    if (send(fd, hello, hello_len, 0) != (ssize_t)hello_len)
        die("send");
    size_t got = 0;
    while (got < hello_len) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n <= 0)
            die("recv hello echo");
        got += (size_t)n;
    }
    int size = o.size > (int)sizeof(buf) ? (int)sizeof(buf) : o.size;
    memset(buf, 'p', (size_t)size);
    lat = calloc((size_t)o.count, sizeof(*lat));
    double pcpu0 = cpu_of(pids, npids), bcpu0 = cpu_of(bpids, nbpids), gcpu0 = self_cpu(),
           t0 = now_s();
    machine_mark();
    for (int i = 0; i < o.count; i++) {
        double t = now_s();
        if (send(fd, buf, (size_t)size, 0) != size)
            die("send");
        int g = 0;
        while (g < size) {
            ssize_t n = recv(fd, buf + g, (size_t)(size - g), 0);
            if (n <= 0)
                die("recv");
            g += (int)n;
        }
        lat[nlat++] = now_s() - t;
    }
    double el = now_s() - t0, pc = cpu_of(pids, npids) - pcpu0;
    qsort(lat, nlat, sizeof(*lat), cmpd);
    printf("p50_us=%.1f p99_us=%.1f p999_us=%.1f count=%zu proxy_us_per=%.1f", pct(0.5), pct(0.99),
           pct(0.999), nlat, pc * 1e6 / (double)nlat);
    print_cpu(el, pcpu0, bcpu0, gcpu0, "machine_us_per", (double)nlat, 1e6);
    printf("\n");
    close(fd);
    return 0;
}

/* ---- trickle: one first flight, at once and a few bytes per send() ------------------- */

/* An HTTP/1.1 request head of exactly `size` bytes (size >= 256): filler header lines of
 * 100 bytes, the last one stretched to fit, then CRLF CRLF. */
static size_t make_head(uint8_t *b, size_t size)
{
    static const char start[] = "GET /trickle HTTP/1.1\r\nHost: trickle.bench\r\n";
    size_t n = sizeof(start) - 1, left = size - n - 2;
    memcpy(b, start, n);
    for (int i = 0; left > 0; i++) {
        size_t line = left >= 200 ? 100 : left; /* "X-Pad-NNNN: " value CRLF */
        n += (size_t)sprintf((char *)b + n, "X-Pad-%04d: ", i % 10000);
        memset(b + n, 'a' + i % 26, line - 14);
        n += line - 14;
        memcpy(b + n, "\r\n", 2);
        n += 2;
        left -= line;
    }
    memcpy(b + n, "\r\n", 2);
    return n + 2;
}

/* OpenSSL's ClientHello for --sni, grown to `size` bytes with a padding extension (RFC
 * 7685), in one record (size <= 16389): Chromium's, with post-quantum key shares, are
 * ~1.9-2 KB. */
static size_t make_big_hello(uint8_t *b, size_t size)
{
    size_t pos = 5 + 4 + 2 + 32, pad;
    memcpy(b, hello, hello_len);
    if (size < hello_len + 4)
        return hello_len;
    pos += 1 + b[pos];                             /* session_id */
    pos += 2 + ((size_t)b[pos] << 8 | b[pos + 1]); /* cipher_suites */
    pos += 1 + b[pos];                             /* compression_methods */
    pad = size - hello_len - 4;
    b[hello_len] = 0x00;
    b[hello_len + 1] = 0x15;
    b[hello_len + 2] = (uint8_t)(pad >> 8);
    b[hello_len + 3] = (uint8_t)pad;
    memset(b + hello_len + 4, 0, pad);
    size_t ext = ((size_t)b[pos] << 8 | b[pos + 1]) + 4 + pad, hs = size - 9, rec = size - 5;
    b[pos] = (uint8_t)(ext >> 8);
    b[pos + 1] = (uint8_t)ext;
    b[6] = (uint8_t)(hs >> 16);
    b[7] = (uint8_t)(hs >> 8);
    b[8] = (uint8_t)hs;
    b[3] = (uint8_t)(rec >> 8);
    b[4] = (uint8_t)rec;
    return size;
}

struct tc {
    int fd;
    bool up;      /* connected */
    size_t off;   /* bytes of the flight sent */
    uint64_t got; /* reply bytes */
};

static int tc_open(struct tc *c)
{
    int fd = connect_to_dst(); /* a segment per send(): the proxy reads it apart if it keeps up */
    if (fd < 0)
        return -1;
    c->fd = fd;
    c->up = false;
    c->off = 0;
    c->got = 0;
    ep_set(fd, EPOLLOUT, c, EPOLL_CTL_ADD);
    return 0;
}

static void tc_close(struct tc *c)
{
    ep_close(c->fd);
    c->fd = -1;
}

struct phase {
    uint64_t reqs, errs, segs, bytes;  /* in the window: replies, failures, sends, bytes */
    double secs, proxy_cpu, other_cpu; /* other: machine CPU % that is none of ours */
};

/* Sends the rest of c's flight, seg bytes per send() and at most `max` sends (seg 0: in as
 * few sends as the socket takes, max ignored). Returns the sends made, or -1 on error. */
static long tc_send(struct tc *c, const uint8_t *flight, size_t size, size_t seg, long max,
                    struct phase *ph)
{
    long sends = 0;
    while (c->off < size && (seg == 0 || sends < max)) {
        size_t len = size - c->off;
        if (seg != 0 && len > seg)
            len = seg;
        ssize_t w = send(c->fd, flight + c->off, len, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN) {
                ep_set(c->fd, EPOLLIN | EPOLLOUT, c, EPOLL_CTL_MOD);
                return sends;
            }
            return -1;
        }
        c->off += (size_t)w;
        sends++;
        ph->segs++;
        ph->bytes += (uint64_t)w;
    }
    if (c->off == size)
        ep_set(c->fd, EPOLLIN, c, EPOLL_CTL_MOD);
    return sends;
}

/* One window of `secs`: C connections each send the flight (seg bytes per send(), at most
 * `rate` sends/s in all; seg 0: at once), read the --expect-byte reply, close and start
 * again. The proxy's CPU is read at both ends of the window. */
static void trickle_phase(const uint8_t *flight, size_t size, size_t seg, double rate, double secs,
                          struct phase *ph)
{
    struct tc *cs = calloc((size_t)o.conns, sizeof(*cs));
    struct epoll_event evs[512];
    double t0 = now_s(), pcpu0 = cpu_of(pids, npids), bcpu0 = cpu_of(bpids, nbpids),
           gcpu0 = self_cpu(), busy = machine_busy();
    uint64_t budget = 0, granted = 0;
    int next = 0;
    memset(ph, 0, sizeof(*ph));
    for (int i = 0; i < o.conns; i++)
        if (tc_open(&cs[i]) < 0)
            die("connect");
    for (;;) {
        double t = now_s();
        if (t - t0 >= secs)
            break;
        if (seg != 0) { /* paced: one send per connection in turn, rate sends/s in all */
            uint64_t due = (uint64_t)((t - t0) * rate);
            budget += due - granted;
            granted = due;
            if (budget > (uint64_t)o.conns) /* behind: no bursts, they would coalesce */
                budget = (uint64_t)o.conns;
            for (int k = 0; k < o.conns && budget > 0; k++) {
                struct tc *c = &cs[(next + k) % o.conns];
                long r = c->up && c->off < size ? tc_send(c, flight, size, seg, 1, ph) : 0;
                if (r < 0) {
                    ph->errs++;
                    tc_close(c);
                    if (tc_open(c) < 0)
                        die("connect");
                }
                budget -= r > 0 ? (uint64_t)r : 0;
            }
            next = (next + 1) % o.conns;
        }
        int n = epoll_wait(ep, evs, 512, seg != 0 ? 0 : 100);
        for (int k = 0; k < n; k++) {
            struct tc *c = evs[k].data.ptr;
            bool fail = false, done = false;
            if (!c->up) {
                int err = 0;
                socklen_t l = sizeof(err);
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
                fail = err != 0 || (evs[k].events & (EPOLLERR | EPOLLHUP));
                c->up = !fail;
                if (c->up)
                    ep_set(c->fd, EPOLLIN, c, EPOLL_CTL_MOD);
            }
            if (!fail && (evs[k].events & EPOLLOUT) && c->off < size && (seg == 0 || budget > 0)) {
                long r = tc_send(c, flight, size, seg, 1, ph);
                fail = r < 0;
                budget -= seg != 0 && r > 0 ? (uint64_t)r : 0;
            }
            if (!fail && (evs[k].events & EPOLLIN)) {
                for (;;) {
                    ssize_t r = recv(c->fd, scratch, BUFSZ, 0);
                    if (r > 0) {
                        c->got += (uint64_t)r;
                        continue;
                    }
                    if (r < 0 && errno == EAGAIN)
                        break;
                    fail = c->got < (uint64_t)(o.expect < 0 ? 1 : o.expect);
                    done = !fail;
                    break;
                }
                if (o.expect >= 0 && c->got >= (uint64_t)o.expect)
                    done = true;
            }
            if (fail || done) {
                ph->reqs += done;
                ph->errs += fail;
                tc_close(c);
                if (tc_open(c) < 0)
                    die("connect");
            }
        }
        if (seg != 0 && n == 0 && budget == 0)
            usleep(50);
    }
    ph->secs = now_s() - t0;
    ph->proxy_cpu = cpu_of(pids, npids) - pcpu0;
    ph->other_cpu = 100 *
                    (machine_busy() - busy - ph->proxy_cpu - (cpu_of(bpids, nbpids) - bcpu0) -
                     (self_cpu() - gcpu0)) /
                    ph->secs;
    if (ph->other_cpu < 0)
        ph->other_cpu = 0;
    for (int i = 0; i < o.conns; i++)
        tc_close(&cs[i]);
    free(cs);
    usleep(500000); /* the proxy closes its side before the next window */
}

static double us_per_kib(const struct phase *ph)
{
    return ph->bytes ? ph->proxy_cpu * 1e6 / ((double)ph->bytes / 1024) : 0;
}

/* trickle: the flight at once, then trickled, then a quarter of it trickled (if the
 * proxy's work per read grows with the bytes before it, CPU per KiB grows with the size). */
static int cmd_trickle(void)
{
    static uint8_t flight[65536], qflight[65536];
    size_t size = o.size < 256 ? 256 : (size_t)o.size, len, qlen;
    struct phase once, tr, quarter;
    if (o.proto != P_HTTP) {
        if (size > 16389) /* one record */
            size = 16389;
        len = make_big_hello(flight, size);
        qlen = make_big_hello(qflight, size / 4);
    } else {
        if (size > sizeof(flight))
            size = sizeof(flight);
        len = make_head(flight, size);
        qlen = make_head(qflight, size / 4 < 256 ? 256 : size / 4);
    }
    trickle_phase(flight, len, 0, 0, o.secs, &once);
    trickle_phase(flight, len, o.seg, o.rate, 2 * o.secs, &tr);
    trickle_phase(qflight, qlen, o.seg, o.rate, o.secs, &quarter);
    double k1 = us_per_kib(&once), kt = us_per_kib(&tr), kq = us_per_kib(&quarter);
    printf("bytes=%zu seg=%zu once_reqs=%llu once_us_per_kib=%.2f trickled_reqs=%llu "
           "trickled_us_per_kib=%.1f trickled_us_per_seg=%.2f ratio=%.1f quarter_bytes=%zu "
           "quarter_us_per_kib=%.1f growth=%.2f other_cpu=%.0f%% err=%llu\n",
           len, o.seg, (unsigned long long)once.reqs, k1, (unsigned long long)tr.reqs, kt,
           tr.segs ? tr.proxy_cpu * 1e6 / (double)tr.segs : 0, k1 > 0 ? kt / k1 : 0, qlen, kq,
           kq > 0 ? kt / kq : 0, tr.other_cpu,
           (unsigned long long)(once.errs + tr.errs + quarter.errs));
    return 0;
}

/* stat: RSS and open descriptors of the --pids tree (soak baseline and end). */
/* udp: F flows, each a connected socket; see the comment at the top. "rate" counts
 * datagrams the proxy relayed (each round trip is two), "per_core" the same per second of
 * proxy CPU: with the proxy pinned to a core that the generator does not saturate, the
 * rate alone would measure the generator. */
/* CLOCK_REALTIME in ns: the clock of SO_TIMESTAMPNS. */
static uint64_t real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmd_udp(double gap_ms)
{
    int flows = o.conns;
    uint64_t gap = (uint64_t)(gap_ms * 1e6);
    uint64_t *due = calloc((size_t)flows, sizeof(uint64_t)); /* paced: next send, 0 = none */
    uint64_t *sent = calloc((size_t)flows, sizeof(uint64_t));
    uint8_t *open = calloc((size_t)flows, 1); /* the flow's STUN opener was answered */
    int *fd = calloc((size_t)flows, sizeof(int));
    uint8_t stun[64], rtp[200] = {0x80, 0x6f}, in[2048];
    char ctl[CMSG_SPACE(sizeof(struct timespec))];
    struct iovec iov = {in, sizeof(in)};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    uint64_t rounds = 0, resent = 0;
    size_t stun_len = 20;

    memset(stun, 0, 20);
    stun[1] = 0x01;
    memcpy(stun + 4, cookie, 4);
    put_attr(stun, &stun_len, 0x0006, "bnch0000:cli", 12); /* USERNAME */
    put_attr(stun, &stun_len, 0x8022, "bnch", 4);          /* SOFTWARE */
    stun[2] = (uint8_t)((stun_len - 20) >> 8);
    stun[3] = (uint8_t)(stun_len - 20);
    caplat = 1 << 22;
    lat = malloc(caplat * sizeof(*lat));
    for (int i = 0; i < flows; i++) {
        fd[i] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd[i] < 0 || connect(fd[i], (struct sockaddr *)&dst, sizeof(dst)) < 0)
            die("udp socket");
        /* The kernel stamps each answer when it arrives: the round trip then does not
         * include the time the answer waited for this loop to come round. */
        int one = 1;
        setsockopt(fd[i], SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
        ep_set(fd[i], EPOLLIN, (void *)(intptr_t)i, EPOLL_CTL_ADD);
        memcpy(stun + 8, &i, sizeof(i)); /* transaction id */
        send(fd[i], stun, stun_len, 0);
    }
    uint64_t t0 = real_ns();
    for (int i = 0; i < flows; i++)
        sent[i] = t0;
    double start = now_s(), t_meas = start + o.warm, pcpu0 = 0, bcpu0 = 0, gcpu0 = 0;
    uint64_t rounds0 = 0;
    t_stop = t_meas + o.secs;
    struct epoll_event evs[256];
    for (;;) {
        double ts = now_s();
        if (!measuring && ts >= t_meas) {
            measuring = true;
            pcpu0 = cpu_of(pids, npids);
            bcpu0 = cpu_of(bpids, nbpids);
            gcpu0 = self_cpu();
            machine_mark();
            t_meas = ts;
            rounds0 = rounds;
        }
        if (ts >= t_stop)
            break;
        int n = epoll_wait(ep, evs, 256, gap ? 1 : 100);
        uint64_t t = real_ns();
        for (int i = 0; gap && i < flows; i++) /* paced: the next datagram gap after its answer */
            if (due[i] && t >= due[i]) {
                sent[i] = real_ns(); /* before: loopback delivers inside send() */
                send(fd[i], rtp, sizeof(rtp), 0);
                due[i] = 0;
            }
        if (n == 0 || gap) /* a datagram lost: send again on a flow silent for 100 ms */
            for (int i = 0; i < flows; i++)
                if (!due[i] && t > sent[i] + 100000000u) {
                    memcpy(stun + 8, &i, sizeof(i));
                    /* before its opener was answered a proxy cannot route the flow */
                    if (open[i])
                        send(fd[i], rtp, sizeof(rtp), 0);
                    else
                        send(fd[i], stun, stun_len, 0);
                    sent[i] = t;
                    resent += measuring;
                }
        for (int k = 0; k < n; k++) {
            int i = (int)(intptr_t)evs[k].data.ptr;
            for (;;) {
                mh.msg_control = ctl;
                mh.msg_controllen = sizeof(ctl);
                if (recvmsg(fd[i], &mh, 0) <= 0)
                    break;
                t = real_ns();
                struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
                if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS) {
                    struct timespec ts;
                    memcpy(&ts, CMSG_DATA(cm), sizeof(ts));
                    t = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
                }
                open[i] = 1;
                if (measuring && nlat < caplat)
                    lat[nlat++] = (double)(t - sent[i]) / 1e9;
                t = real_ns();
                rounds++;
                if (gap) {
                    due[i] = t + gap;
                    continue;
                }
                sent[i] = real_ns();
                send(fd[i], rtp, sizeof(rtp), 0);
            }
        }
    }
    double el = now_s() - t_meas, dgrams = 2.0 * (double)(rounds - rounds0);
    double pc = cpu_of(pids, npids) - pcpu0;
    qsort(lat, nlat, sizeof(*lat), cmpd);
    printf("flows=%d rate=%.0f p50_us=%.0f p99_us=%.0f resent=%llu", flows, dgrams / el, pct(0.5),
           pct(0.99), (unsigned long long)resent);
    printf(" proxy_us_per=%.3f per_core=%.0f", dgrams > 0 ? pc * 1e6 / dgrams : 0,
           pc > 0 ? dgrams / pc : 0);
    print_cpu(el, pcpu0, bcpu0, gcpu0, "machine_us_per", dgrams, 1e6);
    printf("\n");
    return 0;
}

static int cmd_stat(void)
{
    printf("rss_kib=%ld fds=%ld\n", rss_kib(), nfds());
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    if (argc < 2) {
        fprintf(stderr, "usage: see the comment at the top of loadgen.c\n");
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "serve"))
        return cmd_serve(argc - 2, argv + 2);

    static const struct option opts[] = {
        {"proto", 1, 0, 'P'},  {"host", 1, 0, 'h'},   {"port", 1, 0, 'p'}, {"sni", 1, 0, 's'},
        {"conns", 1, 0, 'c'},  {"secs", 1, 0, 't'},   {"warm", 1, 0, 'w'}, {"bytes", 1, 0, 'b'},
        {"expect", 1, 0, 'e'}, {"count", 1, 0, 'n'},  {"size", 1, 0, 'z'}, {"pids", 1, 0, 'i'},
        {"bpids", 1, 0, 'j'},  {"ufrags", 1, 0, 'u'}, {"hold", 1, 0, 'H'}, {"seg", 1, 0, 'S'},
        {"rate", 1, 0, 'R'},   {"raw", 0, 0, 'W'},    {"gap", 1, 0, 'G'},  {0, 0, 0, 0}};
    int ch;
    double gap_ms = 0;
    optind = 2;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'P':
            o.proto = !strcmp(optarg, "tls")    ? P_TLS
                      : !strcmp(optarg, "stun") ? P_STUN
                      : !strcmp(optarg, "ice")  ? P_ICE
                      : !strcmp(optarg, "http") ? P_HTTP
                                                : P_CH;
            break;
        case 'W':
            o.raw = true;
            break;
        case 'h':
            o.host = optarg;
            break;
        case 'p':
            o.port = atoi(optarg);
            break;
        case 's':
            o.sni = optarg;
            break;
        case 'c':
            o.conns = atoi(optarg);
            break;
        case 't':
            o.secs = atof(optarg);
            break;
        case 'w':
            o.warm = atof(optarg);
            break;
        case 'b':
            o.bytes = (uint64_t)atof(optarg);
            break;
        case 'e':
            o.expect = atol(optarg);
            break;
        case 'n':
            o.count = atoi(optarg);
            break;
        case 'z':
            o.size = atoi(optarg);
            break;
        case 'i':
            parse_pids(optarg, pids, &npids);
            break;
        case 'j':
            parse_pids(optarg, bpids, &nbpids);
            break;
        case 'u':
            o.ufrags = optarg;
            break;
        case 'H':
            o.hold = atof(optarg);
            break;
        case 'S':
            o.seg = (size_t)atol(optarg);
            break;
        case 'R':
            o.rate = atof(optarg);
            break;
        case 'G':
            gap_ms = atof(optarg);
            break;
        default:
            return 2;
        }
    }
    dst.sin_family = AF_INET;
    dst.sin_port = htons((uint16_t)o.port);
    inet_pton(AF_INET, o.host, &dst.sin_addr);
    client_ctx();
    make_hello(o.sni);
    memset(scratch, 'x', sizeof(scratch));
    ep = epoll_create1(EPOLL_CLOEXEC);
    memfd = memfd_create("bulk", MFD_CLOEXEC);
    if (ftruncate(memfd, (off_t)memfd_len) < 0)
        die("ftruncate");
    {
        uint8_t *m = mmap(NULL, memfd_len, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
        memset(m, 'x', memfd_len);
        munmap(m, memfd_len);
    }
    if (!strcmp(cmd, "short"))
        return cmd_short();
    if (!strcmp(cmd, "bulk"))
        return cmd_bulk();
    if (!strcmp(cmd, "idle"))
        return cmd_idle();
    if (!strcmp(cmd, "ping"))
        return cmd_ping();
    if (!strcmp(cmd, "stat"))
        return cmd_stat();
    if (!strcmp(cmd, "trickle"))
        return cmd_trickle();
    if (!strcmp(cmd, "udp"))
        return cmd_udp(gap_ms);
    fprintf(stderr, "unknown command %s\n", cmd);
    return 2;
}
