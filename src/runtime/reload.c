/* Configuration loading for the daemon and SIGHUP reloads. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "mux443/conf/load.h"
#include "mux443/lib/log.h"
#include "mux443/runtime/health.h"
#include "mux443/runtime/privileges.h"
#include "mux443/runtime/reload.h"
#include "mux443/runtime/workers.h"
#include "mux443/state/history.h"
#include "mux443/state/metrics.h"
#include "mux443/state/ufrag.h"
#include "mux443/tls/tls_ctx.h"

static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;
static struct snap *current;
static const char *cfg_path;
static struct ev_loop *loop;

struct cfg *reload_describe(const char *path, FILE *errs)
{
    const struct cfg_load_opts opts = {.resolve_names = true, .check_tls = tls_check_section};
    return cfg_load(path, errs, &opts);
}

struct snap *reload_load(const char *path, FILE *errs)
{
    struct cfg *c = reload_describe(path, errs);
    return c ? snap_activate(c, errs) : NULL;
}

/* What follows the snapshot on the main thread: checks, ufrag lifetimes, log level. */
static void apply_main(struct snap *s)
{
    health_configure(loop, s);
    ufrag_set_timing(s->cfg->ufrag_ttl, s->cfg->ufrag_grace);
    log_set_level((enum log_level)s->cfg->log_level);
    log_set_format((enum log_format)s->cfg->log_format);
}

void reload_init(struct snap *s, const char *path, struct ev_loop *main_loop)
{
    cfg_path = path;
    loop = main_loop;
    current = snap_ref(s);
    health_configure(loop, s);
    ufrag_set_timing(s->cfg->ufrag_ttl, s->cfg->ufrag_grace);
}

struct snap *reload_current(void)
{
    pthread_mutex_lock(&current_lock);
    struct snap *s = current ? snap_ref(current) : NULL;
    pthread_mutex_unlock(&current_lock);
    return s;
}

void reload_now(void)
{
    char *errs = NULL;
    size_t errlen = 0;
    FILE *ef = open_memstream(&errs, &errlen);
    privileges_raise(); /* read root-only certificates, bind ports below 1024 */
    struct snap *s = ef ? reload_load(cfg_path, ef) : NULL;
    struct lsock_set *sets = s ? workers_prepare(s) : NULL;
    privileges_lower();
    if (ef)
        fclose(ef);
    if (!s) {
        char *save = NULL;
        bool first = true;
        for (char *line = strtok_r(errs ? errs : (char *)"", "\n", &save); line;
             line = strtok_r(NULL, "\n", &save)) {
            log_warnx("reload: %s", line);
            if (first)
                history_reload(false, line);
            first = false;
        }
        if (first)
            history_reload(false, "the configuration could not be read");
        log_warnx("reload: %s is invalid: the running configuration stays in force", cfg_path);
        MX_INC(mx.reloads_failed);
        free(errs);
        return;
    }
    free(errs);
    if (s->cfg->workers != workers_count())
        log_warnx("reload: workers = %u needs a restart; keeping %u", s->cfg->workers,
                  workers_count());
    if (!sets) {
        log_warnx("reload: the running configuration stays in force");
        history_reload(false, "the listeners of the new configuration could not be opened");
        MX_INC(mx.reloads_failed);
        snap_unref(s);
        return;
    }
    workers_post(s, sets);
    pthread_mutex_lock(&current_lock);
    struct snap *old = current;
    current = s;
    pthread_mutex_unlock(&current_lock);
    apply_main(s);
    MX_INC(mx.reloads_ok);
    history_reload(true, NULL);
    log_info("reload: %s loaded (%zu listeners, %zu backends, %zu routes, %zu certificates)",
             cfg_path, s->cfg->nlisteners, s->cfg->nbackends, s->cfg->nroutes, s->cfg->ntls);
    snap_unref(old);
}

void reload_fini(void)
{
    pthread_mutex_lock(&current_lock);
    struct snap *s = current;
    current = NULL;
    pthread_mutex_unlock(&current_lock);
    snap_unref(s);
}
