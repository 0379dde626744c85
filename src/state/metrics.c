/* Counters and the Prometheus text rendering. Hot paths only do relaxed atomic adds;
 * the registry of named entries takes a lock only when an entry is first created. */
#include <dirent.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "mux443/lib/log.h"
#include "mux443/state/metrics.h"
#include "mux443/state/udp_metrics.h"

struct mx_global mx;

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mx_route *routes;
static struct mx_server *servers;
static struct mx_listener *listeners;
static size_t nentries;
static const char *const detect_names[MXD_COUNT] = {
    "matched", "unknown", "timeout", "client_closed", "preread_limit", "proxy_error", "refused"};
static const char *const outcome_names[MXO_COUNT] = {"refused", "tls-failed", "closed"};
static const char *const refuse_names[MXR_COUNT] = {"max_connections", "listener_max", "per_client",
                                                    "proxy_untrusted", "preread_budget"};
static const char *const tls_fail_names[MXT_COUNT] = {
    "protocol_version", "no_shared_cipher", "certificate", "closed", "other", "timeout"};
static const char *const fanout_refuse_names[MXF_COUNT] = {
    "not_binding", "bad_username", "no_integrity",   "per_client",
    "rate",        "fanout_max",   "max_connections"};

struct mx_route *mx_route_get(const char *name)
{
    struct mx_route *r;
    pthread_mutex_lock(&registry_lock);
    for (r = routes; r; r = r->next)
        if (strcmp(r->name, name) == 0)
            break;
    if (!r && (r = calloc(1, sizeof(*r)))) {
        snprintf(r->name, sizeof(r->name), "%s", name);
        struct mx_route **tail = &routes; /* in order of creation: /metrics follows the config */
        while (*tail)
            tail = &(*tail)->next;
        *tail = r;
        nentries++;
    }
    pthread_mutex_unlock(&registry_lock);
    if (!r)
        fatal("out of memory");
    return r;
}

struct mx_server *mx_server_get(const char *backend, const char *addr)
{
    struct mx_server *s;
    pthread_mutex_lock(&registry_lock);
    for (s = servers; s; s = s->next)
        if (strcmp(s->backend, backend) == 0 && strcmp(s->addr, addr) == 0)
            break;
    if (!s && (s = calloc(1, sizeof(*s)))) {
        snprintf(s->backend, sizeof(s->backend), "%s", backend);
        snprintf(s->addr, sizeof(s->addr), "%s", addr);
        struct mx_server **tail = &servers; /* in order of creation: /metrics follows the config */
        while (*tail)
            tail = &(*tail)->next;
        *tail = s;
        nentries++;
    }
    pthread_mutex_unlock(&registry_lock);
    if (!s)
        fatal("out of memory");
    return s;
}

struct mx_listener *mx_listener_get(const char *name)
{
    struct mx_listener *l;
    pthread_mutex_lock(&registry_lock);
    for (l = listeners; l; l = l->next)
        if (strcmp(l->name, name) == 0)
            break;
    if (!l && (l = calloc(1, sizeof(*l)))) {
        snprintf(l->name, sizeof(l->name), "%s", name);
        struct mx_listener **tail =
            &listeners; /* in order of creation: /metrics follows the config */
        while (*tail)
            tail = &(*tail)->next;
        *tail = l;
        nentries++;
    }
    pthread_mutex_unlock(&registry_lock);
    if (!l)
        fatal("out of memory");
    return l;
}

size_t mx_registry_size(void)
{
    pthread_mutex_lock(&registry_lock);
    size_t n = nentries;
    pthread_mutex_unlock(&registry_lock);
    return n;
}

#define LD(x) ((unsigned long long)atomic_load_explicit(&(x), memory_order_relaxed))

static void head(FILE *out, const char *name, const char *type, const char *help)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static long count_fds(void)
{
    long n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n - 3; /* ".", ".." and the directory's own descriptor */
}

static void ufrag_render(FILE *out);
static void process_render(FILE *out);

void metrics_render(FILE *out)
{
    head(out, "mux443_connections_accepted_total", "counter", "Connections accepted.");
    fprintf(out, "mux443_connections_accepted_total %llu\n", LD(mx.accepted));
    head(out, "mux443_connections_total", "counter",
         "Connections by class once recognised (https, wss, turns: inside terminated TLS), "
         "or how they ended without one (refused, tls-failed, closed); the sum is "
         "mux443_connections_accepted_total less the connections still being recognised.");
    for (int i = 1; i < LABEL_COUNT; i++)
        fprintf(out, "mux443_connections_total{class=\"%s\"} %llu\n",
                class_label_name((enum class_label)i), LD(mx.conns_total[i]));
    for (int i = 0; i < MXO_COUNT; i++)
        fprintf(out, "mux443_connections_total{class=\"%s\"} %llu\n", outcome_names[i],
                LD(mx.conns_outcome[i]));
    head(out, "mux443_connections_open", "gauge", "Connections open, by class.");
    for (int i = 0; i < LABEL_COUNT; i++)
        fprintf(out, "mux443_connections_open{class=\"%s\"} %lld\n",
                class_label_name((enum class_label)i), (long long)atomic_load(&mx.conns_open[i]));
    head(out, "mux443_detection_total", "counter", "How detection of the first bytes ended.");
    for (int i = 0; i < MXD_COUNT; i++)
        fprintf(out, "mux443_detection_total{outcome=\"%s\"} %llu\n", detect_names[i],
                LD(mx.detect[i]));
    head(out, "mux443_refused_total", "counter", "Connections refused by a limit.");
    for (int i = 0; i < MXR_COUNT; i++)
        fprintf(out, "mux443_refused_total{limit=\"%s\"} %llu\n", refuse_names[i],
                LD(mx.refused[i]));
    head(out, "mux443_tls_handshakes_total", "counter", "TLS handshakes completed.");
    fprintf(out, "mux443_tls_handshakes_total %llu\n", LD(mx.tls_handshakes));
    head(out, "mux443_tls_handshake_failures_total", "counter", "TLS handshakes failed.");
    for (int i = 0; i < MXT_COUNT; i++)
        fprintf(out, "mux443_tls_handshake_failures_total{reason=\"%s\"} %llu\n", tls_fail_names[i],
                LD(mx.tls_failures[i]));
    head(out, "mux443_tls_truncated_total", "counter",
         "Terminated TLS clients whose stream ended without close_notify.");
    fprintf(out, "mux443_tls_truncated_total %llu\n", LD(mx.tls_truncated));
    head(out, "mux443_kernel_relay_total", "counter",
         "Connections of relay = kernel routes: relayed by the kernel, left to user space "
         "(fallback), closed for their kernel backlog.");
    fprintf(out, "mux443_kernel_relay_total{result=\"kernel\"} %llu\n", LD(mx.krelay_started));
    fprintf(out, "mux443_kernel_relay_total{result=\"fallback\"} %llu\n", LD(mx.krelay_fallback));
    fprintf(out, "mux443_kernel_relay_total{result=\"backlog_closed\"} %llu\n",
            LD(mx.krelay_backlog_closed));
    head(out, "mux443_kernel_relay_backlog_bytes", "gauge",
         "Bytes the kernel relay holds that receivers have not acknowledged.");
    fprintf(out, "mux443_kernel_relay_backlog_bytes %lld\n",
            (long long)atomic_load(&mx.krelay_backlog));
    head(out, "mux443_reloads_total", "counter", "Configuration reloads (SIGHUP).");
    fprintf(out, "mux443_reloads_total{result=\"ok\"} %llu\n", LD(mx.reloads_ok));
    fprintf(out, "mux443_reloads_total{result=\"failed\"} %llu\n", LD(mx.reloads_failed));

    pthread_mutex_lock(&registry_lock);
    head(out, "mux443_route_connections_total", "counter", "Connections relayed, by route.");
    for (struct mx_route *r = routes; r; r = r->next)
        fprintf(out, "mux443_route_connections_total{route=\"%s\"} %llu\n", r->name, LD(r->conns));
    head(out, "mux443_route_bytes_total", "counter",
         "Bytes relayed by route; in = from clients, out = to clients.");
    for (struct mx_route *r = routes; r; r = r->next) {
        fprintf(out, "mux443_route_bytes_total{route=\"%s\",direction=\"in\"} %llu\n", r->name,
                LD(r->bytes_in));
        fprintf(out, "mux443_route_bytes_total{route=\"%s\",direction=\"out\"} %llu\n", r->name,
                LD(r->bytes_out));
    }
    head(out, "mux443_backend_server_up", "gauge",
         "1 when the server is in service (health checks passing or not configured).");
    for (struct mx_server *s = servers; s; s = s->next)
        if (atomic_load(&s->live) > 0)
            fprintf(out, "mux443_backend_server_up{backend=\"%s\",server=\"%s\"} %d\n", s->backend,
                    s->addr, !atomic_load(&s->down));
    head(out, "mux443_backend_connects_total", "counter", "Successful backend connects.");
    for (struct mx_server *s = servers; s; s = s->next)
        fprintf(out, "mux443_backend_connects_total{backend=\"%s\",server=\"%s\"} %llu\n",
                s->backend, s->addr, LD(s->connects));
    head(out, "mux443_backend_connect_failures_total", "counter",
         "Backend connects refused or timed out.");
    for (struct mx_server *s = servers; s; s = s->next)
        fprintf(out, "mux443_backend_connect_failures_total{backend=\"%s\",server=\"%s\"} %llu\n",
                s->backend, s->addr, LD(s->connect_failures));
    /* The ufrag series exist where they mean something: with a balance = ufrag backend. */
    bool ufrag = false;
    for (struct mx_server *s = servers; s; s = s->next)
        ufrag |= atomic_load(&s->ufrag);
    if (ufrag)
        head(out, "mux443_ufrag_fanout_wins_total", "counter",
             "ICE-TCP fan-outs won by each server (it owned the ufrag).");
    for (struct mx_server *s = servers; s; s = s->next)
        if (atomic_load(&s->ufrag))
            fprintf(out, "mux443_ufrag_fanout_wins_total{backend=\"%s\",server=\"%s\"} %llu\n",
                    s->backend, s->addr, LD(s->fanout_wins));
    pthread_mutex_unlock(&registry_lock);

    if (ufrag)
        ufrag_render(out);
    udp_metrics_render(out);
    process_render(out);
}

static void ufrag_render(FILE *out)
{
    head(out, "mux443_ufrag_lookups_total", "counter", "ICE-TCP ufrag table lookups.");
    fprintf(out, "mux443_ufrag_lookups_total{result=\"hit\"} %llu\n", LD(mx.ufrag_hits));
    fprintf(out, "mux443_ufrag_lookups_total{result=\"miss\"} %llu\n", LD(mx.ufrag_misses));
    head(out, "mux443_ufrag_fanouts_total", "counter", "Fan-outs for unknown ufrags.");
    fprintf(out, "mux443_ufrag_fanouts_total %llu\n", LD(mx.fanouts));
    head(out, "mux443_ufrag_fanout_failures_total", "counter",
         "Fan-outs where no server answered with a Binding success.");
    fprintf(out, "mux443_ufrag_fanout_failures_total %llu\n", LD(mx.fanout_failures));
    head(out, "mux443_ufrag_fanout_refused_total", "counter",
         "ICE checks with an unknown ufrag (ICE-TCP connections, UDP flows) not fanned out, by "
         "reason.");
    for (int i = 0; i < MXF_COUNT; i++)
        fprintf(out, "mux443_ufrag_fanout_refused_total{reason=\"%s\"} %llu\n",
                fanout_refuse_names[i], LD(mx.fanout_refused[i]));
    head(out, "mux443_ufrag_entries", "gauge", "Entries in the ufrag table.");
    fprintf(out, "mux443_ufrag_entries %lld\n", (long long)atomic_load(&mx.ufrag_entries));
}

const char *mx_outcome_name(enum mx_outcome o)
{
    return (unsigned)o < MXO_COUNT ? outcome_names[o] : "none";
}

long mx_open_fds(void)
{
    return count_fds();
}

long mx_max_fds(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return -1;
    return (long)rl.rlim_cur;
}

long mx_rss_bytes(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return rss * sysconf(_SC_PAGESIZE);
}

static void process_render(FILE *out)
{
    head(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    fprintf(out, "process_resident_memory_bytes %ld\n", mx_rss_bytes());
    head(out, "process_open_fds", "gauge", "Open file descriptors.");
    fprintf(out, "process_open_fds %ld\n", count_fds());
    long max = mx_max_fds();
    if (max >= 0) {
        head(out, "process_max_fds", "gauge", "Limit of open file descriptors (RLIMIT_NOFILE).");
        fprintf(out, "process_max_fds %ld\n", max);
    }
}
