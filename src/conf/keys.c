/* The configuration key table (name, type, range, default, help: it drives parsing,
 * defaults, the reference and the man page) and the parsing of each kind of value. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "mux443/conf/keys.h"
#include "mux443/lib/addr.h"
#include "mux443/lib/classes.h"
#include "mux443/lib/ice.h"

static const char *const sec_names[] = {"mux443", "listener NAME", "backend NAME",
                                        "route",  "route NAME",    "tls] or [tls NAME"};

#define M(f) offsetof(struct raw_main, f)
#define L(f) offsetof(struct raw_listener, l.f)
#define B(f) offsetof(struct raw_backend, b.f)
#define R(f) offsetof(struct raw_rule, f)
#define C(i) offsetof(struct raw_routemap, cls[i])
#define T(f) offsetof(struct raw_tls, t.f)

const struct key_def cfg_keys[] = {
    {SEC_MAIN, "listen", K_ADDRS, M(listen), 0, 0, NULL, NULL,
     "Addresses of the main listener, e.g. 0.0.0.0:443, [::]:443."},
    {SEC_MAIN, "workers", K_WORKERS, M(workers), 1, WORKERS_MAX, NULL, "auto",
     "Worker threads, each with its own event loop and SO_REUSEPORT sockets; auto = cores."},
    {SEC_MAIN, "log_level", K_ENUM, M(log_level), 0, 0, "error|warn|info|debug", "info",
     "Least severe level logged to stderr."},
    {SEC_MAIN, "log_format", K_ENUM, M(log_format), 0, 0, "text|json", "text",
     "Log lines as text, or as one JSON object per line (same fields) for log collectors."},
    {SEC_MAIN, "peek_timeout", K_SECONDS, M(peek_timeout), 0.01, 300, NULL, "5s",
     "Time a client has to send enough bytes to be recognised (listener default)."},
    {SEC_MAIN, "preread_max", K_SIZE, M(preread_max), 1024, 262144, NULL, "32k",
     "Bytes buffered while recognising a client (listener default)."},
    {SEC_MAIN, "connect_timeout", K_SECONDS, M(connect_timeout), 0.01, 300, NULL, "3s",
     "Time allowed to connect to a backend server before trying the next (backend default)."},
    {SEC_MAIN, "idle_timeout", K_SECONDS, M(idle_timeout), 1, 604800, NULL, "1h",
     "Close a relayed connection after this long without a byte either way (route default)."},
    {SEC_MAIN, "kernel_relay_backlog", K_SIZE, M(krelay_backlog), 65536, 1073741824, NULL, "1m",
     "Routes with relay = kernel: bytes the kernel may hold for one direction of a connection "
     "that its receiver has not acknowledged; past it the connection is closed (reason "
     "kernel backlog). 1m is seconds of any media stream."},
    {SEC_MAIN, "kernel_relay_budget", K_SIZE, M(krelay_budget), 1048576, 4294967295.0, NULL, "64m",
     "Routes with relay = kernel: unacknowledged bytes all kernel-relayed connections may "
     "hold together; past it the connection holding most is closed, one per worker and "
     "watchdog tick."},
    {SEC_MAIN, "kernel_relay_devices", K_STRLIST, M(krelay_devices), 0, 0, NULL, NULL,
     "Routes with relay = kernel on a UDP listener: the network devices whose incoming "
     "datagrams the kernel may relay (a tc program at their ingress, read at start); auto "
     "(or unset) = every device up at start, lo included. Datagrams arriving elsewhere go to "
     "user space."},
    {SEC_MAIN, "drain_timeout", K_SECONDS, M(drain_timeout), 0, 86400, NULL, "30s",
     "On SIGTERM/SIGINT, how long open connections may finish before they are closed."},
    {SEC_MAIN, "max_connections", K_MAXCONN, M(max_connections), 0, 10000000, NULL, "auto",
     "Connections open at once, all workers together (fan-out candidates included); auto = "
     "(hard open-files limit - " CFG_FD_RESERVE_STR ") / 2, each relayed connection needs two "
     "descriptors; 0 = no limit."},
    {SEC_MAIN, "max_connections_per_client", K_UINT, M(max_per_client), 0, 10000000, NULL, "512",
     "Connections open at once from one client (its address prefix, after PROXY); 512 leaves "
     "room for a large NAT (a browser opens a handful); 0 = no limit."},
    {SEC_MAIN, "client_prefix_v4", K_UINT, M(client_prefix_v4), 8, 32, NULL, "32",
     "Per-client limits count IPv4 clients by this prefix length (32 = each address)."},
    {SEC_MAIN, "client_prefix_v6", K_UINT, M(client_prefix_v6), 16, 128, NULL, "64",
     "Per-client limits count IPv6 clients by this prefix length (64 = one subscriber's "
     "LAN)."},
    {SEC_MAIN, "preread_budget", K_SIZE, M(preread_budget), 65536, 4294967295.0, NULL, "64m",
     "Bytes all detection buffers (unrecognised clients) may hold together; when spent, new "
     "connections are refused and a buffer that cannot grow ends its connection."},
    {SEC_MAIN, "ufrag_ttl", K_SECONDS, M(ufrag_ttl), 1, 604800, NULL, "10m",
     "A ufrag registered or learnt by fan-out, with no connection, is forgotten after this."},
    {SEC_MAIN, "ufrag_grace", K_SECONDS, M(ufrag_grace), 0, 86400, NULL, "30s",
     "After the last ICE-TCP connection of a ufrag closes, keep its entry this long."},
    {SEC_MAIN, "fanout_timeout", K_SECONDS, M(fanout_timeout), 0.05, 60, NULL, "2s",
     "How long a fan-out waits for a media server to answer the Binding request."},
    {SEC_MAIN, "fanout_max", K_UINT, M(fanout_max), 1, 100000, NULL, "256",
     "Fan-outs in progress at once (each opens a connection to every server of the pool); "
     "ICE-TCP's and UDP's are bounded apart."},
    {SEC_MAIN, "fanout_per_client", K_UINT, M(fanout_per_client), 1, 100000, NULL, "4",
     "Fan-outs in progress at once for one client (address prefix, as per-client limits)."},
    {SEC_MAIN, "fanout_rate", K_UINT, M(fanout_rate), 1, 1000000, NULL, "100",
     "Fan-outs started per second, all clients together; more are refused."},
    {SEC_MAIN, "udp", K_BOOL, M(udp), 0, 0, NULL, "no",
     "Also take UDP (STUN, TURN/UDP, ICE/UDP media) on the main listener's addresses."},
    {SEC_MAIN, "udp_idle_timeout", K_SECONDS, M(udp_idle_timeout), 1, 604800, NULL, "10m",
     "End a UDP flow after this long without a datagram either way (a route's idle_timeout "
     "overrides it for the route's flows); a flow no server has answered yet ends after 30s."},
    {SEC_MAIN, "udp_max_flows", K_UINT, M(udp_max_flows), 1, 10000000, NULL, "65536",
     "UDP flows open at once, all workers together (each worker holds an equal share); "
     "a full table refuses new flows. Needs a restart to change."},
    {SEC_MAIN, "udp_flows_per_prefix", K_UINT, M(udp_per_prefix), 0, 10000000, NULL, "1024",
     "UDP flows open at once from one client /24 (IPv4) or /64 (IPv6); 0 = no limit."},
    {SEC_MAIN, "udp_new_flows_per_sec", K_UINT, M(udp_new_per_sec), 0, 10000000, NULL, "5000",
     "New UDP flows accepted per second, all workers together; 0 = no limit."},
    {SEC_MAIN, "udp_unverified_budget", K_UINT, M(udp_budget), 1, 10000, NULL, "16",
     "Datagrams a UDP flow may send a server before the server has answered it once."},
    {SEC_MAIN, "udp_transparent", K_BOOL, M(udp_transparent), 0, 0, NULL, "no",
     "Send a UDP flow's datagrams to its servers from the client's own address and port "
     "(IP_TRANSPARENT: needs CAP_NET_ADMIN and policy routing for the replies, see README)."},
    {SEC_MAIN, "udp_io", K_ENUM, M(udp_io), 0, 0, "auto|epoll|uring", "auto",
     "How workers do UDP I/O: uring = io_uring (one system call per loop turn for every "
     "upstream send and receive), epoll = a send and a recv per datagram; auto = io_uring "
     "when the kernel allows it (Linux 6.0, not disabled by kernel.io_uring_disabled or a "
     "seccomp filter), else epoll. uring falls back to epoll too, with a warning."},
    {SEC_MAIN, "admin", K_ADDRS, M(admin), 0, 0, NULL, NULL,
     "Admin HTTP listener (/ status page, /healthz /metrics /routes /ufrags), e.g. "
     "127.0.0.1:9443; off when "
     "unset. Keep it on loopback, or set admin_token_file."},
    {SEC_MAIN, "admin_hosts", K_STRLIST, M(admin_hosts), 0, 0, NULL, NULL,
     "Host names the admin API answers to besides IP literals and localhost (DNS rebinding "
     "guard); other Host headers get 421."},
    {SEC_MAIN, "admin_origins", K_STRLIST, M(admin_origins), 0, 0, NULL, NULL,
     "Origin values (e.g. https://ops.example.com) allowed on the admin API; a request with "
     "any other Origin header gets 403. Default: none."},
    {SEC_MAIN, "admin_token_file", K_STRING, M(admin_token_file), 0, 0, NULL, NULL,
     "File holding a bearer token (16 to 4096 printable characters) required on every admin "
     "request but GET /healthz; read at start and on reload."},
    {SEC_MAIN, "user", K_STRING, M(user), 0, 0, NULL, NULL,
     "After binding, switch to this user (and its group); mux443 exits if it cannot."},
    {SEC_MAIN, "group", K_STRING, M(group), 0, 0, NULL, NULL,
     "Group to switch to (default: the user's own group)."},

    {SEC_LISTENER, "listen", K_ADDRS, L(addrs), 0, 0, NULL, NULL,
     "Addresses of this listener (required)."},
    {SEC_LISTENER, "proxy_protocol", K_BOOL, L(proxy_in), 0, 0, NULL, "no",
     "Expect a PROXY v1/v2 header first (only behind a trusted load balancer; set "
     "proxy_from). Without it, a client that starts with a PROXY header is refused."},
    {SEC_LISTENER, "proxy_from", K_CIDRS, L(proxy_from), 0, 0, NULL, NULL,
     "Addresses allowed to send the PROXY header, e.g. 10.0.0.0/8, 2001:db8::/32; others are "
     "refused before a byte is read. Unset with proxy_protocol = yes: any address (warned)."},
    {SEC_LISTENER, "peek_timeout", K_SECONDS, L(peek_timeout), 0.01, 300, NULL, NULL,
     "As in [mux443], for this listener."},
    {SEC_LISTENER, "preread_max", K_SIZE, L(preread_max), 1024, 262144, NULL, NULL,
     "As in [mux443], for this listener."},
    {SEC_LISTENER, "udp", K_BOOL, L(udp), 0, 0, NULL, "no",
     "Also take UDP on this listener's addresses (README \"UDP on 443\")."},
    {SEC_LISTENER, "max_connections", K_UINT, L(max_connections), 0, 10000000, NULL, "0",
     "Connections open at once on this listener; 0 = no limit."},

    {SEC_BACKEND, "server", K_SERVERS, B(servers), 0, 0, NULL, NULL,
     "HOST:PORT of each server, in failover order (required); may repeat. "
     "HOST:PORT ufrag_prefix=P sends ICE-TCP whose server ufrag starts with P there."},
    {SEC_BACKEND, "proxy_protocol", K_ENUM, B(proxy_protocol), 0, 0, "none|v1|v2", "none",
     "Send a PROXY header with the client's address first (coturn --tcp-proxy-port: v2)."},
    {SEC_BACKEND, "connect_timeout", K_SECONDS, B(connect_timeout), 0.01, 300, NULL, NULL,
     "As in [mux443], for this backend."},
    {SEC_BACKEND, "tcp_fastopen", K_BOOL, B(tcp_fastopen), 0, 0, NULL, "no",
     "TCP Fast Open toward the servers: the client's first bytes ride on the SYN once the "
     "kernel holds a cookie (the servers must enable TFO; caveats in README, configuration "
     "walk-through)."},
    {SEC_BACKEND, "balance", K_ENUM, B(balance), 0, 0, "roundrobin|source|ufrag", "roundrobin",
     "roundrobin: each connection to the next server; source: by a hash of the client IP; "
     "ufrag: ICE-TCP to the server owning the ufrag (registered, prefix, or found by "
     "fan-out)."},
    {SEC_BACKEND, "health", K_ENUM, B(health), 0, 0, "none|tcp|stun|http", "none",
     "Active check of each server: a TCP connect, a STUN Binding request, or an HTTP GET."},
    {SEC_BACKEND, "health_path", K_STRING, B(health_path), 0, 0, NULL, "/",
     "Path of the HTTP health check; 2xx and 3xx count as healthy."},
    {SEC_BACKEND, "health_interval", K_SECONDS, B(health_interval), 0.1, 3600, NULL, "5s",
     "Time between checks of one server."},
    {SEC_BACKEND, "health_timeout", K_SECONDS, B(health_timeout), 0.05, 60, NULL, "2s",
     "Time a check may take."},
    {SEC_BACKEND, "health_rise", K_UINT, B(health_rise), 1, 100, NULL, "2",
     "Consecutive passes that bring a failed server back."},
    {SEC_BACKEND, "health_fall", K_UINT, B(health_fall), 1, 100, NULL, "3",
     "Consecutive failures that take a server out of service."},

    {SEC_ROUTEMAP, "tls", K_BACKEND, C(CLASS_TLS), 0, 0, NULL, NULL, "Backend for TLS."},
    {SEC_ROUTEMAP, "http", K_BACKEND, C(CLASS_HTTP), 0, 0, NULL, NULL, "Backend for HTTP."},
    {SEC_ROUTEMAP, "websocket", K_BACKEND, C(CLASS_WEBSOCKET), 0, 0, NULL, NULL,
     "Backend for WebSocket upgrades."},
    {SEC_ROUTEMAP, "stun", K_BACKEND, C(CLASS_STUN), 0, 0, NULL, NULL,
     "Backend for STUN/TURN over TCP."},
    {SEC_ROUTEMAP, "ice-tcp", K_BACKEND, C(CLASS_ICE_TCP), 0, 0, NULL, NULL,
     "Backend for RFC 4571-framed ICE-TCP."},
    {SEC_ROUTEMAP, "sip", K_BACKEND, C(CLASS_SIP), 0, 0, NULL, NULL,
     "Backend for SIP over TCP (and inside terminated TLS: SIPS)."},
    {SEC_ROUTEMAP, "mqtt", K_BACKEND, C(CLASS_MQTT), 0, 0, NULL, NULL,
     "Backend for MQTT (a CONNECT packet); offers ALPN mqtt and x-amzn-mqtt-ca."},
    {SEC_ROUTEMAP, "ssh", K_BACKEND, C(CLASS_SSH), 0, 0, NULL, NULL,
     "Backend for SSH (the client's SSH-2.0- identification string)."},
    {SEC_ROUTEMAP, "quic", K_BACKEND, C(CLASS_QUIC), 0, 0, NULL, NULL,
     "Backend for QUIC over UDP (an HTTP/3 server): a flow opened by a client Initial on a "
     "listener with udp = yes; every later datagram of that client socket goes there too."},
    {SEC_ROUTEMAP, "tls_default", K_BACKEND, offsetof(struct raw_routemap, tls_default), 0, 0, NULL,
     NULL,
     "Backend for what arrives inside terminated TLS that no rule routes (unrecognised, "
     "silent, or a class without a route); without it such connections are closed."},
    {SEC_ROUTEMAP, "default", K_BACKEND, C(CLASS_UNKNOWN), 0, 0, NULL, NULL,
     "Backend for bytes no probe recognises; without it they are closed."},
    {SEC_ROUTEMAP, "on_timeout", K_BACKEND, C(CLASS_TIMEOUT), 0, 0, NULL, NULL,
     "Backend for clients silent past peek_timeout; without it they are closed."},

    {SEC_RULE, "class", K_CLASSES, R(r.classes), 0, 0, NULL, NULL,
     "Classes this rule applies to (tls, http, websocket, stun, ice-tcp, sip, mqtt, ssh, quic)."},
    {SEC_RULE, "sni", K_STRLIST, R(r.sni), 0, 0, NULL, NULL,
     "TLS server names; *.example.com matches one or more labels."},
    {SEC_RULE, "alpn", K_STRLIST, R(r.alpn), 0, 0, NULL, NULL,
     "Matches when the client offers any of these ALPN protocols."},
    {SEC_RULE, "host", K_STRLIST, R(r.host), 0, 0, NULL, NULL,
     "HTTP Host names, or SIP Request-URI hosts (port ignored); *.example.com wildcards."},
    {SEC_RULE, "path", K_STRING, R(r.path), 0, 0, NULL, NULL, "HTTP path prefix, e.g. /ws."},
    {SEC_RULE, "ufrag", K_STRING, R(r.ufrag), 0, 0, NULL, NULL, "ICE-TCP server ufrag prefix."},
    {SEC_RULE, "ws_protocol", K_STRLIST, R(r.ws_protocol), 0, 0, NULL, NULL,
     "WebSocket subprotocols (Sec-WebSocket-Protocol), e.g. sip; any one offered matches."},
    {SEC_RULE, "mqtt_client", K_STRING, R(r.mqtt_client), 0, 0, NULL, NULL,
     "MQTT client identifier prefix."},
    {SEC_RULE, "listener", K_STRLIST, R(r.listeners), 0, 0, NULL, NULL,
     "Names of the listeners this rule applies to (main for listen = under [mux443]); "
     "with tls = terminate, every ClientHello on them is terminated."},
    {SEC_RULE, "backend", K_BACKEND, R(backend), 0, 0, NULL, NULL,
     "Backend for connections this rule matches (required)."},
    {SEC_RULE, "tls", K_ENUM, R(r.tls), 0, 0, "any|yes|no|passthrough|terminate", "any",
     "yes: only clients that used TLS (a rule for class tls passes it through; for other "
     "classes mux443 terminated it); no: only plain-text clients; passthrough: a "
     "ClientHello matching sni/alpn is relayed untouched; terminate: it is terminated "
     "with the certificate for its SNI and what is inside goes to this backend unless a "
     "class rule routes it."},
    {SEC_RULE, "idle_timeout", K_SECONDS, R(r.idle_timeout), 1, 604800, NULL, NULL,
     "As in [mux443], for this route; also the idle timeout of its UDP flows."},
    {SEC_RULE, "relay", K_ENUM, R(r.relay), 0, 0, "user|kernel", "user",
     "kernel: once both legs are plain TCP (not TLS-terminated), the kernel moves the bytes "
     "(sockmap; lowest latency for small packets, e.g. ICE-TCP or TURN/TCP media; not for "
     "bulk), bounded by kernel_relay_backlog; on a UDP listener, a flow's datagrams once "
     "its server has answered (a tc program, kernel_relay_devices); falls back to user when "
     "unavailable. README \"Kernel relay\", \"UDP on 443\"."},

    {SEC_TLS, "cert", K_PATHS, T(certs), 0, 0, NULL, NULL,
     "PEM certificate chain files, leaf first (required); repeat for RSA + ECDSA."},
    {SEC_TLS, "key", K_PATHS, T(keys), 0, 0, NULL, NULL,
     "PEM private key files, one per cert, in the same order (required)."},
    {SEC_TLS, "default", K_BOOL, T(is_default), 0, 0, NULL, NULL,
     "Serve clients without SNI, or whose SNI no certificate covers; yes for [tls]."},
    {SEC_TLS, "min_version", K_ENUM, T(min_version), 0, 0, "tls1.2|tls1.3", "tls1.2",
     "Oldest TLS version accepted from clients."},
    {SEC_TLS, "ciphers", K_STRING, T(ciphers), 0, 0, NULL, NULL,
     "TLS 1.2 cipher list (OpenSSL syntax). Unset: Mozilla's intermediate profile, ECDHE "
     "with AES-GCM or ChaCha20-Poly1305 only (ECDHE-ECDSA-AES128-GCM-SHA256, "
     "ECDHE-RSA-AES128-GCM-SHA256, ECDHE-ECDSA-AES256-GCM-SHA384, ECDHE-RSA-AES256-GCM-SHA384, "
     "ECDHE-ECDSA-CHACHA20-POLY1305, ECDHE-RSA-CHACHA20-POLY1305)."},
    {SEC_TLS, "ciphersuites", K_STRING, T(ciphersuites), 0, 0, NULL, NULL,
     "TLS 1.3 suites (OpenSSL syntax); unset = OpenSSL's defaults (all AEAD)."},
};
const size_t cfg_nkeys = sizeof(cfg_keys) / sizeof(cfg_keys[0]);
_Static_assert(sizeof(cfg_keys) / sizeof(cfg_keys[0]) <= CFG_MAX_KEYS, "raise CFG_MAX_KEYS");

unsigned cfg_auto_max_connections(void)
{
    struct rlimit rl;
    /* mux443 raises its soft limit to the hard one at start (daemon.c). */
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_max == RLIM_INFINITY)
        return 0;
    rlim_t n = rl.rlim_max > 20000000 ? 20000000 : rl.rlim_max;
    return n > 2 * CFG_FD_RESERVE ? (unsigned)((n - CFG_FD_RESERVE) / 2) : (unsigned)(n / 4 + 1);
}

void *cfg_xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz);
    if (!p)
        fatal("out of memory");
    return p;
}

void *cfg_xrealloc(void *p, size_t n, size_t sz)
{
    p = realloc(p, (n ? n : 1) * sz);
    if (!p)
        fatal("out of memory");
    return p;
}

char *cfg_xstrdup(const char *s)
{
    char *d = strdup(s);
    if (!d)
        fatal("out of memory");
    return d;
}

/* Records "FILE:LINE: [section] key: msg". */
void cfg_perr(struct parse *ps, int line, const struct section *sec, const char *key,
              const char *fmt, ...)
{
    char msg[512], *full;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (asprintf(&full, "%s:%d: %s%s%s%s%s%s", ps->file, line, sec ? "[" : "",
                 sec ? sec->title : "", sec ? "] " : "", key ? key : "", key ? ": " : "", msg) < 0)
        fatal("out of memory");
    ps->errs = cfg_xrealloc(ps->errs, ps->nerrs + 1, sizeof(*ps->errs));
    ps->errs[ps->nerrs++] = (struct err){line, full};
}

char *cfg_trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

/* ---- values ---------------------------------------------------------------------- */

/* Splits "HOST:PORT" / "[V6]:PORT"; host and port point into buf. */
static bool split_hostport(char *buf, char **host, char **port)
{
    char *colon;
    if (buf[0] == '[') {
        char *rb = strchr(buf, ']');
        if (!rb || rb[1] != ':')
            return false;
        *rb = '\0';
        *host = buf + 1;
        *port = rb + 2;
    } else {
        colon = strrchr(buf, ':');
        if (!colon || strchr(buf, ':') != colon)
            return false;
        *colon = '\0';
        *host = buf;
        *port = colon + 1;
    }
    if (!**host || !**port || strlen(*port) > 5)
        return false;
    for (char *p = *port; *p; p++)
        if (!isdigit((unsigned char)*p))
            return false;
    long v = strtol(*port, NULL, 10);
    return v >= 1 && v <= 65535;
}

static bool parse_addr(const char *text, bool resolve, struct cfg_addr *out, const char **why)
{
    char buf[300], *host, *port;
    struct addrinfo hints = {0}, *res = NULL;

    if (strlen(text) >= sizeof(buf)) {
        *why = "too long";
        return false;
    }
    strcpy(buf, text);
    if (!split_hostport(buf, &host, &port)) {
        *why = "expected IP:PORT or [IPv6]:PORT with a port from 1 to 65535";
        return false;
    }
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (resolve ? 0 : AI_NUMERICHOST);
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0 || !res) {
        *why = resolve ? "cannot resolve the host name" : "expected a numeric IP address";
        return false;
    }
    memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
    out->len = res->ai_addrlen;
    freeaddrinfo(res);
    addr_format((struct sockaddr *)&out->ss, out->text, sizeof(out->text));
    return true;
}

static bool parse_seconds(const char *v, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || !isfinite(d))
        return false;
    if (strcmp(end, "") == 0 || strcmp(end, "s") == 0)
        ;
    else if (strcmp(end, "ms") == 0)
        d /= 1000;
    else if (strcmp(end, "m") == 0)
        d *= 60;
    else if (strcmp(end, "h") == 0)
        d *= 3600;
    else
        return false;
    *out = d;
    return true;
}

static bool parse_uint(const char *v, bool size_suffix, double *out)
{
    char *end;
    if (!isdigit((unsigned char)*v))
        return false;
    errno = 0;
    unsigned long long u = strtoull(v, &end, 10);
    if (errno)
        return false;
    double d = (double)u;
    if (size_suffix && (*end == 'k' || *end == 'K'))
        d *= 1024, end++;
    else if (size_suffix && (*end == 'm' || *end == 'M'))
        d *= 1024 * 1024, end++;
    if (*end)
        return false;
    *out = d;
    return true;
}

/* Iterates over the comma-separated items of v (modified in place). */
static char *next_item(char **cursor)
{
    char *s = *cursor, *comma;
    if (!s)
        return NULL;
    comma = strchr(s, ',');
    if (comma) {
        *comma = '\0';
        *cursor = comma + 1;
    } else {
        *cursor = NULL;
    }
    return cfg_trim(s);
}

const char *cfg_type_expect(const struct key_def *k, char *buf, size_t cap)
{
    switch (k->type) {
    case K_ADDRS:
        return "IP:PORT[, IP:PORT...]";
    case K_SERVERS:
        return "HOST:PORT[, HOST:PORT...]";
    case K_SECONDS:
        snprintf(buf, cap, "a duration from %gs to %gs, e.g. 5, 500ms, 2m", k->min, k->max);
        return buf;
    case K_SIZE:
    case K_UINT:
        snprintf(buf, cap, "a whole number from %.0f to %.0f", k->min, k->max);
        return buf;
    case K_BOOL:
        return "yes or no";
    case K_ENUM:
        snprintf(buf, cap, "one of %s", k->choices);
        return buf;
    case K_WORKERS:
        snprintf(buf, cap, "auto or a number from 1 to %d", WORKERS_MAX);
        return buf;
    case K_MAXCONN:
        snprintf(buf, cap, "auto or a whole number from %.0f to %.0f", k->min, k->max);
        return buf;
    case K_CIDRS:
        return "IP[/LEN][, IP[/LEN]...]";
    case K_CLASSES:
        return "tls, http, websocket, stun, ice-tcp, sip, mqtt, ssh, quic";
    case K_PATHS:
        return "FILE[, FILE...] (relative to this file's directory)";
    default:
        return "a value";
    }
}

/* Parses one value into obj per the key table; records errors. */
void cfg_set_value(struct parse *ps, struct section *sec, const struct key_def *k,
                   const char *value, int line)
{
    char *field = (char *)sec->obj + k->off;
    char ebuf[128], vbuf[300], *cur, *item;
    const char *why = NULL;
    double d;

#define BAD(...)                                                                                   \
    do {                                                                                           \
        cfg_perr(ps, line, sec, k->name, __VA_ARGS__);                                             \
        return;                                                                                    \
    } while (0)

    if (strlen(value) >= sizeof(vbuf))
        BAD("value too long");
    strcpy(vbuf, value);
    if (!*vbuf && k->type != K_STRING)
        BAD("empty value (expected %s)", cfg_type_expect(k, ebuf, sizeof(ebuf)));

    switch (k->type) {
    case K_ADDRS:
    case K_SERVERS: {
        struct cfg_addrlist *l = (struct cfg_addrlist *)field;
        cur = vbuf;
        while ((item = next_item(&cur))) {
            struct cfg_addr a;
            char *opts = strpbrk(item, " \t"), *prefix = NULL;
            if (opts) {
                *opts++ = '\0';
                opts = cfg_trim(opts);
                /* The only server option: ufrag_prefix=P (ICE-TCP, static ufrag routing). */
                if (k->type != K_SERVERS || strncmp(opts, "ufrag_prefix=", 13) != 0 ||
                    !ufrag_charset(opts + 13, strlen(opts + 13)))
                    BAD("unexpected '%s' after '%s' (expected %s%s)", opts, item,
                        cfg_type_expect(k, ebuf, sizeof(ebuf)),
                        k->type == K_SERVERS ? ", optionally followed by ufrag_prefix=P with "
                                               "P made of ALPHA DIGIT + /"
                                             : "");
                prefix = opts + 13;
            }
            if (!parse_addr(item, k->type == K_SERVERS && ps->opts->resolve_names, &a, &why))
                BAD("%s (got '%s', expected %s)", why, item,
                    cfg_type_expect(k, ebuf, sizeof(ebuf)));
            if (k->type == K_SERVERS) {
                struct cfg_backend *b = &((struct raw_backend *)sec->obj)->b;
                b->ufrag_prefix = cfg_xrealloc(b->ufrag_prefix, l->n + 1, sizeof(char *));
                b->ufrag_prefix[l->n] = prefix ? cfg_xstrdup(prefix) : NULL;
            }
            l->v = cfg_xrealloc(l->v, l->n + 1, sizeof(*l->v));
            l->v[l->n++] = a;
        }
        if (k->sec == SEC_MAIN && k->off == M(listen))
            ps->main->listen_line = line;
        return;
    }
    case K_SECONDS:
        if (!parse_seconds(vbuf, &d) || d < k->min || d > k->max)
            BAD("out of range or not a duration (got '%s', expected %s)", vbuf,
                cfg_type_expect(k, ebuf, sizeof(ebuf)));
        *(double *)field = d;
        return;
    case K_SIZE:
    case K_UINT:
        if (!parse_uint(vbuf, k->type == K_SIZE, &d) || d < k->min || d > k->max)
            BAD("out of range or not a number (got '%s', expected %s)", vbuf,
                cfg_type_expect(k, ebuf, sizeof(ebuf)));
        *(unsigned *)field = (unsigned)d;
        return;
    case K_WORKERS:
        if (strcmp(vbuf, "auto") == 0) {
            long n = sysconf(_SC_NPROCESSORS_ONLN);
            *(unsigned *)field = n < 1 ? 1 : n > WORKERS_MAX ? WORKERS_MAX : (unsigned)n;
            return;
        }
        if (!parse_uint(vbuf, false, &d) || d < 1 || d > WORKERS_MAX)
            BAD("out of range (got '%s', expected %s)", vbuf,
                cfg_type_expect(k, ebuf, sizeof(ebuf)));
        *(unsigned *)field = (unsigned)d;
        return;
    case K_MAXCONN:
        if (strcmp(vbuf, "auto") == 0) {
            *(unsigned *)field = cfg_auto_max_connections();
            return;
        }
        if (!parse_uint(vbuf, false, &d) || d < k->min || d > k->max)
            BAD("out of range (got '%s', expected %s)", vbuf,
                cfg_type_expect(k, ebuf, sizeof(ebuf)));
        *(unsigned *)field = (unsigned)d;
        return;
    case K_CIDRS: {
        struct cfg_cidrlist *l = (struct cfg_cidrlist *)field;
        cur = vbuf;
        while ((item = next_item(&cur))) {
            struct addr_cidr net;
            if (!addr_cidr_parse(item, &net))
                BAD("not an address or prefix (got '%s', expected %s)", item,
                    cfg_type_expect(k, ebuf, sizeof(ebuf)));
            l->v = cfg_xrealloc(l->v, l->n + 1, sizeof(*l->v));
            l->v[l->n++] = net;
        }
        return;
    }
    case K_BOOL:
        if (!strcmp(vbuf, "yes") || !strcmp(vbuf, "true") || !strcmp(vbuf, "on"))
            *(bool *)field = true;
        else if (!strcmp(vbuf, "no") || !strcmp(vbuf, "false") || !strcmp(vbuf, "off"))
            *(bool *)field = false;
        else
            BAD("not a boolean (got '%s', expected yes or no)", vbuf);
        return;
    case K_ENUM: {
        const char *c = k->choices;
        for (int idx = 0; c; idx++) {
            const char *bar = strchr(c, '|');
            size_t len = bar ? (size_t)(bar - c) : strlen(c);
            if (strlen(vbuf) == len && strncmp(vbuf, c, len) == 0) {
                *(int *)field = idx;
                return;
            }
            c = bar ? bar + 1 : NULL;
        }
        BAD("unknown value (got '%s', expected one of %s)", vbuf, k->choices);
    }
    case K_STRLIST: {
        struct cfg_strlist *l = (struct cfg_strlist *)field;
        cur = vbuf;
        while ((item = next_item(&cur))) {
            if (!*item || strpbrk(item, " \t"))
                BAD("bad list item (got '%s', expected words separated by commas)", item);
            cfg_strlist_add(l, item);
        }
        return;
    }
    case K_PATHS: {
        struct cfg_strlist *l = (struct cfg_strlist *)field;
        const char *slash = strrchr(ps->file, '/');
        int dirlen = slash ? (int)(slash - ps->file) : 0;
        cur = vbuf;
        while ((item = next_item(&cur))) {
            char path[4096];
            if (!*item)
                BAD("empty file name in the list");
            if (item[0] == '/' || !slash)
                snprintf(path, sizeof(path), "%s", item);
            else
                snprintf(path, sizeof(path), "%.*s/%s", dirlen, ps->file, item);
            cfg_strlist_add(l, path);
        }
        return;
    }
    case K_STRING:
        free(*(char **)field);
        *(char **)field = cfg_xstrdup(vbuf);
        return;
    case K_BACKEND: {
        struct ref *r = (struct ref *)field;
        if (!name_valid(vbuf))
            BAD("not a backend name (got '%s', expected 1 to %d letters, digits, _ . -)", vbuf,
                NAME_MAX_LEN);
        free(r->name);
        r->name = cfg_xstrdup(vbuf);
        r->line = line;
        return;
    }
    case K_CLASSES: {
        unsigned mask = 0;
        cur = vbuf;
        while ((item = next_item(&cur))) {
            enum mux_class c = class_from_name(item);
            if (c == CLASS_NONE || c == CLASS_UNKNOWN || c == CLASS_TIMEOUT)
                BAD("unknown class (got '%s', expected %s)", item,
                    cfg_type_expect(k, ebuf, sizeof(ebuf)));
            mask |= 1u << c;
        }
        *(unsigned *)field = mask;
        return;
    }
    }
#undef BAD
}

int cfg_key_line(const struct section *sec, const char *key)
{
    if (!sec)
        return 1;
    for (size_t k = 0; k < CFG_NKEYS; k++)
        if (cfg_keys[k].sec == sec->kind && strcmp(cfg_keys[k].name, key) == 0)
            return sec->key_line[k] ? sec->key_line[k] : sec->line;
    return sec->line;
}

/* Writes s for troff: a leading '.' or '\'' would start a request, '\\' an escape, '-'
 * should be a real minus in option-like words. */
static void man_text(FILE *out, const char *s)
{
    if (*s == '.' || *s == '\'')
        fputs("\\&", out);
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\e", out);
        else if (*s == '-')
            fputs("\\-", out);
        else
            fputc(*s, out);
    }
}

void cfg_print_reference(FILE *out, bool man)
{
    char ebuf[128];

    if (man)
        fputs(".TH MUX443.INI 5 \"\" \"mux443 " MUX443_VERSION "\" \"File Formats\"\n"
              ".SH NAME\nmux443.ini \\- configuration of mux443\n"
              ".SH DESCRIPTION\n"
              "One INI file configures mux443. Sections and keys are listed below; this page is "
              "generated from the table the parser uses. Durations take a suffix ms, s, m or "
              "h (seconds without one); sizes take k or m. Lists are separated by commas; "
              "list keys may repeat. Check a file with \\fBmux443 \\-t \\-c\\fR "
              "\\fIFILE\\fR: every error is printed as FILE:LINE: [section] key: reason.\n",
              out);
    for (int s = SEC_MAIN; s < SEC_UNKNOWN; s++) {
        fprintf(out, man ? ".SH [%s]\n" : "[%s]\n", sec_names[s]);
        for (size_t i = 0; i < CFG_NKEYS; i++) {
            const struct key_def *k = &cfg_keys[i];
            if ((int)k->sec != s)
                continue;
            if (!man) {
                char now[64] = "";
                /* What `auto` is on this machine, now (the man page stays generic). */
                if (k->type == K_MAXCONN)
                    snprintf(now, sizeof(now), " (here: %u)", cfg_auto_max_connections());
                fprintf(out, "  %-16s %s; default: %s%s\n  %-16s %s\n", k->name,
                        cfg_type_expect(k, ebuf, sizeof(ebuf)), k->dflt ? k->dflt : "none", now, "",
                        k->help);
                continue;
            }
            fputs(".TP\n\\fB", out);
            man_text(out, k->name);
            fputs("\\fR = ", out);
            man_text(out, cfg_type_expect(k, ebuf, sizeof(ebuf)));
            fputs(" (default: ", out);
            man_text(out, k->dflt ? k->dflt : "none");
            fputs(")\n", out);
            man_text(out, k->help);
            fputc('\n', out);
        }
    }
    if (man)
        fputs(".SH SEE ALSO\n.BR mux443 (8)\n", out);
}
