/* Process-wide counters and health state, rendered as Prometheus text. Per-route and
 * per-server entries live in a registry keyed by name, so they survive reloads (new
 * snapshots look them up by name) and counters stay monotonic. */
#ifndef MUX443_METRICS_H
#define MUX443_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>

/* Class labels as logged: plain classes, then what was found inside terminated TLS. */
enum mx_class {
    MXC_NONE,
    MXC_TLS,
    MXC_HTTP,
    MXC_WEBSOCKET,
    MXC_STUN,
    MXC_ICE_TCP,
    MXC_UNKNOWN,
    MXC_TIMEOUT,
    MXC_HTTPS,
    MXC_WSS,
    MXC_TURNS,
    MXC_COUNT
};

/* How detection ended. */
enum mx_detect {
    MXD_MATCHED,
    MXD_UNKNOWN,
    MXD_TIMEOUT,
    MXD_CLOSED,
    MXD_PREREAD_LIMIT,
    MXD_PROXY_ERROR,
    MXD_COUNT
};

enum mx_refuse { MXR_MAX_CONNECTIONS, MXR_LISTENER_MAX, MXR_PER_CLIENT, MXR_COUNT };

struct mx_route {
    char name[64];
    atomic_ullong conns, bytes_in, bytes_out;
    struct mx_route *next;
};

struct mx_server {
    char backend[64], addr[64];
    atomic_ullong connects, connect_failures, fanout_wins;
    atomic_int down; /* set by the health checker; 0 = in service */
    int streak;      /* health checker only: consecutive results against the state */
    struct mx_server *next;
};

struct mx_global {
    atomic_ullong accepted, conns_total[MXC_COUNT];
    atomic_llong conns_open[MXC_COUNT];
    atomic_ullong detect[MXD_COUNT], refused[MXR_COUNT];
    atomic_ullong tls_handshakes, tls_failures, tls_failures_timeout;
    atomic_ullong reloads_ok, reloads_failed;
    atomic_ullong ufrag_hits, ufrag_misses, fanouts, fanout_failures;
    atomic_llong ufrag_entries;
    atomic_int ready; /* listeners are up (healthz) */
};

extern struct mx_global mx;

/* Registry lookups: create on first use, never freed. Thread-safe. */
struct mx_route *mx_route_get(const char *name);
struct mx_server *mx_server_get(const char *backend, const char *addr);

enum mx_class mx_class_of(const char *logged_name);
#define MX_INC(field)    atomic_fetch_add_explicit(&(field), 1, memory_order_relaxed)
#define MX_ADD(field, n) atomic_fetch_add_explicit(&(field), (n), memory_order_relaxed)

/* Writes every metric in the Prometheus text exposition format (version 0.0.4). */
void metrics_render(FILE *out);

#endif
