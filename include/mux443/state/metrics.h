/* Process-wide counters and health state, rendered as Prometheus text. Per-route,
 * per-server and per-listener entries live in a registry keyed by name, so that they
 * outlive configuration snapshots (a new snapshot binds the entries of its names when it
 * is activated) and counters stay monotonic. Nothing here is registered while a
 * configuration is only being parsed or checked. */
#ifndef MUX443_STATE_METRICS_H
#define MUX443_STATE_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>

#include "mux443/lib/addr.h"
#include "mux443/lib/classes.h"
#include "mux443/lib/names.h"

/* How detection ended. */
enum mx_detect {
    MXD_MATCHED,
    MXD_UNKNOWN,
    MXD_TIMEOUT,
    MXD_CLOSED,
    MXD_PREREAD_LIMIT,
    MXD_PROXY_ERROR,
    MXD_REFUSED, /* recognised, but ambiguous (e.g. two Host headers): refused */
    MXD_COUNT
};

/* Connections that never got a class, counted in mux443_connections_total beside the
 * classes so that the classes and these add up to mux443_connections_accepted_total. */
enum mx_outcome {
    MXO_REFUSED,    /* refused by a limit (or out of memory) when accepted */
    MXO_TLS_FAILED, /* the TLS handshake mux443 terminates failed or timed out */
    MXO_CLOSED,     /* closed before detection ended (or a bad PROXY header) */
    MXO_COUNT
};

enum mx_refuse {
    MXR_MAX_CONNECTIONS,
    MXR_LISTENER_MAX,
    MXR_PER_CLIENT,
    MXR_PROXY_UNTRUSTED, /* a PROXY listener's peer is not in proxy_from */
    MXR_PREREAD_BUDGET,  /* preread_budget spent */
    MXR_COUNT
};

/* Why a TLS handshake failed (the first five in tls_conn.h's enum tls_fail order). */
enum mx_tls_fail {
    MXT_PROTOCOL_VERSION,
    MXT_NO_SHARED_CIPHER,
    MXT_CERTIFICATE,
    MXT_CLOSED,
    MXT_OTHER,
    MXT_TIMEOUT,
    MXT_COUNT
};

/* Why an ICE-TCP fan-out was not started. */
enum mx_fanout_refuse {
    MXF_NOT_BINDING,     /* the first frame is not a Binding request */
    MXF_BAD_USERNAME,    /* no USERNAME with two well-formed ufrags */
    MXF_NO_INTEGRITY,    /* no MESSAGE-INTEGRITY: no media server would accept it */
    MXF_PER_CLIENT,      /* fanout_per_client in progress for this client */
    MXF_RATE,            /* fanout_rate started this second */
    MXF_FANOUT_MAX,      /* fanout_max in progress */
    MXF_MAX_CONNECTIONS, /* a candidate would exceed max_connections */
    MXF_COUNT
};

/* Entries of the registry. `live` counts the activated snapshots that use the entry:
 * gauges are shown only for live entries (a server removed by a reload stops being
 * reported as up or down), counters always. */
struct mx_route {
    char name[NAME_MAX_LEN + 1];
    atomic_ullong conns, bytes_in, bytes_out;
    atomic_int live;
    struct mx_route *next;
};

struct mx_server {
    char backend[NAME_MAX_LEN + 1], addr[ADDR_TEXT_MAX];
    atomic_ullong connects, connect_failures, fanout_wins;
    atomic_int down;      /* set by the health checker; 0 = in service */
    atomic_bool ufrag;    /* of a balance = ufrag backend (once): ufrag series are shown */
    int streak;           /* health checker only: consecutive results against the state */
    char last_check[128]; /* health checker only (main thread): "ok" or why it failed */
    double last_check_at; /* its wall-clock time; 0 = never checked */
    /* First writes in a row, right after connect(), that found the connect still going
     * (conn.c: tried again only now and then). */
    atomic_uint eager_miss;
    atomic_int live;
    struct mx_server *next;
};

/* A listener's open connections live here, keyed by its name, so that its
 * max_connections holds across reloads (connections accepted under an older snapshot
 * still count). */
struct mx_listener {
    char name[NAME_MAX_LEN + 1];
    atomic_uint open;
    atomic_int live;
    struct mx_listener *next;
};

struct mx_global {
    atomic_ullong accepted, conns_total[LABEL_COUNT], conns_outcome[MXO_COUNT];
    atomic_llong conns_open[LABEL_COUNT];
    atomic_uint open_all; /* connections open in the process (max_connections) */
    atomic_ullong detect[MXD_COUNT], refused[MXR_COUNT];
    atomic_ullong tls_handshakes, tls_failures[MXT_COUNT], tls_truncated;
    atomic_ullong reloads_ok, reloads_failed;
    atomic_ullong ufrag_hits, ufrag_misses, fanouts, fanout_failures, fanout_refused[MXF_COUNT];
    atomic_llong ufrag_entries;
    /* relay = kernel: connections the kernel relayed, those left in user space (sockmap
     * unavailable or refused the sockets), those closed for their kernel backlog; the
     * unacknowledged bytes the kernel holds now (as of each worker's last watchdog tick) */
    atomic_ullong krelay_started, krelay_fallback, krelay_backlog_closed;
    atomic_llong krelay_backlog;
    atomic_int ready; /* listeners are up (healthz) */
};

extern struct mx_global mx;

/* Registry lookups: create on first use, never freed; name and addr must fit their
 * fields (the loader refuses longer names). Thread-safe. */
struct mx_route *mx_route_get(const char *name);
struct mx_server *mx_server_get(const char *backend, const char *addr);
struct mx_listener *mx_listener_get(const char *name);

/* The number of entries in the registry (routes + servers + listeners), for tests. */
size_t mx_registry_size(void);

#define MX_INC(field)    atomic_fetch_add_explicit(&(field), 1, memory_order_relaxed)
#define MX_ADD(field, n) atomic_fetch_add_explicit(&(field), (n), memory_order_relaxed)

/* The name of an outcome in mux443_connections_total{class=...} ("tls-failed"). */
const char *mx_outcome_name(enum mx_outcome o);
/* Process figures: open descriptors, their limit (-1: none), resident memory in bytes. */
long mx_open_fds(void);
long mx_max_fds(void);
long mx_rss_bytes(void);

/* Writes every metric in the Prometheus text exposition format (version 0.0.4). */
void metrics_render(FILE *out);

#endif
