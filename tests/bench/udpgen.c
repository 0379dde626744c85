/* UDP benchmark tool for tests/bench/udp_run: `echo PORT` answers every datagram with
 * itself (recvmmsg/sendmmsg, one thread); `load HOST PORT FLOWS SECONDS` keeps FLOWS
 * connected sockets each with one 200-byte RTP-like datagram in flight (closed loop)
 * against HOST:PORT, after opening each flow with a STUN Binding request carrying
 * USERNAME "bnch0000:cli" (so that mux443 routes it to its media backend), and prints
 * round trips per second and the round-trip latency p50/p99 in microseconds. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int echo(int port)
{
    enum { B = 64 };
    static uint8_t buf[B][2048];
    struct mmsghdr m[B];
    struct iovec iov[B];
    struct sockaddr_in from[B], a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_DGRAM, 0), big = 4 << 20;

    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
        return perror("bind"), 1;
    printf("ready\n");
    fflush(stdout);
    for (;;) {
        for (int i = 0; i < B; i++) {
            iov[i] = (struct iovec){buf[i], sizeof(buf[i])};
            m[i].msg_hdr = (struct msghdr){.msg_name = &from[i],
                                           .msg_namelen = sizeof(from[i]),
                                           .msg_iov = &iov[i],
                                           .msg_iovlen = 1};
        }
        int n = recvmmsg(fd, m, B, MSG_WAITFORONE, NULL);
        for (int i = 0; i < n; i++)
            iov[i].iov_len = m[i].msg_len;
        if (n > 0)
            sendmmsg(fd, m, (unsigned)n, 0);
    }
}

static int cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int load(const char *host, int port, int flows, double secs, double gap_ms)
{
    uint64_t gap = (uint64_t)(gap_ms * 1e6);
    uint64_t *due = calloc((size_t)flows, sizeof(uint64_t)); /* paced: next send, 0 = none */
    uint8_t *open = calloc((size_t)flows, 1); /* the flow's STUN opener was answered */
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int ep = epoll_create1(0);
    int *fd = calloc((size_t)flows, sizeof(int));
    uint64_t *sent = calloc((size_t)flows, sizeof(uint64_t));
    size_t cap = 1 << 24, nlat = 0;
    uint32_t *lat = malloc(cap * sizeof(uint32_t));
    uint8_t stun[44] = {0x00, 0x01, 0x00, 0x18, 0x21, 0x12, 0xa4, 0x42};
    uint8_t rtp[200] = {0x80, 0x6f}, in[2048];
    uint64_t rounds = 0, lost = 0;

    inet_pton(AF_INET, host, &a.sin_addr);
    /* USERNAME "bnch0000:cli" (12 bytes) + MESSAGE-INTEGRITY-like padding attribute */
    memcpy(stun + 20,
           "\x00\x06\x00\x0c"
           "bnch0000:cli",
           16);
    memcpy(stun + 36,
           "\x80\x22\x00\x04"
           "bnch",
           8); /* SOFTWARE */
    for (int i = 0; i < flows; i++) {
        fd[i] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        if (connect(fd[i], (struct sockaddr *)&a, sizeof(a)) < 0)
            return perror("connect"), 1;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd[i], &ev);
        memcpy(stun + 8, &i, sizeof(i)); /* transaction id */
        send(fd[i], stun, sizeof(stun), 0);
        sent[i] = now_ns();
    }
    uint64_t t0 = now_ns(), end = t0 + (uint64_t)(secs * 1e9), warm = t0 + 1000000000u;
    uint64_t mark = 0, rounds_at_mark = 0;
    struct epoll_event evs[256];
    while (now_ns() < end) {
        int n = epoll_wait(ep, evs, 256, gap ? 1 : 100);
        if (gap) { /* paced: each flow sends its next datagram gap after its answer */
            uint64_t t = now_ns();
            for (int i = 0; i < flows; i++)
                if (due[i] && t >= due[i]) {
                    send(fd[i], rtp, sizeof(rtp), 0);
                    sent[i] = t;
                    due[i] = 0;
                }
        }
        if (n == 0 || gap) { /* a datagram lost: resend on a flow waiting for 100 ms */
            uint64_t t = now_ns();
            for (int i = 0; i < flows; i++)
                if (!due[i] && t - sent[i] > 100000000u) {
                    memcpy(stun + 8, &i, sizeof(i));
                    if (open[i])
                        send(fd[i], rtp, sizeof(rtp), 0);
                    else /* the opener was lost: a proxy needs it to route the flow */
                        send(fd[i], stun, sizeof(stun), 0);
                    sent[i] = t;
                    lost++;
                }
        }
        for (int k = 0; k < n; k++) {
            int i = (int)evs[k].data.u32;
            while (recv(fd[i], in, sizeof(in), 0) > 0) {
                uint64_t t = now_ns();
                open[i] = 1;
                if (t > warm) {
                    if (!mark)
                        mark = t, rounds_at_mark = rounds;
                    if (nlat < cap)
                        lat[nlat++] = (uint32_t)((t - sent[i]) / 1000);
                }
                rounds++;
                if (gap) {
                    due[i] = t + gap;
                    continue;
                }
                send(fd[i], rtp, sizeof(rtp), 0);
                sent[i] = now_ns();
            }
        }
    }
    double el = (double)(now_ns() - mark) / 1e9;
    qsort(lat, nlat, sizeof(lat[0]), cmp);
    printf("flows=%d proxied_pps=%.0f p50_us=%u p99_us=%u resent=%llu\n", flows,
           2 * (double)(rounds - rounds_at_mark) / el, nlat ? lat[nlat / 2] : 0,
           nlat ? lat[nlat * 99 / 100] : 0, (unsigned long long)lost);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "echo"))
        return echo(atoi(argv[2]));
    if ((argc == 6 || argc == 7) && !strcmp(argv[1], "load"))
        return load(argv[2], atoi(argv[3]), atoi(argv[4]), atof(argv[5]),
                    argc == 7 ? atof(argv[6]) : 0);
    fprintf(stderr, "usage: udpgen echo PORT | load HOST PORT FLOWS SECONDS [GAP_MS]\n");
    return 2;
}
