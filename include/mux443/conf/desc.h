/* The configuration as a plain description: what load.c builds from the INI file and
 * nothing else (no TLS contexts, no metrics, no sockets; core/snapshot.h makes it live),
 * never changed once loaded; and what is done with one: look-ups and freeing. */
#ifndef MUX443_CONF_DESC_H
#define MUX443_CONF_DESC_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "mux443/lib/addr.h"
#include "mux443/lib/probe.h"

struct cfg_addr {
    struct sockaddr_storage ss;
    socklen_t len;
    char text[ADDR_TEXT_MAX]; /* "127.0.0.1:443" / "[::1]:443", for logs */
};

struct cfg_addrlist {
    struct cfg_addr *v;
    size_t n;
};

/* Descriptors kept out of max_connections = auto (listeners, admin, health checks,
 * logs, reloads reading files). */
#define CFG_FD_RESERVE     64
#define CFG_FD_RESERVE_STR "64"
/* TLS 1.2 suites by default (Mozilla "intermediate" without DHE): ECDHE key exchange,
 * AEAD only. */
#define CFG_TLS12_CIPHERS                                                                          \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"     \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

struct cfg_cidrlist {
    struct addr_cidr *v;
    size_t n;
};

struct cfg_listener {
    char *name;
    int line;
    struct cfg_addrlist addrs;
    bool proxy_in;                  /* expects a PROXY v1/v2 header from a trusted load balancer */
    double peek_timeout;            /* seconds allowed to recognise the client */
    unsigned preread_max;           /* bytes buffered while recognising */
    unsigned max_connections;       /* 0 = no limit */
    struct cfg_cidrlist proxy_from; /* who may send the PROXY header; empty = anyone */
    bool udp;                       /* also UDP on the same addresses (README "UDP on 443") */
};

enum cfg_udp_io { UDP_IO_AUTO = 0, UDP_IO_EPOLL, UDP_IO_URING };
enum cfg_balance { BALANCE_ROUNDROBIN = 0, BALANCE_SOURCE, BALANCE_UFRAG };
enum cfg_health { HEALTH_NONE = 0, HEALTH_TCP, HEALTH_STUN, HEALTH_HTTP };

struct cfg_backend {
    char *name;
    int line;
    struct cfg_addrlist servers;
    char **ufrag_prefix; /* per server: `ufrag_prefix=` option, or NULL */
    int proxy_protocol;  /* 0 = none, 1 = v1, 2 = v2 */
    double connect_timeout;
    bool tcp_fastopen; /* TCP_FASTOPEN_CONNECT toward the servers */
    enum cfg_balance balance;
    int health; /* enum cfg_health */
    char *health_path;
    double health_interval, health_timeout;
    unsigned health_rise, health_fall;
};

struct cfg_strlist {
    char **v;
    size_t n;
};

/* A rule's `tls` key. passthrough and terminate are decisions on a ClientHello: the
 * first relays the TLS bytes untouched, the second terminates with mux443's certificate
 * and sends whatever is inside that no other rule routes by class to this rule's
 * backend. */
/* A route's relay = : user space, or the kernel (sockmap) when both legs are plain. */
enum cfg_relay { RELAY_USER = 0, RELAY_KERNEL };

enum cfg_tls_match { TLSM_ANY = 0, TLSM_YES, TLSM_NO, TLSM_PASSTHROUGH, TLSM_TERMINATE };

/* A [tls] or [tls NAME] section: certificate chains + keys (RSA and/or ECDSA) served for
 * the names in their certificates. */
struct cfg_tls {
    char *name; /* "" for the unnamed [tls] */
    int line, cert_line, key_line;
    struct cfg_strlist certs, keys; /* parallel: keys.v[i] belongs to certs.v[i] */
    bool is_default;                /* serves clients without SNI or with an SNI no other covers */
    struct cfg_strlist names;       /* from the certificates' SAN (CN if no SAN), filled
                                       by the certificate check (cfg_load_opts) */
    int min_version;                /* 0 = TLS 1.2, 1 = TLS 1.3 */
    char *ciphers;                  /* TLS 1.2 cipher list; NULL = CFG_TLS12_CIPHERS */
    char *ciphersuites;             /* TLS 1.3 suites; NULL = OpenSSL's defaults */
};

struct cfg_route {
    char *name; /* "[route NAME]" -> NAME; class-map entries are named after the class */
    int line;
    unsigned classes;                   /* bit (1u << CLASS_x) per class; 0 = any class */
    struct cfg_strlist sni, alpn, host; /* sni/host may hold "*.example.com" */
    char *path;                         /* prefix; NULL = any */
    char *ufrag;                        /* server-ufrag prefix; NULL = any */
    struct cfg_strlist ws_protocol;     /* WebSocket subprotocols (any offered one) */
    char *mqtt_client;                  /* MQTT client identifier prefix; NULL = any */
    struct cfg_strlist listeners;       /* accepted on one of these listeners; none = any */
    int tls;  /* enum cfg_tls_match: the client used TLS (passthrough or terminated) or not */
    bool map; /* an entry of the [route] class map (tried after the named rules) */
    bool inside_default; /* [route] tls_default: matched by no criteria, only chosen for
                            what terminated TLS carried that nothing else routes */
    const struct cfg_backend *backend;
    double idle_timeout;
    int relay;               /* enum cfg_relay */
    double udp_idle_timeout; /* the route's idle_timeout when set, else [mux443]'s udp_ one */
};

struct cfg {
    char *path;
    unsigned workers; /* resolved: "auto" = number of online CPUs */
    int log_level;
    int log_format; /* enum log_format */
    double peek_timeout, connect_timeout, idle_timeout, drain_timeout;
    unsigned preread_max;
    unsigned max_connections;                    /* 0 = unlimited */
    unsigned max_per_client;                     /* 0 = unlimited */
    unsigned client_prefix_v4, client_prefix_v6; /* per-client limits group by these */
    unsigned preread_budget;                     /* bytes of detection buffers, all connections */
    unsigned fanout_per_client;                  /* fan-outs in progress per client */
    unsigned fanout_rate;                        /* fan-outs started per second, all clients */
    double ufrag_ttl;      /* registered ufrags without connections expire after this */
    double ufrag_grace;    /* kept this long after their last connection closed */
    double fanout_timeout; /* a fan-out waits this long for a Binding success */
    unsigned fanout_max;   /* fan-outs in progress at once, all workers */
    /* UDP flows (README "UDP on 443"): all workers together, each enforcing its share */
    double udp_idle_timeout;
    unsigned udp_max_flows, udp_per_prefix, udp_new_per_sec, udp_budget;
    unsigned krelay_backlog;           /* relay = kernel: unacknowledged bytes per direction */
    unsigned krelay_budget;            /* ... all connections together */
    struct cfg_strlist krelay_devices; /* the UDP kernel path's devices; "auto" = all up */
    bool udp_transparent;      /* upstream datagrams from the client's address (IP_TRANSPARENT) */
    int udp_io;                /* enum cfg_udp_io */
    char *user, *group;        /* drop privileges to these after binding; NULL = stay */
    struct cfg_addrlist admin; /* 0 or 1 address */
    struct cfg_strlist admin_hosts;   /* Host names the admin API answers besides IPs */
    struct cfg_strlist admin_origins; /* Origin values allowed; others are refused */
    char *admin_token;                /* read from admin_token_file; NULL = no token */

    struct cfg_listener *listeners;
    size_t nlisteners;
    struct cfg_backend *backends;
    size_t nbackends;
    struct cfg_route *routes; /* named rules in file order, then the class map */
    size_t nroutes;
    /* The class map by class; [CLASS_UNKNOWN] is `default`, [CLASS_TIMEOUT] `on_timeout`. */
    const struct cfg_route *route_map[CLASS_COUNT];
    const struct cfg_route *tls_inside_default; /* [route] tls_default, or NULL */

    struct cfg_tls *tls;
    size_t ntls;
    const struct cfg_tls *tls_default;
    uint8_t alpn[256]; /* ALPN we accept when terminating, wire format, our preference order */
    unsigned alpn_len;
};

/* Frees a description (NULL ok). */
void cfg_free(struct cfg *c);
/* Frees what a route's or a [tls] section's fields own (not the struct itself). */
void cfg_route_clear(struct cfg_route *r);
void cfg_tls_clear(struct cfg_tls *t);

void cfg_strlist_add(struct cfg_strlist *l, const char *s);

/* Index of r in c->routes, b in c->backends, and so on (they are arrays). */
#define CFG_INDEX(arr, elem) ((size_t)((elem) - (arr)))

const struct cfg_backend *cfg_backend_find(const struct cfg *c, const char *name);
const struct cfg_listener *cfg_listener_find(const struct cfg *c, const char *name);

#endif
