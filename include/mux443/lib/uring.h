/* A small io_uring (liburing) for datagram relaying: sends queued as submission entries
 * and issued together by one io_uring_enter, and multishot receives into a ring of
 * provided buffers, so a loop turn costs one system call instead of one send and one
 * recv per datagram. The UDP relay uses it when the kernel allows (README "UDP on 443",
 * udp_io); it is not thread-safe: one per worker, used by that worker's thread only. */
#ifndef MUX443_LIB_URING_H
#define MUX443_LIB_URING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct uring;

#define URING_TAG_MAX ((UINT64_C(1) << 62) - 1) /* tags are 62 bits */

/* What one completion reports to uring_reap's function. */
struct uring_event {
    uint64_t tag;
    bool recv;           /* a receive's result (else a send's failure) */
    bool more;           /* a receive still armed (else it ended: rearm it if wanted) */
    int res;             /* bytes received, or -errno */
    const uint8_t *data; /* res bytes received (valid during the call only), or NULL */
};

typedef void uring_fn(void *arg, const struct uring_event *ev);

/* A ring with nbufs (a power of two, at most 32768) receive buffers of bufsize bytes each,
 * checked by a multishot receive of its own. NULL with the reason in why when io_uring
 * cannot be used here (Linux before 6.0, kernel.io_uring_disabled, a seccomp filter, no
 * memory). */
struct uring *uring_new(unsigned nbufs, unsigned bufsize, char *why, size_t whylen);
void uring_free(struct uring *r);
/* Readable (to an event loop) when completions wait for uring_reap. */
int uring_fd(const struct uring *r);
/* Queues a send of n bytes at p on connected socket fd, without waiting (MSG_DONTWAIT):
 * issued by the next uring_submit, when p must still hold them; only a failure
 * completes (a send event with tag). false: not queued (the queue could not drain). */
bool uring_send(struct uring *r, int fd, const void *p, size_t n, uint64_t tag);
/* Queues a multishot receive on fd: every datagram is one receive event with tag (its
 * bytes in a buffer of the ring; a datagram longer than bufsize arrives cut short).
 * false: not queued. */
bool uring_recv(struct uring *r, int fd, uint64_t tag);
/* Queues the cancellation of the receive with tag (it ends with -ECANCELED). */
void uring_cancel(struct uring *r, uint64_t tag);
/* Issues what is queued (one io_uring_enter; none when nothing is). */
void uring_submit(struct uring *r);
/* Calls fn for every completion waiting; returns how many. */
unsigned uring_reap(struct uring *r, uring_fn *fn, void *arg);

#endif
