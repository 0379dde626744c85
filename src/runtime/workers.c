/* Worker threads: accept loops, snapshot hand-over through a mailbox, drain. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mux443/core/conn.h"
#include "mux443/core/udp_relay.h"
#include "mux443/lib/log.h"
#include "mux443/runtime/privileges.h"
#include "mux443/runtime/workers.h"

struct worker {
    struct conn_pool pool;
    pthread_t thread;
    struct snap *snap; /* snapshot for new connections (a reference) */
    struct lsock_set ls;
    ev_async wake; /* main thread -> worker: the mailbox below has something */
    pthread_mutex_t mbox_lock;
    struct snap *mbox_snap;   /* a new snapshot to apply (a reference), with ... */
    struct lsock_set mbox_ls; /* ... its listening sockets */
    bool mbox_stop;           /* drain */
    ev_timer accept_pause;    /* accept stopped after EMFILE/ENFILE, resumes on this */
    ev_timer drain_timer;
    bool stopping;
    struct udp_relay *udp; /* UDP flows, made on the first datagram (README "UDP on 443") */
};

static struct worker *workers;
static unsigned nworkers;
static struct ev_loop *main_loop;
static ev_async main_worker_done;
static atomic_uint workers_done;

unsigned workers_count(void)
{
    return nworkers;
}

static void accept_cb(struct ev_loop *loop, ev_io *io, int revents);
static void udp_read_cb(struct ev_loop *loop, ev_io *io, int revents);

static void lsocks_start(struct worker *w)
{
    for (size_t i = 0; i < w->ls.n; i++) {
        ev_io_init(&w->ls.v[i].io, w->ls.v[i].udp ? udp_read_cb : accept_cb, w->ls.v[i].fd,
                   EV_READ);
        w->ls.v[i].io.data = w;
        ev_io_start(w->pool.loop, &w->ls.v[i].io);
    }
}

static void lsocks_stop(struct worker *w)
{
    for (size_t i = 0; i < w->ls.n; i++)
        ev_io_stop(w->pool.loop, &w->ls.v[i].io);
}

static void accept_resume_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct worker *w = t->data;
    (void)loop;
    (void)revents;
    if (!w->stopping)
        lsocks_start(w);
}

/* Accepts up to a batch per wakeup. The batch follows the load: as many as the last
 * wakeup found pending (a batch that ends with accept4 answering EAGAIN costs that call,
 * at low rates one per connection), doubled when a batch was used up and the listener
 * was ready again at the very next loop iteration, up to 64 (bounded, so one busy
 * listener does not starve the relays). */
#define ACCEPT_BATCH_MAX 64
static void accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct lsock *ls = (struct lsock *)io;
    struct worker *w = io->data;
    unsigned iter = ev_iteration(loop) + 1; /* + 1: never 0 ("not full") */
    (void)revents;

    if (!ls->accept_batch)
        ls->accept_batch = 1;
    else if (ls->full_at && ls->full_at + 1 == iter && ls->accept_batch < ACCEPT_BATCH_MAX)
        ls->accept_batch *= 2;
    ls->full_at = 0;
    for (unsigned i = 0; i < ls->accept_batch; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(ls->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                ls->accept_batch = i ? i : 1;
                return;
            }
            if (errno == EINTR || errno == ECONNABORTED)
                return;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of descriptors: keep serving open connections, retry accepting in a
                 * moment instead of spinning on a listener that stays readable. */
                log_warn("worker %u: accept on %s paused for 1s", w->pool.id, ls->addr->text);
                lsocks_stop(w);
                ev_timer_set(&w->accept_pause, 1.0, 0);
                ev_timer_start(loop, &w->accept_pause);
                return;
            }
            log_warn("worker %u: accept on %s", w->pool.id, ls->addr->text);
            return;
        }
        conn_accept(&w->pool, w->snap, ls->lst, fd, (struct sockaddr *)&ss, sl);
    }
    ls->full_at = iter;
}

static void udp_read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct lsock *ls = (struct lsock *)io;
    struct worker *w = io->data;
    (void)revents;

    if (w->udp == NULL &&
        (w->udp = udp_relay_new(loop, w->pool.id, w->snap->cfg, nworkers)) == NULL) {
        ev_io_stop(loop, io); /* logged; TCP goes on */
        return;
    }
    udp_relay_read(w->udp, w->snap, ls->lst, ls->fd);
}

static void pool_closed(struct conn_pool *p)
{
    struct worker *w = p->data;
    if (w->stopping && p->nconns == 0)
        ev_break(p->loop, EVBREAK_ALL);
}

static void drain_timeout_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct worker *w = t->data;
    (void)loop;
    (void)revents;
    while (w->pool.conns)
        conn_close(w->pool.conns, true, "drain timeout");
}

/* Applies a new snapshot handed over by the main thread: listeners it no longer has are
 * closed, kept ones continue on the same socket, connections keep their own snapshot. */
static void worker_apply(struct worker *w, struct snap *s, struct lsock_set *ls)
{
    lsocks_stop(w);
    /* UDP flows of an address the new set no longer has cannot answer their clients. */
    for (size_t i = 0; i < w->ls.n; i++) {
        bool kept = false;
        for (size_t k = 0; k < ls->n; k++)
            kept |= ls->v[k].fd == w->ls.v[i].fd;
        if (w->ls.v[i].udp && !kept)
            udp_relay_forget(w->udp, w->ls.v[i].fd);
    }
    udp_relay_limits(w->udp, s->cfg, nworkers);
    lsocks_drop(&w->ls, ls);
    w->ls = *ls;
    snap_unref(w->snap);
    w->snap = s;
    if (!w->stopping && !ev_is_active(&w->accept_pause))
        lsocks_start(w);
}

/* Main thread -> worker: a new snapshot to apply, or stop (drain). */
static void wake_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    struct worker *w = a->data;
    (void)revents;

    /* Applied under the lock: once the main thread sees the mailbox empty, this worker's
     * sockets are settled and it may read them to prepare the next reload. */
    pthread_mutex_lock(&w->mbox_lock);
    if (w->mbox_snap)
        worker_apply(w, w->mbox_snap, &w->mbox_ls);
    w->mbox_snap = NULL;
    w->mbox_ls = (struct lsock_set){0};
    bool stop = w->mbox_stop;
    pthread_mutex_unlock(&w->mbox_lock);

    if (!stop || w->stopping)
        return;
    w->stopping = true;
    ev_timer_stop(loop, &w->accept_pause);
    lsocks_stop(w);
    udp_relay_free(w->udp, "shutdown");
    w->udp = NULL;
    lsocks_drop(&w->ls, NULL);
    if (w->pool.nconns == 0) {
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    ev_timer_init(&w->drain_timer, drain_timeout_cb, w->snap->cfg->drain_timeout, 0);
    w->drain_timer.data = w;
    ev_timer_start(loop, &w->drain_timer);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    privileges_thread(); /* capabilities are per thread: a worker needs none */
    ev_run(w->pool.loop, 0);
    atomic_fetch_add(&workers_done, 1);
    ev_async_send(main_loop, &main_worker_done);
    return NULL;
}

static void worker_done_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    (void)a;
    (void)revents;
    if (atomic_load(&workers_done) == nworkers)
        ev_break(loop, EVBREAK_ALL);
}

int workers_init(struct snap *s)
{
    nworkers = s->cfg->workers;
    workers = calloc(nworkers, sizeof(*workers));
    if (!workers)
        return -1;
    for (unsigned i = 0; i < nworkers; i++) {
        struct worker *w = &workers[i];
        w->pool.id = i;
        w->pool.data = w;
        w->pool.on_close = pool_closed;
        w->snap = snap_ref(s);
        w->pool.loop = ev_loop_new(EVFLAG_AUTO);
        w->pool.scratch = malloc(RELAY_BUF);
        pthread_mutex_init(&w->mbox_lock, NULL);
        if (!w->pool.loop || !w->pool.scratch) {
            log_error("worker %u: out of memory", i);
            return -1;
        }
        if (!conn_pool_init(&w->pool)) {
            log_error("worker %u: epoll_create1: %s", i, strerror(errno));
            return -1;
        }
        if (!lsocks_open(&w->ls, s->cfg, NULL))
            return -1;
        lsocks_start(w);
        ev_async_init(&w->wake, wake_cb);
        w->wake.data = w;
        ev_async_start(w->pool.loop, &w->wake);
        ev_timer_init(&w->accept_pause, accept_resume_cb, 1.0, 0);
        w->accept_pause.data = w;
    }
    return 0;
}

void workers_start(struct ev_loop *loop)
{
    main_loop = loop;
    ev_async_init(&main_worker_done, worker_done_cb);
    ev_async_start(loop, &main_worker_done);
    /* Workers must not take the signals: block them while creating the threads. */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    for (unsigned i = 0; i < nworkers; i++)
        if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0)
            fatal("cannot start worker %u", i);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

void workers_addresses(char *dst, size_t cap)
{
    size_t n = 0;
    dst[0] = '\0';
    for (size_t i = 0; nworkers && i < workers[0].ls.n && n < cap; i++)
        n += (size_t)snprintf(dst + n, cap - n, "%s%s", i ? ", " : "",
                              workers[0].ls.v[i].addr->text);
}

struct lsock_set *workers_prepare(const struct snap *s)
{
    /* Workers change their sockets only when the main thread posts an update: with every
     * mailbox empty, their socket lists are stable and can be read here. */
    bool busy = false;
    for (unsigned i = 0; i < nworkers; i++) {
        pthread_mutex_lock(&workers[i].mbox_lock);
        busy |= workers[i].mbox_snap != NULL;
        pthread_mutex_unlock(&workers[i].mbox_lock);
    }
    if (busy) {
        log_warnx("reload: the previous reload is still being applied: send SIGHUP again");
        return NULL;
    }
    struct lsock_set *sets = calloc(nworkers, sizeof(*sets));
    bool ok = sets != NULL;
    unsigned done = 0;
    for (; ok && done < nworkers; done++)
        ok = lsocks_open(&sets[done], s->cfg, &workers[done].ls);
    if (!ok) {
        /* Sockets opened for the aborted reload: those not shared with the running set. */
        for (unsigned i = 0; sets && i + 1 < done; i++)
            lsocks_drop(&sets[i], &workers[i].ls);
        free(sets);
        return NULL;
    }
    return sets;
}

void workers_post(struct snap *s, struct lsock_set *sets)
{
    for (unsigned i = 0; i < nworkers; i++) {
        struct worker *w = &workers[i];
        pthread_mutex_lock(&w->mbox_lock);
        w->mbox_snap = snap_ref(s);
        w->mbox_ls = sets[i];
        pthread_mutex_unlock(&w->mbox_lock);
        ev_async_send(w->pool.loop, &w->wake);
    }
    free(sets);
}

void workers_drain(void)
{
    for (unsigned i = 0; i < nworkers; i++) {
        pthread_mutex_lock(&workers[i].mbox_lock);
        workers[i].mbox_stop = true;
        pthread_mutex_unlock(&workers[i].mbox_lock);
        ev_async_send(workers[i].pool.loop, &workers[i].wake);
    }
}

void workers_free(void)
{
    for (unsigned i = 0; i < nworkers; i++)
        pthread_join(workers[i].thread, NULL);
    for (unsigned i = 0; i < nworkers; i++) {
        struct worker *w = &workers[i];
        udp_relay_free(w->udp, "shutdown");
        if (w->pool.runq.next) /* conn_pool_init ran */
            conn_pool_fini(&w->pool);
        ev_loop_destroy(w->pool.loop);
        snap_unref(w->snap);
        snap_unref(w->mbox_snap);
        free(w->mbox_ls.v);
        free(w->pool.scratch);
        free(w->ls.v);
    }
    free(workers);
    workers = NULL;
    nworkers = 0;
}
