/* The main thread's loop: signals, admin, health checks, ufrag expiry; workers do the
 * rest. */
#include <malloc.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "mux443/core/krelay.h"
#include "mux443/core/udp_kernel.h"
#include "mux443/core/udp_relay.h"
#include "mux443/lib/log.h"
#include "mux443/runtime/admin.h"
#include "mux443/runtime/daemon.h"
#include "mux443/runtime/health.h"
#include "mux443/runtime/privileges.h"
#include "mux443/runtime/reload.h"
#include "mux443/runtime/status.h"
#include "mux443/runtime/workers.h"
#include "mux443/state/history.h"
#include "mux443/state/metrics.h"
#include "mux443/state/ufrag.h"

static int stop_signals;

static void signal_cb(struct ev_loop *loop, ev_signal *s, int revents)
{
    (void)loop;
    (void)revents;
    if (s->signum == SIGHUP) {
        if (!stop_signals)
            reload_now();
        return;
    }
    if (++stop_signals > 1) {
        log_warnx("second signal: exiting at once");
        _exit(0);
    }
    atomic_store(&mx.ready, 0);
    struct snap *cur = reload_current();
    log_info("signal %d: draining (up to %.0fs), new connections refused", s->signum,
             cur->cfg->drain_timeout);
    snap_unref(cur);
    workers_drain();
    /* The main loop keeps running until the workers are done: a second signal is seen. */
}

/* Each TLS handshake in flight holds ~35 KB of OpenSSL's working memory, freed when it
 * ends, but among long-lived allocations: after a burst (clients reconnecting at once)
 * the heap keeps those holes resident. Once a burst is over (a second with few new
 * connections after one with many), the free pages go back to the system. Called once a
 * second; never during sustained load, where the next handshakes reuse the holes (giving
 * them back there would only cost page faults). The cost: malloc_trim walks each arena
 * under its lock, so a worker allocating meanwhile waits, once per burst (~22 ms for a
 * 126 MB heap with a third of it free in small pieces, measured apart; far less free is
 * usual). */
static void heap_after_burst(void)
{
    enum { BURST = 256, CALM = 16 };
    static unsigned long long last;
    static bool burst;
    unsigned long long now = atomic_load(&mx.accepted), n = now - last;

    last = now;
    if (n >= BURST) {
        burst = true;
    } else if (burst && n < CALM) {
        burst = false;
        malloc_trim(0);
    }
}

static void sweep_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)t;
    (void)revents;
    heap_after_burst();
    ufrag_sweep();
    /* The status page's sparklines: one sample a second. */
    struct snap *s = reload_current();
    if (s)
        history_sample(s->route_mx, s->cfg->nroutes);
    snap_unref(s);
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

int daemon_run(struct snap *s, const char *path)
{
    struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
    ev_signal sigterm, sigint, sighup;
    ev_timer sweep;
    char addrs[512];

    raise_nofile();
    if (workers_init(s) < 0) {
        snap_unref(s);
        return 3;
    }
    krelay_init(s->cfg); /* loading a BPF program needs the privileges dropped next */
    udp_relay_kernel_init(s->cfg, workers_count());
    privileges_drop(s->cfg);

    signal(SIGPIPE, SIG_IGN);
    ev_signal_init(&sigterm, signal_cb, SIGTERM);
    ev_signal_init(&sigint, signal_cb, SIGINT);
    ev_signal_init(&sighup, signal_cb, SIGHUP);
    ev_signal_start(loop, &sigterm);
    ev_signal_start(loop, &sigint);
    ev_signal_start(loop, &sighup);
    if (s->cfg->admin.n && admin_start(loop, &s->cfg->admin.v[0]) < 0) {
        snap_unref(s);
        return 3;
    }
    reload_init(s, path, loop);
    /* The workers, the reload module and the health checks hold references of their own
     * now: keeping the caller's would keep this first snapshot (and the gauges of its
     * servers) live after every reload. */
    snap_unref(s);
    status_init();
    ev_timer_init(&sweep, sweep_cb, 1.0, 1.0);
    ev_timer_start(loop, &sweep);
    ev_unref(loop); /* the sweep alone must not keep the main loop running */

    workers_start(loop);
    workers_addresses(addrs, sizeof(addrs));
    atomic_store(&mx.ready, 1);
    log_info("ready: listening on %s with %u worker%s", addrs, workers_count(),
             workers_count() == 1 ? "" : "s");
    ev_run(loop, 0); /* until every worker has drained */
    workers_free();
    log_info("all connections closed: exiting");
    ev_ref(loop);
    ev_timer_stop(loop, &sweep);
    health_configure(loop, NULL);
    reload_fini();
    krelay_fini();
    udp_kernel_fini();
    return 0;
}
