/* The configuration key table (name, type, range, default, help: it drives parsing,
 * defaults, the reference and the man page), value parsing, and the parse-time forms of
 * the sections that load.c fills and validates. */
#ifndef MUX443_CONF_KEYS_H
#define MUX443_CONF_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "mux443/conf/desc.h"
#include "mux443/lib/log.h"
#include "mux443/lib/names.h"

enum sec_kind { SEC_MAIN, SEC_LISTENER, SEC_BACKEND, SEC_ROUTEMAP, SEC_RULE, SEC_TLS, SEC_UNKNOWN };

enum key_type {
    K_ADDRS,   /* comma list of IP:PORT / [IPv6]:PORT; the key may repeat */
    K_SERVERS, /* comma list of HOST:PORT (names resolved at load); may repeat */
    K_SECONDS, /* duration: 5, 0.5, 500ms, 10s, 2m, 1h */
    K_SIZE,    /* bytes: 32768, 32k */
    K_UINT,
    K_BOOL,
    K_ENUM,    /* one of `choices` ("a|b|c"), stored as its index */
    K_STRLIST, /* comma list of words */
    K_PATHS,   /* comma list of file paths; relative ones are relative to the config file */
    K_STRING,
    K_BACKEND, /* name of a [backend NAME], resolved after parsing */
    K_CLASSES, /* comma list of traffic classes */
    K_WORKERS, /* auto | 1..WORKERS_MAX */
    K_MAXCONN, /* auto (from the descriptor limit, cfg_auto_max_connections) | number */
    K_CIDRS,   /* comma list of IP[/LEN] */
};

/* What loading does beyond the file itself; all optional. */
struct cfg_load_opts {
    /* Resolve backend host names (getaddrinfo). Off: numeric addresses only (fuzzing). */
    bool resolve_names;
    /* Checks the certificates and keys of a [tls] section and fills t->names from them
     * and its TLS policy keys (the TLS layer's tls_check_section). False with a message
     * in err; *bad_key names the key at fault ("cert", "key", "ciphers", ...: the error
     * points at its line). NULL: no check (t->names stays empty). */
    bool (*check_tls)(struct cfg_tls *t, char *err, size_t cap, const char **bad_key);
};

/* A reference to a backend by name, resolved in the validation pass. */
struct ref {
    char *name;
    int line;
};

/* Parse-time forms of each section. The snapshot types are embedded so that the table's
 * offsets point straight at the fields that end up in the snapshot. */
struct raw_main {
    struct cfg_addrlist listen;
    int listen_line;
    unsigned workers;
    int log_level, log_format;
    double peek_timeout, connect_timeout, idle_timeout, drain_timeout;
    unsigned preread_max, max_connections, max_per_client, fanout_max;
    unsigned krelay_backlog, krelay_budget;
    struct cfg_strlist krelay_devices;
    unsigned client_prefix_v4, client_prefix_v6, preread_budget, fanout_per_client, fanout_rate;
    double ufrag_ttl, ufrag_grace, fanout_timeout;
    bool udp;
    double udp_idle_timeout;
    unsigned udp_max_flows, udp_per_prefix, udp_new_per_sec, udp_budget;
    bool udp_transparent;
    int udp_io;
    char *user, *group;
    struct cfg_addrlist admin;
    struct cfg_strlist admin_hosts, admin_origins;
    char *admin_token_file;
};

struct raw_listener {
    struct cfg_listener l;
};

struct raw_backend {
    struct cfg_backend b;
};

struct raw_rule {
    struct cfg_route r;
    struct ref backend;
};

struct raw_routemap {
    struct ref cls[CLASS_COUNT];
    struct ref tls_default; /* inside terminated TLS, what no rule routes */
};

struct raw_tls {
    struct cfg_tls t;
};

struct key_def {
    enum sec_kind sec;
    const char *name;
    enum key_type type;
    size_t off;
    double min, max;
    const char *choices;
    const char *dflt; /* applied when the key is absent; NULL = required or inherited */
    const char *help;
};

#define CFG_MAX_KEYS 96
#define WORKERS_MAX  256 /* worker threads at most (`workers`) */
extern const struct key_def cfg_keys[];
extern const size_t cfg_nkeys;
#define CFG_NKEYS cfg_nkeys

struct section {
    enum sec_kind kind;
    char *title; /* as written between the brackets */
    int line;
    void *obj;
    int key_line[CFG_MAX_KEYS]; /* line each key was set on; 0 = not set */
};

struct err {
    int line;
    char *msg;
};

struct parse {
    const char *file;
    const struct cfg_load_opts *opts;
    FILE *in;
    int line;
    struct section **secs;
    size_t nsecs;
    struct section *cur;
    struct raw_main *main;
    struct raw_routemap *routemap;
    struct err *errs;
    size_t nerrs;
};

/* Allocation that cannot fail (exits on out of memory: the loader has no partial state
 * worth keeping). */
/* max_connections = auto: (hard RLIMIT_NOFILE - CFG_FD_RESERVE) / 2; 0 (no limit) when
 * the descriptor limit is infinite. */
unsigned cfg_auto_max_connections(void);
void *cfg_xcalloc(size_t n, size_t sz);
void *cfg_xrealloc(void *p, size_t n, size_t sz);
char *cfg_xstrdup(const char *s);
/* Records "FILE:LINE: [section] key: msg" (sec and key may be NULL). */
void cfg_perr(struct parse *ps, int line, const struct section *sec, const char *key,
              const char *fmt, ...) LOG_FMT(5, 6);
char *cfg_trim(char *s);
/* Parses `value` for key k of section sec into its object, recording errors. */
void cfg_set_value(struct parse *ps, struct section *sec, const struct key_def *k,
                   const char *value, int line);
const char *cfg_type_expect(const struct key_def *k, char *buf, size_t cap);
/* The line key was set on in sec, or the section's own line when it was not set. */
int cfg_key_line(const struct section *sec, const char *key);

/* Prints the key table (section, key, type, default, help): as text (--help-config) or as
 * the mux443.ini(5) manual page (--man-config), so the documentation cannot drift. */
void cfg_print_reference(FILE *out, bool man);

#endif
