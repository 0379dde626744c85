/* Unit tests for the configuration loader (config.c) and route selection (route.c):
 * good files load with the right values; every kind of mistake is reported at its line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mux443/conf/load.h"
#include "mux443/core/route.h"
#include "mux443/core/snapshot.h"
#include "mux443/lib/names.h"
#include "mux443/state/metrics.h"

static char *errbuf;
static size_t errlen;

/* Loads `text` as "t.ini"; the messages land in errbuf. */
static struct cfg *load(const char *text)
{
    FILE *in = fmemopen((void *)text, strlen(text), "r");
    free(errbuf);
    errbuf = NULL;
    FILE *errs = open_memstream(&errbuf, &errlen);
    struct cfg *c = cfg_load_stream(in, "t.ini", errs, NULL);
    fclose(errs);
    fclose(in);
    return c;
}

static void expect_error(const char *text, const char *msg)
{
    struct cfg *c = load(text);
    if (c || !strstr(errbuf, msg))
        fail_msg("expected error containing \"%s\", got:\n%s", msg, errbuf ? errbuf : "");
    cfg_free(c);
}

static const char base[] = "[mux443]\n"
                           "listen = 127.0.0.1:8443\n"
                           "[backend web]\n"
                           "server = 127.0.0.1:8080\n"
                           "[route]\n"
                           "http = web\n";

static void test_example_file_loads(void **state)
{
    (void)state;
    struct cfg *c = cfg_load(MUX443_SOURCE_DIR "/etc/mux443.ini", stderr, NULL);
    assert_non_null(c);
    assert_int_equal(c->nlisteners, 1);
    assert_int_equal(c->listeners[0].addrs.n, 2);
    assert_string_equal(c->listeners[0].addrs.v[1].text, "[::1]:8443");
    const struct cfg_backend *turn = cfg_backend_find(c, "turn");
    assert_non_null(turn);
    assert_int_equal(turn->proxy_protocol, 2);
    assert_int_equal(cfg_backend_find(c, "media")->servers.n, 2);
    cfg_free(c);
}

static void test_defaults_and_values(void **state)
{
    (void)state;
    struct cfg *c = load("[mux443]\n"
                         "listen = 127.0.0.1:1\n"
                         "workers = 3\n"
                         "peek_timeout = 500ms\n"
                         "idle_timeout = 2m\n"
                         "preread_max = 64k\n"
                         "[listener lb]\n"
                         "  listen = [::1]:2   ; indented keys are fine\n"
                         "proxy_protocol = yes\n"
                         "peek_timeout = 2\n"
                         "[backend a]\n"
                         "server = 127.0.0.1:3\n"
                         "server = [::1]:4, 127.0.0.2:5\n"
                         "balance = source\n"
                         "[route]\n"
                         "default = a\n");
    assert_non_null(c);
    assert_int_equal(c->workers, 3);
    assert_true(c->peek_timeout > 0.49 && c->peek_timeout < 0.51);
    assert_true(c->idle_timeout == 120);
    assert_int_equal(c->preread_max, 65536);
    assert_true(c->connect_timeout == 3);
    const struct cfg_listener *m = cfg_listener_find(c, "main"), *lb = cfg_listener_find(c, "lb");
    assert_non_null(m);
    assert_non_null(lb);
    assert_false(m->proxy_in);
    assert_true(m->peek_timeout > 0.49 && m->peek_timeout < 0.51);
    assert_true(lb->proxy_in);
    assert_true(lb->peek_timeout == 2);
    assert_int_equal(lb->preread_max, 65536); /* inherited */
    const struct cfg_backend *a = cfg_backend_find(c, "a");
    assert_int_equal(a->servers.n, 3);
    assert_int_equal(a->balance, BALANCE_SOURCE);
    assert_true(a->connect_timeout == 3);
    assert_ptr_equal(c->route_map[CLASS_UNKNOWN]->backend, a);
    assert_null(c->route_map[CLASS_TIMEOUT]);
    cfg_free(c);
}

static void test_unknown_section_and_key(void **state)
{
    (void)state;
    expect_error("[mux443]\nlisten = 127.0.0.1:1\n[frontend x]\nfoo = 1\n[backend w]\n"
                 "server = 127.0.0.1:2\nport = 3\n[route]\nhttp = w\n",
                 "t.ini:3: [frontend x] unknown section");
    assert_non_null(strstr(errbuf, "t.ini:7: [backend w] port: unknown key (expected one of: "
                                   "server, proxy_protocol"));
    /* The keys of an unknown section are not reported one by one. */
    assert_null(strstr(errbuf, "foo"));
}

static void test_bad_address(void **state)
{
    (void)state;
    expect_error("[mux443]\nlisten = 127.0.0.1\n[backend w]\nserver = 127.0.0.1:2\n[route]\n"
                 "http = w\n",
                 "t.ini:2: [mux443] listen: expected IP:PORT or [IPv6]:PORT with a port from 1 "
                 "to 65535 (got '127.0.0.1'");
    expect_error("[mux443]\nlisten = localhost:80\n[backend w]\nserver = 127.0.0.1:2\n[route]\n"
                 "http = w\n",
                 "t.ini:2: [mux443] listen: expected a numeric IP address (got 'localhost:80'");
    expect_error("[mux443]\nlisten = 127.0.0.1:1\n[backend w]\nserver = 127.0.0.1:70000\n"
                 "[route]\nhttp = w\n",
                 "t.ini:4: [backend w] server:");
}

static void test_unknown_backend_and_duplicates(void **state)
{
    (void)state;
    expect_error("[mux443]\nlisten = 127.0.0.1:1\n[backend w]\nserver = 127.0.0.1:2\n"
                 "[backend w]\nserver = 127.0.0.1:3\n[route]\nhttp = nope\n",
                 "t.ini:5: [backend w] duplicate section (first on line 3)");
    assert_non_null(strstr(errbuf, "t.ini:8: [route] http: unknown backend (got 'nope'"));
    expect_error("[mux443]\nlisten = 127.0.0.1:1\nworkers = 2\nworkers = 3\n[backend w]\n"
                 "server = 127.0.0.1:2\n[route]\nhttp = w\n",
                 "t.ini:4: [mux443] workers: duplicate key (first set on line 3)");
    expect_error("[mux443]\nlisten = 127.0.0.1:1\n[listener x]\nlisten = 127.0.0.1:1\n"
                 "[backend w]\nserver = 127.0.0.1:2\n[route]\nhttp = w\n",
                 "address 127.0.0.1:1 is already used by listener main");
}

static void test_out_of_range(void **state)
{
    (void)state;
    expect_error("[mux443]\nlisten = 127.0.0.1:1\npeek_timeout = 1000\n[backend w]\n"
                 "server = 127.0.0.1:2\n[route]\nhttp = w\n",
                 "t.ini:3: [mux443] peek_timeout: out of range or not a duration (got '1000', "
                 "expected a duration from 0.01s to 300s");
    expect_error("[mux443]\nlisten = 127.0.0.1:1\nworkers = 0\n[backend w]\n"
                 "server = 127.0.0.1:2\n[route]\nhttp = w\n",
                 "t.ini:3: [mux443] workers: out of range (got '0', expected auto or a number");
    expect_error("[mux443]\nlisten = 127.0.0.1:1\n[backend w]\nserver = 127.0.0.1:2\n"
                 "proxy_protocol = v3\n[route]\nhttp = w\n",
                 "t.ini:5: [backend w] proxy_protocol: unknown value (got 'v3', expected one of "
                 "none|v1|v2)");
}

/* relay = and the kernel relay's caps: defaults, values, errors with file:line:key. */
static void test_kernel_relay_keys(void **state)
{
    (void)state;
    struct cfg *c = load("[mux443]\nlisten = 127.0.0.1:1\n[backend w]\nserver = 127.0.0.1:2\n"
                         "[route k]\nclass = stun\nbackend = w\nrelay = kernel\n"
                         "[route u]\nclass = http\nbackend = w\n[route]\nssh = w\n");
    assert_non_null(c);
    assert_int_equal(c->routes[0].relay, RELAY_KERNEL);
    assert_int_equal(c->routes[1].relay, RELAY_USER); /* the default */
    assert_int_equal(c->routes[2].relay, RELAY_USER); /* class map entries */
    assert_int_equal(c->krelay_backlog, 1u << 20);
    assert_int_equal(c->krelay_budget, 64u << 20);
    cfg_free(c);
    c = load("[mux443]\nlisten = 127.0.0.1:1\nkernel_relay_backlog = 256k\n"
             "kernel_relay_budget = 512m\n[backend w]\nserver = 127.0.0.1:2\n[route]\nhttp = w\n");
    assert_non_null(c);
    assert_int_equal(c->krelay_backlog, 256u << 10);
    assert_int_equal(c->krelay_budget, 512u << 20);
    cfg_free(c);
    expect_error("[mux443]\nlisten = 127.0.0.1:1\n[backend w]\nserver = 127.0.0.1:2\n"
                 "[route k]\nclass = stun\nbackend = w\nrelay = sockmap\n",
                 "t.ini:8: [route k] relay: unknown value (got 'sockmap', expected one of "
                 "user|kernel)");
    expect_error("[mux443]\nlisten = 127.0.0.1:1\nkernel_relay_backlog = 1k\n[backend w]\n"
                 "server = 127.0.0.1:2\n[route]\nhttp = w\n",
                 "t.ini:3: [mux443] kernel_relay_backlog: out of range or not a number (got '1k'");
}

static void test_syntax_and_long_lines(void **state)
{
    (void)state;
    char text[1024];
    char longval[300];
    memset(longval, 'a', sizeof(longval) - 1);
    longval[sizeof(longval) - 1] = '\0';
    snprintf(text, sizeof(text),
             "[mux443]\nlisten = 127.0.0.1:1\nthis line has no equals sign\n[backend w\n"
             "[backend w]\nserver = 127.0.0.1:2\n[route]\nhttp = w\nhost = %s\n",
             longval);
    expect_error(text, "t.ini:3: [mux443] expected 'key = value'");
    assert_non_null(strstr(errbuf, "t.ini:4: bad section header"));
    assert_non_null(strstr(errbuf, "t.ini:9: line longer than"));
}

static void test_every_error_reported(void **state)
{
    (void)state;
    struct cfg *c = load("[mux443]\n"
                         "listen = nowhere\n" /* 2 */
                         "log_level = loud\n" /* 3 */
                         "[backend a]\n"      /* 4: no server */
                         "[route r]\n"        /* 5 */
                         "host = a.test\n"    /* 6 */
                         "class = stun\n"     /* 7: host only applies to http */
                         "backend = b\n"      /* 8: unknown backend */
                         "[route]\n"
                         "stun = c\n"); /* 10 */
    assert_null(c);
    const char *want[] = {"t.ini:2: [mux443] listen:",
                          "t.ini:3: [mux443] log_level:",
                          "t.ini:4: [backend a] server: missing",
                          "t.ini:6: [route r] host: only applies to class http, websocket",
                          "t.ini:8: [route r] backend: unknown backend (got 'b'",
                          "t.ini:10: [route] stun: unknown backend (got 'c'"};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (!strstr(errbuf, want[i]))
            fail_msg("missing \"%s\" in:\n%s", want[i], errbuf);
    /* In line order. */
    assert_true(strstr(errbuf, "t.ini:2:") < strstr(errbuf, "t.ini:10:"));
}

static void test_no_listener_no_route(void **state)
{
    (void)state;
    expect_error("[backend a]\nserver = 127.0.0.1:1\n", "no listener");
    assert_non_null(strstr(errbuf, "no routes"));
}

static struct probe_out probe(enum mux_class cls)
{
    struct probe_out p;
    memset(&p, 0, sizeof(p));
    p.cls = cls;
    return p;
}

static void test_route_order_and_criteria(void **state)
{
    (void)state;
    struct cfg *c = load("[mux443]\nlisten = 127.0.0.1:1\n"
                         "[backend a]\nserver = 127.0.0.1:2\n"
                         "[backend b]\nserver = 127.0.0.1:3\n"
                         "[backend x]\nserver = 127.0.0.1:4\n"
                         "[route wild]\nsni = *.b.test\nbackend = b\n"
                         "[route turn-alpn]\nalpn = stun.turn, x-proto\nbackend = x\n"
                         "[route api]\nhost = api.test\npath = /v1\nbackend = b\n"
                         "[route ws]\nclass = websocket\npath = /ws\nbackend = x\n"
                         "[route]\ntls = a\nhttp = a\nwebsocket = a\ndefault = x\n");
    assert_non_null(c);
    const struct cfg_tls *term;
    struct probe_out p = probe(CLASS_TLS);
    strcpy(p.sni, "deep.sub.B.test");
    p.sni_len = (uint16_t)strlen(p.sni);
    assert_string_equal(route_tls_hello(c, NULL, &p, &term)->name, "wild");
    strcpy(p.sni, "b.test"); /* the wildcard needs a label in front */
    p.sni_len = 6;
    assert_string_equal(route_tls_hello(c, NULL, &p, &term)->name, "tls");
    assert_null(term); /* no certificates: never terminated */
    memcpy(p.alpn, "\x02h2\x07x-proto", 11);
    p.alpn_len = 11;
    assert_string_equal(route_tls_hello(c, NULL, &p, &term)->name, "turn-alpn");

    p = probe(CLASS_HTTP);
    strcpy(p.host, "api.test");
    p.host_len = 8;
    strcpy(p.path, "/v1/users");
    p.path_len = 9;
    assert_string_equal(route_select(c, NULL, &p, VIA_PLAIN)->name, "api");
    p.cls = CLASS_WEBSOCKET; /* host/path rules apply to both http and websocket */
    assert_string_equal(route_select(c, NULL, &p, VIA_PLAIN)->name, "api");
    strcpy(p.path, "/ws");
    p.path_len = 3;
    assert_string_equal(route_select(c, NULL, &p, VIA_PLAIN)->name, "ws");
    p.cls = CLASS_HTTP; /* the ws rule says class = websocket */
    assert_string_equal(route_select(c, NULL, &p, VIA_PLAIN)->name, "http");

    p = probe(CLASS_UNKNOWN);
    assert_string_equal(route_select(c, NULL, &p, VIA_PLAIN)->name, "default");
    p = probe(CLASS_TIMEOUT);
    assert_null(route_select(c, NULL, &p, VIA_PLAIN));
    p = probe(CLASS_STUN);
    assert_null(route_select(c, NULL, &p, VIA_PLAIN));
    cfg_free(c);
}

/* A rule's `listener` criterion: it applies only to connections of those listeners. */
static void test_listener_criterion(void **state)
{
    (void)state;
    struct cfg *c = load("[mux443]\nlisten = 127.0.0.1:1\n"
                         "[listener side]\nlisten = 127.0.0.1:5\n"
                         "[backend a]\nserver = 127.0.0.1:2\n"
                         "[backend s]\nserver = 127.0.0.1:3\n"
                         "[route side-web]\nlistener = side\nclass = http\nbackend = s\n"
                         "[route]\nhttp = a\n");
    assert_non_null(c);
    struct probe_out p = probe(CLASS_HTTP);
    assert_string_equal(route_select(c, cfg_listener_find(c, "side"), &p, VIA_PLAIN)->name,
                        "side-web");
    assert_string_equal(route_select(c, cfg_listener_find(c, "main"), &p, VIA_PLAIN)->name, "http");
    assert_string_equal(route_select(c, NULL, &p, VIA_PLAIN)->name, "http");
    cfg_free(c);
    expect_error("[mux443]\nlisten = 127.0.0.1:1\n[backend a]\nserver = 127.0.0.1:2\n"
                 "[route x]\nlistener = nope\nbackend = a\n",
                 "t.ini:6: [route x] listener: unknown listener (got 'nope'");
}

static void test_tls_match(void **state)
{
    (void)state;
    struct cfg *c = load("[mux443]\nlisten = 127.0.0.1:1\n"
                         "[backend a]\nserver = 127.0.0.1:2\n"
                         "[backend t]\nserver = 127.0.0.1:3\n"
                         "[backend p]\nserver = 127.0.0.1:4\n"
                         "[route turns]\nclass = stun\nsni = turn.test\ntls = yes\nbackend = t\n"
                         "[route plain-only]\nclass = http\ntls = no\nbackend = p\n"
                         "[route]\nstun = a\nhttp = a\ndefault = a\non_timeout = a\n");
    assert_non_null(c);
    struct probe_out p = probe(CLASS_STUN);
    assert_string_equal(route_select(c, NULL, &p, VIA_PLAIN)->name, "stun");
    assert_string_equal(route_select(c, NULL, &p, VIA_TERMINATED)->name, "stun"); /* no SNI */
    strcpy(p.sni, "turn.test");
    p.sni_len = 9;
    assert_string_equal(route_select(c, NULL, &p, VIA_TERMINATED)->name, "turns");
    p = probe(CLASS_HTTP);
    assert_string_equal(route_select(c, NULL, &p, VIA_PLAIN)->name, "plain-only");
    assert_string_equal(route_select(c, NULL, &p, VIA_TERMINATED)->name, "http");
    /* Decrypted bytes never go to default / on_timeout. */
    p = probe(CLASS_UNKNOWN);
    assert_string_equal(route_select(c, NULL, &p, VIA_PLAIN)->name, "default");
    assert_null(route_select(c, NULL, &p, VIA_TERMINATED));
    p = probe(CLASS_TIMEOUT);
    assert_string_equal(route_select(c, NULL, &p, VIA_PLAIN)->name, "on_timeout");
    assert_null(route_select(c, NULL, &p, VIA_TERMINATED));
    /* ALPN offered when terminating: only what the routes take. */
    assert_int_equal(c->alpn_len, 9 + 10 + 19);
    assert_memory_equal(c->alpn, "\x08http/1.1\x09stun.turn", 19);
    cfg_free(c);
}

/* Snapshots: reference counting, and metric series bound only by activation, so that a
 * configuration that is only loaded (-t, a rejected reload, the fuzzer) registers
 * nothing (regression: a rejected reload left mux443_backend_server_up{backend="gone"}). */
static void test_snapshot_and_metrics(void **state)
{
    (void)state;
    size_t before = mx_registry_size();
    struct cfg *c = load("[mux443]\nlisten = 127.0.0.1:1\n"
                         "[backend gone]\nserver = 127.0.0.1:2\n"
                         "[route]\nhttp = gone\nbogus = 1\n");
    assert_null(c); /* rejected */
    c = load(base);
    assert_non_null(c);
    assert_int_equal(mx_registry_size(), before); /* loaded, not live: nothing registered */
    struct snap *s = snap_activate(c, stderr);
    assert_non_null(s);
    /* route http, server web/127.0.0.1:8080, listener main */
    assert_int_equal(mx_registry_size(), before + 3);
    struct mx_server *sm = snap_server_mx(s, &s->cfg->backends[0], 0);
    assert_int_equal(atomic_load(&sm->live), 1);
    assert_ptr_equal(snap_ref(s), s);
    snap_unref(s);
    assert_int_equal(atomic_load(&s->refs), 1);
    snap_unref(s);
    assert_int_equal(atomic_load(&sm->live), 0); /* its gauge is no longer shown */
}

/* Names are checked when loaded, never cut (regression: names of 64+ characters were
 * truncated in the ufrag table and the metrics registry). */
static void test_name_length(void **state)
{
    (void)state;
    char text[512], name[NAME_MAX_LEN + 2];
    memset(name, 'b', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    snprintf(text, sizeof(text),
             "[mux443]\nlisten = 127.0.0.1:1\n[backend %s]\nserver = 127.0.0.1:2\n"
             "[route]\nhttp = %s\n",
             name, name);
    expect_error(text, "t.ini:3: [backend bbbb");
    expect_error(text, "bad name");
    name[NAME_MAX_LEN] = '\0'; /* exactly the limit: fine */
    snprintf(text, sizeof(text),
             "[mux443]\nlisten = 127.0.0.1:1\n[backend %s]\nserver = 127.0.0.1:2\n"
             "[route]\nhttp = %s\n",
             name, name);
    struct cfg *c = load(text);
    assert_non_null(c);
    cfg_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_file_loads),
        cmocka_unit_test(test_defaults_and_values),
        cmocka_unit_test(test_unknown_section_and_key),
        cmocka_unit_test(test_bad_address),
        cmocka_unit_test(test_kernel_relay_keys),
        cmocka_unit_test(test_unknown_backend_and_duplicates),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_syntax_and_long_lines),
        cmocka_unit_test(test_every_error_reported),
        cmocka_unit_test(test_no_listener_no_route),
        cmocka_unit_test(test_route_order_and_criteria),
        cmocka_unit_test(test_tls_match),
        cmocka_unit_test(test_listener_criterion),
        cmocka_unit_test(test_snapshot_and_metrics),
        cmocka_unit_test(test_name_length),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    free(errbuf);
    return rc;
}
