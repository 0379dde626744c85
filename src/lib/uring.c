/* io_uring for datagram relaying (see the header). Every submission's user_data is the
 * caller's 62-bit tag under a 2-bit operation, so a cancellation names its receive and a
 * completion says what it completes. Sends carry MSG_DONTWAIT: the kernel issues them
 * while io_uring_enter submits them, or fails them (-EAGAIN) rather than waiting, so the
 * caller's buffer is free again when uring_submit returns. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <liburing.h>

#include "mux443/lib/uring.h"

#define SQ_ENTRIES 256
#define CQ_ENTRIES 16384
#define BGID       0

enum { OP_SEND = 1, OP_RECV, OP_CANCEL };

#define UD(op, tag) (((uint64_t)(op) << 62) | ((tag)&URING_TAG_MAX))

struct uring {
    struct io_uring ring;
    struct io_uring_buf_ring *br;
    uint8_t *bufs;
    unsigned nbufs, bufsize;
};

/* A free submission entry: when the queue is full, what it holds is submitted first. */
static struct io_uring_sqe *sqe_get(struct uring *r)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);

    if (sqe == NULL && io_uring_submit(&r->ring) >= 0)
        sqe = io_uring_get_sqe(&r->ring);
    return sqe;
}

bool uring_send(struct uring *r, int fd, const void *p, size_t n, uint64_t tag)
{
    struct io_uring_sqe *sqe = sqe_get(r);

    if (sqe == NULL)
        return false;
    io_uring_prep_send(sqe, fd, p, n, MSG_DONTWAIT);
    io_uring_sqe_set_data64(sqe, UD(OP_SEND, tag));
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    return true;
}

bool uring_recv(struct uring *r, int fd, uint64_t tag)
{
    struct io_uring_sqe *sqe = sqe_get(r);

    if (sqe == NULL)
        return false;
    io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
    io_uring_sqe_set_data64(sqe, UD(OP_RECV, tag));
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BGID;
    return true;
}

void uring_cancel(struct uring *r, uint64_t tag)
{
    struct io_uring_sqe *sqe = sqe_get(r);

    if (sqe == NULL)
        return; /* the receive lasts until uring_free */
    io_uring_prep_cancel64(sqe, UD(OP_RECV, tag), 0);
    io_uring_sqe_set_data64(sqe, UD(OP_CANCEL, 0));
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
}

void uring_submit(struct uring *r)
{
    (void)io_uring_submit(&r->ring);
}

int uring_fd(const struct uring *r)
{
    return r->ring.ring_fd;
}

unsigned uring_reap(struct uring *r, uring_fn *fn, void *arg)
{
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;
    int bufs = 0, mask = io_uring_buf_ring_mask(r->nbufs);

    io_uring_for_each_cqe(&r->ring, head, cqe)
    {
        unsigned op = (unsigned)(cqe->user_data >> 62);
        struct uring_event ev = {.tag = cqe->user_data & URING_TAG_MAX,
                                 .recv = op == OP_RECV,
                                 .more = (cqe->flags & IORING_CQE_F_MORE) != 0,
                                 .res = cqe->res};
        unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;

        n++;
        if (cqe->flags & IORING_CQE_F_BUFFER)
            ev.data = r->bufs + (size_t)bid * r->bufsize;
        if (op != OP_CANCEL)
            fn(arg, &ev);
        if (ev.data != NULL)
            io_uring_buf_ring_add(r->br, r->bufs + (size_t)bid * r->bufsize, r->bufsize,
                                  (unsigned short)bid, mask, bufs++);
    }
    if (bufs > 0)
        io_uring_buf_ring_advance(r->br, bufs);
    io_uring_cq_advance(&r->ring, n);
    return n;
}

static void keep_last(void *arg, const struct uring_event *ev)
{
    *(struct uring_event *)arg = *ev;
}

/* One datagram through a multishot receive on a socket pair, the receive left armed:
 * what io_uring_setup accepting does not prove (multishot receives and buffer rings
 * need Linux 6.0; a seccomp filter may refuse io_uring_enter only). 0 or -errno. */
static int self_test(struct uring *r)
{
    struct __kernel_timespec ts = {.tv_sec = 2};
    struct io_uring_cqe *cqe;
    struct uring_event ev = {.res = -ETIMEDOUT};
    int sv[2], ret;

    if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    if (!uring_recv(r, sv[0], 1) || !uring_send(r, sv[1], "x", 1, 2)) {
        ret = -EBUSY;
        goto out;
    }
    if ((ret = io_uring_submit(&r->ring)) < 0)
        goto out;
    if ((ret = io_uring_wait_cqe_timeout(&r->ring, &cqe, &ts)) < 0)
        goto out;
    uring_reap(r, keep_last, &ev);
    ret = ev.recv && ev.res == 1 && ev.more ? 0 : ev.res < 0 ? ev.res : -EOPNOTSUPP;
    if (ev.more) { /* cancel it and wait for its end */
        uring_cancel(r, 1);
        (void)io_uring_submit(&r->ring);
        while (ev.more && io_uring_wait_cqe_timeout(&r->ring, &cqe, &ts) == 0)
            uring_reap(r, keep_last, &ev);
    }
out:
    close(sv[0]);
    close(sv[1]);
    return ret;
}

struct uring *uring_new(unsigned nbufs, unsigned bufsize, char *why, size_t whylen)
{
    struct uring *r = calloc(1, sizeof(*r));
    struct io_uring_params p;
    struct io_uring_buf_reg reg;
    const char *step = "memory";
    int ret = -ENOMEM;
    void *br = NULL;

    if (r == NULL)
        goto fail;
    memset(&p, 0, sizeof(p));
    p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER;
    p.cq_entries = CQ_ENTRIES;
    step = "io_uring_setup";
    if ((ret = io_uring_queue_init_params(SQ_ENTRIES, &r->ring, &p)) == -EINVAL) {
        memset(&p, 0, sizeof(p)); /* before Linux 6.0: no SINGLE_ISSUER */
        p.flags = IORING_SETUP_CQSIZE;
        p.cq_entries = CQ_ENTRIES;
        ret = io_uring_queue_init_params(SQ_ENTRIES, &r->ring, &p);
    }
    if (ret < 0) {
        free(r);
        r = NULL;
        goto fail;
    }
    r->nbufs = nbufs;
    r->bufsize = bufsize;
    step = "memory";
    ret = -ENOMEM;
    if (posix_memalign(&br, 4096, nbufs * sizeof(struct io_uring_buf)) != 0 ||
        (r->bufs = malloc((size_t)nbufs * bufsize)) == NULL)
        goto fail;
    r->br = br;
    io_uring_buf_ring_init(r->br);
    memset(&reg, 0, sizeof(reg));
    reg.ring_addr = (uint64_t)(uintptr_t)br;
    reg.ring_entries = nbufs;
    reg.bgid = BGID;
    step = "a provided buffer ring";
    if ((ret = io_uring_register_buf_ring(&r->ring, &reg, 0)) < 0)
        goto fail;
    for (unsigned i = 0; i < nbufs; i++)
        io_uring_buf_ring_add(r->br, r->bufs + (size_t)i * bufsize, bufsize, (unsigned short)i,
                              io_uring_buf_ring_mask(nbufs), (int)i);
    io_uring_buf_ring_advance(r->br, (int)nbufs);
    step = "a multishot receive";
    if ((ret = self_test(r)) < 0)
        goto fail;
    return r;
fail:
    snprintf(why, whylen, "%s: %s", step, strerror(-ret));
    uring_free(r);
    return NULL;
}

void uring_free(struct uring *r)
{
    if (r == NULL)
        return;
    io_uring_queue_exit(&r->ring); /* cancels what is still armed */
    free(r->br);
    free(r->bufs);
    free(r);
}
