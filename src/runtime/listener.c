/* Workers and listening sockets: each worker thread runs its own libev loop over its own
 * SO_REUSEPORT sockets (the kernel spreads connections). The main thread binds, handles
 * signals (reload, drain), runs the admin listener and the health checks. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mux443/runtime/admin.h"
#include "mux443/core/conn.h"
#include "mux443/runtime/health.h"
#include "mux443/runtime/listener.h"
#include "mux443/lib/log.h"
#include "mux443/state/metrics.h"
#include "mux443/state/ufrag.h"

atomic_uint listener_open_conns;

static struct worker *workers;
static unsigned nworkers;
static struct ev_loop *main_loop;
static const char *cfg_path;

/* The snapshot new connections get, as seen by the main thread (admin, reload). */
static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cfg *current;

struct cfg *admin_cfg_get(void)
{
    pthread_mutex_lock(&current_lock);
    struct cfg *c = cfg_ref(current);
    pthread_mutex_unlock(&current_lock);
    return c;
}

static int open_listen_socket(const struct cfg_addr *a)
{
    int one = 1;
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
        goto fail;
    /* Accepted sockets inherit it: signalling and STUN are small messages that Nagle
     * would hold back. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    /* [::]:443 next to 0.0.0.0:443 must not also claim the IPv4 port. */
    if (a->ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0 || listen(fd, 1024) < 0)
        goto fail;
    return fd;
fail:;
    int e = errno;
    close(fd);
    errno = e;
    return -1;
}

/* Frees the socket list a, closing its sockets that `keep` does not also hold. */
static void lsocks_drop(struct lsock *a, size_t na, const struct lsock *keep, size_t nkeep)
{
    for (size_t i = 0; i < na; i++) {
        bool kept = false;
        for (size_t k = 0; k < nkeep; k++)
            kept |= keep[k].fd == a[i].fd;
        if (!kept)
            close(a[i].fd);
    }
    free(a);
}

/* The listening sockets one worker should have for snapshot c, reusing the sockets of
 * `old` bound to the same addresses (so a reload never closes a listener it keeps).
 * Returns NULL after logging when an address cannot be bound (new sockets are closed). */
static struct lsock *lsocks_for(struct worker *w, struct cfg *c, const struct lsock *old,
                                size_t nold, size_t *n)
{
    size_t total = 0, k = 0;
    for (size_t i = 0; i < c->nlisteners; i++)
        total += c->listeners[i].addrs.n;
    struct lsock *v = calloc(total ? total : 1, sizeof(*v));
    if (!v)
        return NULL;
    for (size_t i = 0; i < c->nlisteners; i++) {
        struct cfg_listener *l = &c->listeners[i];
        for (size_t a = 0; a < l->addrs.n; a++, k++) {
            v[k].lst = l;
            v[k].addr = &l->addrs.v[a];
            v[k].w = w;
            v[k].fd = -1;
            for (size_t j = 0; j < nold; j++)
                if (old[j].fd >= 0 && strcmp(old[j].addr->text, v[k].addr->text) == 0)
                    v[k].fd = old[j].fd;
            if (v[k].fd < 0 && (v[k].fd = open_listen_socket(v[k].addr)) < 0) {
                log_warn("listener %s: cannot listen on %s", l->name, v[k].addr->text);
                lsocks_drop(v, k, old, nold);
                return NULL;
            }
        }
    }
    *n = total;
    return v;
}

static void accept_cb(struct ev_loop *loop, ev_io *io, int revents);

static void lsocks_start(struct worker *w)
{
    for (size_t i = 0; i < w->nlsocks; i++) {
        ev_io_init(&w->lsocks[i].io, accept_cb, w->lsocks[i].fd, EV_READ);
        ev_io_start(w->loop, &w->lsocks[i].io);
    }
}

static void lsocks_stop(struct worker *w)
{
    for (size_t i = 0; i < w->nlsocks; i++)
        ev_io_stop(w->loop, &w->lsocks[i].io);
}

static void accept_resume_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct worker *w = t->data;
    (void)loop;
    (void)revents;
    if (!w->stopping)
        lsocks_start(w);
}

static void accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct lsock *ls = (struct lsock *)io;
    struct worker *w = ls->w;
    (void)revents;

    /* A bounded batch per wakeup keeps one busy listener from starving the relays. */
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(ls->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED)
                return;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of descriptors: keep serving open connections, retry accepting in a
                 * moment instead of spinning on a listener that stays readable. */
                log_warn("worker %u: accept on %s paused for 1s", w->id, ls->addr->text);
                lsocks_stop(w);
                ev_timer_set(&w->accept_pause, 1.0, 0);
                ev_timer_start(loop, &w->accept_pause);
                return;
            }
            log_warn("worker %u: accept on %s", w->id, ls->addr->text);
            return;
        }
        conn_accept(w, ls->lst, fd, (struct sockaddr *)&ss, sl);
    }
}

void worker_conn_closed(struct worker *w)
{
    w->nconns--;
    if (w->stopping && w->nconns == 0)
        ev_break(w->loop, EVBREAK_ALL);
}

static void drain_timeout_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct worker *w = t->data;
    (void)loop;
    (void)revents;
    while (w->conns)
        conn_close(w->conns, true, "drain timeout");
}

/* Applies a new snapshot handed over by the main thread: listeners it no longer has are
 * closed, kept ones continue on the same socket, connections keep their own snapshot. */
static void worker_apply(struct worker *w, struct cfg *c, struct lsock *v, size_t n)
{
    lsocks_stop(w);
    lsocks_drop(w->lsocks, w->nlsocks, v, n);
    w->lsocks = v;
    w->nlsocks = n;
    cfg_unref(w->cfg);
    w->cfg = c;
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
    if (w->mbox_cfg)
        worker_apply(w, w->mbox_cfg, w->mbox_lsocks, w->mbox_n);
    w->mbox_cfg = NULL;
    w->mbox_lsocks = NULL;
    bool stop = w->mbox_stop;
    pthread_mutex_unlock(&w->mbox_lock);

    if (!stop || w->stopping)
        return;
    w->stopping = true;
    ev_timer_stop(loop, &w->accept_pause);
    lsocks_stop(w);
    for (size_t i = 0; i < w->nlsocks; i++)
        close(w->lsocks[i].fd);
    w->nlsocks = 0;
    if (w->nconns == 0) {
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    ev_timer_init(&w->drain_timer, drain_timeout_cb, w->cfg->drain_timeout, 0);
    w->drain_timer.data = w;
    ev_timer_start(loop, &w->drain_timer);
}

static ev_async main_worker_done;
static atomic_uint workers_done;

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    ev_run(w->loop, 0);
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

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t old = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    if (old < rl.rlim_max && setrlimit(RLIMIT_NOFILE, &rl) != 0)
        rl.rlim_cur = old;
    log_info("open files limit: %llu (hard limit %llu)", (unsigned long long)rl.rlim_cur,
             (unsigned long long)rl.rlim_max);
}

int workers_init(struct cfg *c, const char *path)
{
    raise_nofile();
    cfg_path = path;
    current = cfg_ref(c);
    nworkers = c->workers;
    workers = calloc(nworkers, sizeof(*workers));
    if (!workers)
        return -1;
    for (unsigned i = 0; i < nworkers; i++) {
        struct worker *w = &workers[i];
        w->id = i;
        w->cfg = cfg_ref(c);
        w->loop = ev_loop_new(EVFLAG_AUTO);
        w->scratch = malloc(RELAY_BUF);
        pthread_mutex_init(&w->mbox_lock, NULL);
        if (!w->loop || !w->scratch) {
            log_error("worker %u: out of memory", i);
            return -1;
        }
        if (!(w->lsocks = lsocks_for(w, c, NULL, 0, &w->nlsocks)))
            return -1;
        lsocks_start(w);
        ev_async_init(&w->wake, wake_cb);
        w->wake.data = w;
        ev_async_start(w->loop, &w->wake);
        ev_timer_init(&w->accept_pause, accept_resume_cb, 1.0, 0);
        w->accept_pause.data = w;
    }
    return 0;
}

/* SIGHUP: load and validate the file again (certificates included); on success every
 * worker switches to the new snapshot and its listeners, connections keep theirs. */
static void reload(void)
{
    char *errs = NULL;
    size_t errlen = 0;
    FILE *ef = open_memstream(&errs, &errlen);
    struct cfg *c = ef ? cfg_load(cfg_path, ef) : NULL;
    if (ef)
        fclose(ef);
    if (!c) {
        for (char *line = strtok(errs ? errs : (char *)"", "\n"); line; line = strtok(NULL, "\n"))
            log_warnx("reload: %s", line);
        log_warnx("reload: %s is invalid: the running configuration stays in force", cfg_path);
        MX_INC(mx.reloads_failed);
        free(errs);
        return;
    }
    free(errs);
    if (c->workers != nworkers)
        log_warnx("reload: workers = %u needs a restart; keeping %u", c->workers, nworkers);

    /* Workers change their sockets only when the main thread posts an update: with every
     * mailbox empty, their socket lists are stable and can be read here. */
    bool busy = false;
    for (unsigned i = 0; i < nworkers; i++) {
        pthread_mutex_lock(&workers[i].mbox_lock);
        busy |= workers[i].mbox_cfg != NULL;
        pthread_mutex_unlock(&workers[i].mbox_lock);
    }
    if (busy) {
        log_warnx("reload: the previous reload is still being applied: send SIGHUP again");
        MX_INC(mx.reloads_failed);
        cfg_unref(c);
        return;
    }
    struct lsock **v = calloc(nworkers, sizeof(*v));
    size_t *n = calloc(nworkers, sizeof(*n));
    bool ok = v && n;
    for (unsigned i = 0; ok && i < nworkers; i++) {
        v[i] = lsocks_for(&workers[i], c, workers[i].lsocks, workers[i].nlsocks, &n[i]);
        ok = v[i] != NULL;
    }
    if (!ok) {
        log_warnx("reload: a listener cannot be bound: the running configuration stays in "
                  "force");
        MX_INC(mx.reloads_failed);
        /* Sockets opened for the aborted reload: those not shared with the running set. */
        for (unsigned i = 0; v && i < nworkers && v[i]; i++)
            lsocks_drop(v[i], n[i], workers[i].lsocks, workers[i].nlsocks);
        free(v);
        free(n);
        cfg_unref(c);
        return;
    }
    for (unsigned i = 0; i < nworkers; i++) {
        struct worker *w = &workers[i];
        pthread_mutex_lock(&w->mbox_lock);
        w->mbox_cfg = cfg_ref(c);
        w->mbox_lsocks = v[i];
        w->mbox_n = n[i];
        pthread_mutex_unlock(&w->mbox_lock);
        ev_async_send(w->loop, &w->wake);
    }
    free(v);
    free(n);
    pthread_mutex_lock(&current_lock);
    struct cfg *old = current;
    current = c;
    pthread_mutex_unlock(&current_lock);
    health_configure(main_loop, c);
    ufrag_configure(main_loop, c);
    log_set_level((enum log_level)c->log_level);
    MX_INC(mx.reloads_ok);
    log_info("reload: %s loaded (%zu listeners, %zu backends, %zu routes, %zu certificates)",
             cfg_path, c->nlisteners, c->nbackends, c->nroutes, c->ntls);
    cfg_unref(old);
}

static int stop_signals;

static void signal_cb(struct ev_loop *loop, ev_signal *s, int revents)
{
    (void)loop;
    (void)revents;
    if (s->signum == SIGHUP) {
        if (!stop_signals)
            reload();
        return;
    }
    if (++stop_signals > 1) {
        log_warnx("second signal: exiting at once");
        _exit(0);
    }
    atomic_store(&mx.ready, 0);
    log_info("signal %d: draining (up to %.0fs), new connections refused", s->signum,
             current->drain_timeout);
    for (unsigned i = 0; i < nworkers; i++) {
        pthread_mutex_lock(&workers[i].mbox_lock);
        workers[i].mbox_stop = true;
        pthread_mutex_unlock(&workers[i].mbox_lock);
        ev_async_send(workers[i].loop, &workers[i].wake);
    }
    /* The main loop keeps running until the workers are done: a second signal is seen. */
}

int workers_run(void)
{
    struct ev_loop *loop = main_loop = ev_default_loop(EVFLAG_AUTO);
    ev_signal sigterm, sigint, sighup;
    char addrs[512] = "";

    signal(SIGPIPE, SIG_IGN);
    ev_signal_init(&sigterm, signal_cb, SIGTERM);
    ev_signal_init(&sigint, signal_cb, SIGINT);
    ev_signal_init(&sighup, signal_cb, SIGHUP);
    ev_signal_start(loop, &sigterm);
    ev_signal_start(loop, &sigint);
    ev_signal_start(loop, &sighup);
    ev_async_init(&main_worker_done, worker_done_cb);
    ev_async_start(loop, &main_worker_done);
    if (current->admin.n && admin_start(loop, &current->admin.v[0]) < 0)
        return 3;
    health_configure(loop, current);
    ufrag_configure(loop, current);

    /* Workers must not take the signals: block them before creating the threads. */
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

    for (size_t i = 0; i < workers[0].nlsocks; i++) {
        size_t n = strlen(addrs);
        snprintf(addrs + n, sizeof(addrs) - n, "%s%s", i ? ", " : "",
                 workers[0].lsocks[i].addr->text);
    }
    atomic_store(&mx.ready, 1);
    log_info("ready: listening on %s with %u worker%s", addrs, nworkers, nworkers == 1 ? "" : "s");
    ev_run(loop, 0); /* until every worker has drained */
    for (unsigned i = 0; i < nworkers; i++)
        pthread_join(workers[i].thread, NULL);
    log_info("all connections closed: exiting");
    health_configure(loop, NULL);
    for (unsigned i = 0; i < nworkers; i++) {
        struct worker *w = &workers[i];
        ev_loop_destroy(w->loop);
        cfg_unref(w->cfg);
        cfg_unref(w->mbox_cfg);
        free(w->mbox_lsocks);
        free(w->scratch);
        free(w->lsocks);
    }
    free(workers);
    cfg_unref(current);
    return 0;
}
