/* Command line: run (foreground), check a configuration (-t), explain captured bytes
 * (--explain), print the configuration reference. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mux443/conf/keys.h"
#include "mux443/conf/load.h"
#include "mux443/core/explain.h"
#include "mux443/core/udp_explain.h"
#include "mux443/lib/hash.h"
#include "mux443/lib/log.h"
#include "mux443/runtime/daemon.h"
#include "mux443/runtime/reload.h"
#include "mux443/tls/tls_ctx.h"

/* Exit status: 0 success, 1 invalid configuration, 2 usage error, 3 runtime failure. */
enum { EXIT_CONFIG = 1, EXIT_USAGE = 2, EXIT_RUNTIME = 3 };

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mux443 [-c FILE] [-l LEVEL]       run in the foreground\n"
            "       mux443 -t [-c FILE]                check the configuration\n"
            "       mux443 --explain [-c FILE] [-L LISTENER] < first-bytes\n"
            "       mux443 --explain --udp [-c FILE] < first-datagram\n"
            "       mux443 --help-config               list every configuration key\n"
            "       mux443 --man-config                the same as the mux443.ini(5) page\n"
            "       mux443 -V | -h\n"
            "FILE defaults to " CFG_DEFAULT_PATH ". Exit status: 0 ok, 1 invalid configuration,\n"
            "2 usage error, 3 runtime failure (e.g. a port that cannot be bound).\n");
}

int main(int argc, char **argv)
{
    const char *path = CFG_DEFAULT_PATH, *level = NULL, *listener = NULL;
    bool test = false, explain = false, udp = false;
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"test", no_argument, NULL, 't'},
                                         {"explain", no_argument, NULL, 'E'},
                                         {"udp", no_argument, NULL, 'U'},
                                         {"listener", required_argument, NULL, 'L'},
                                         {"log-level", required_argument, NULL, 'l'},
                                         {"help-config", no_argument, NULL, 'R'},
                                         {"man-config", no_argument, NULL, 'M'},
                                         {"version", no_argument, NULL, 'V'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int ch;

    while ((ch = getopt_long(argc, argv, "c:tL:l:Vh", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            path = optarg;
            break;
        case 't':
            test = true;
            break;
        case 'E':
            explain = true;
            break;
        case 'U':
            udp = true;
            break;
        case 'L':
            listener = optarg;
            break;
        case 'l':
            level = optarg;
            break;
        case 'R':
        case 'M':
            cfg_print_reference(stdout, ch == 'M');
            return 0;
        case 'V':
            printf("mux443 %s\n", MUX443_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind != argc || (test && explain) || (udp && !explain)) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (level && log_level_from_name(level) < 0) {
        fprintf(stderr, "mux443: unknown log level '%s' (expected error, warn, info, debug)\n",
                level);
        return EXIT_USAGE;
    }

    if (hash_init() < 0 || !tls_global_init()) {
        fprintf(stderr, "mux443: no randomness available from the kernel\n");
        return EXIT_RUNTIME;
    }
    if (test || explain) {
        /* -t and --explain: the plain description and the certificate checks; nothing is
         * made live. */
        struct cfg *c = reload_describe(path, stderr);
        if (!c) {
            fprintf(stderr, "mux443: %s: configuration is invalid\n", path);
            return EXIT_CONFIG;
        }
        int rc = 0;
        if (test)
            printf("mux443: %s: configuration is valid (%zu listeners, %zu backends, %zu "
                   "routes)\n",
                   path, c->nlisteners, c->nbackends, c->nroutes);
        else
            rc = udp ? udp_explain_run(c, listener, stdin, stdout)
                 : explain_run(c, listener, stdin, stdout) ? EXIT_USAGE
                                                           : 0;
        cfg_free(c);
        return rc;
    }

    struct snap *s = reload_load(path, stderr);
    if (!s) {
        fprintf(stderr, "mux443: %s: configuration is invalid\n", path);
        return EXIT_CONFIG;
    }
    log_set_level(level ? (enum log_level)log_level_from_name(level)
                        : (enum log_level)s->cfg->log_level);
    log_set_format((enum log_format)s->cfg->log_format);
    log_info("mux443 %s starting with %s", MUX443_VERSION, path);
    if (s->cfg->ntls)
        log_info("kernel TLS: %s",
                 tls_ktls_available()
                     ? "available: terminated TLS records are handled by the kernel"
                     : "not offered by this kernel (module tls not loaded): "
                       "records are encrypted in user space");
    return daemon_run(s, path);
}
