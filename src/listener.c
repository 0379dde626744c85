/* Workers and listening sockets: each worker thread runs its own libev loop over its own
 * SO_REUSEPORT sockets (the kernel spreads connections); the main thread handles signals
 * and drain. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mux443/conn.h"
#include "mux443/listener.h"
#include "mux443/log.h"

atomic_uint listener_open_conns;

static struct worker *workers;
static unsigned nworkers;
static struct cfg *run_cfg;

static int open_listen_socket(const struct cfg_addr *a)
{
    int one = 1;
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
        goto fail;
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

static void accept_cb(struct ev_loop *loop, ev_io *io, int revents);

static void accept_resume_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct worker *w = t->data;
    (void)revents;
    if (w->stopping)
        return;
    for (size_t i = 0; i < w->nlsocks; i++)
        ev_io_start(loop, &w->lsocks[i].io);
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
                for (size_t k = 0; k < w->nlsocks; k++)
                    ev_io_stop(loop, &w->lsocks[k].io);
                ev_timer_set(&w->accept_pause, 1.0, 0);
                ev_timer_start(loop, &w->accept_pause);
                return;
            }
            log_warn("worker %u: accept on %s", w->id, ls->addr->text);
            return;
        }
        unsigned max = w->cfg->max_connections;
        if (max && atomic_load(&listener_open_conns) >= max) {
            static _Atomic long last_log;
            long now = (long)ev_now(loop);
            if (atomic_exchange(&last_log, now) != now)
                log_warnx("max_connections (%u) reached: refusing new connections", max);
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        atomic_fetch_add(&listener_open_conns, 1);
        conn_accept(w, ls->lst, fd, (struct sockaddr *)&ss, sl);
    }
}

void worker_conn_closed(struct worker *w)
{
    w->nconns--;
    atomic_fetch_sub(&listener_open_conns, 1);
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

/* Main thread asked this worker to stop: close the listeners, let connections finish. */
static void wake_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    struct worker *w = a->data;
    (void)revents;
    if (w->stopping)
        return;
    w->stopping = true;
    ev_timer_stop(loop, &w->accept_pause);
    for (size_t i = 0; i < w->nlsocks; i++) {
        ev_io_stop(loop, &w->lsocks[i].io);
        close(w->lsocks[i].fd);
        w->lsocks[i].fd = -1;
    }
    if (w->nconns == 0) {
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    ev_timer_init(&w->drain_timer, drain_timeout_cb, w->cfg->drain_timeout, 0);
    w->drain_timer.data = w;
    ev_timer_start(loop, &w->drain_timer);
}

static struct ev_loop *main_loop;
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
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rlim_t old = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
            log_info("open files limit raised from %llu to %llu", (unsigned long long)old,
                     (unsigned long long)rl.rlim_max);
    }
}

int workers_init(struct cfg *c)
{
    size_t naddrs = 0;

    raise_nofile();
    run_cfg = c;
    nworkers = c->workers;
    workers = calloc(nworkers, sizeof(*workers));
    for (size_t i = 0; i < c->nlisteners; i++)
        naddrs += c->listeners[i].addrs.n;
    for (unsigned i = 0; i < nworkers; i++) {
        struct worker *w = &workers[i];
        w->id = i;
        w->cfg = cfg_ref(c);
        w->loop = ev_loop_new(EVFLAG_AUTO);
        w->scratch = malloc(RELAY_BUF);
        w->lsocks = calloc(naddrs, sizeof(*w->lsocks));
        if (!w->loop || !w->scratch || !w->lsocks) {
            log_error("worker %u: out of memory", i);
            return -1;
        }
        for (size_t li = 0; li < c->nlisteners; li++) {
            const struct cfg_listener *l = &c->listeners[li];
            for (size_t ai = 0; ai < l->addrs.n; ai++) {
                struct lsock *ls = &w->lsocks[w->nlsocks++];
                ls->lst = l;
                ls->addr = &l->addrs.v[ai];
                ls->w = w;
                ls->fd = open_listen_socket(ls->addr);
                if (ls->fd < 0) {
                    log_warn("listener %s: cannot listen on %s", l->name, ls->addr->text);
                    return -1;
                }
                ev_io_init(&ls->io, accept_cb, ls->fd, EV_READ);
                ev_io_start(w->loop, &ls->io);
            }
        }
        ev_async_init(&w->wake, wake_cb);
        w->wake.data = w;
        ev_async_start(w->loop, &w->wake);
        ev_timer_init(&w->accept_pause, accept_resume_cb, 1.0, 0);
        w->accept_pause.data = w;
    }
    return 0;
}

static int signals_seen;

static void signal_cb(struct ev_loop *loop, ev_signal *s, int revents)
{
    (void)revents;
    if (++signals_seen > 1) {
        log_warnx("second signal: exiting at once");
        _exit(0);
    }
    log_info("signal %d: draining (up to %.0fs), new connections refused", s->signum,
             run_cfg->drain_timeout);
    for (unsigned i = 0; i < nworkers; i++)
        ev_async_send(workers[i].loop, &workers[i].wake);
    (void)loop; /* the main loop keeps running: a second signal must still be seen */
}

int workers_run(void)
{
    struct ev_loop *loop = main_loop = ev_default_loop(EVFLAG_AUTO);
    ev_signal sigterm, sigint;
    char addrs[512] = "";

    signal(SIGPIPE, SIG_IGN);
    ev_signal_init(&sigterm, signal_cb, SIGTERM);
    ev_signal_init(&sigint, signal_cb, SIGINT);
    ev_signal_start(loop, &sigterm);
    ev_signal_start(loop, &sigint);
    ev_async_init(&main_worker_done, worker_done_cb);
    ev_async_start(loop, &main_worker_done);

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
    log_info("ready: listening on %s with %u worker%s", addrs, nworkers, nworkers == 1 ? "" : "s");
    ev_run(loop, 0); /* until every worker has drained */
    for (unsigned i = 0; i < nworkers; i++)
        pthread_join(workers[i].thread, NULL);
    log_info("all connections closed: exiting");
    for (unsigned i = 0; i < nworkers; i++) {
        ev_loop_destroy(workers[i].loop);
        cfg_unref(workers[i].cfg);
        free(workers[i].scratch);
        free(workers[i].lsocks);
    }
    free(workers);
    return 0;
}
