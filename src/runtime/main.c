/* Command line: run (foreground), check a configuration (-t), explain captured bytes
 * (--explain), print the configuration reference. */
#include <getopt.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <grp.h>
#include <pwd.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mux443/conf/config.h"
#include "mux443/core/explain.h"
#include "mux443/runtime/listener.h"
#include "mux443/lib/log.h"
#include "mux443/tls/tls_ctx.h"

/* Exit status: 0 success, 1 invalid configuration, 2 usage error, 3 runtime failure. */
enum { EXIT_CONFIG = 1, EXIT_USAGE = 2, EXIT_RUNTIME = 3 };

/* After binding: become `user` (and `group`). Either it works and root cannot be
 * regained, or mux443 exits: it never runs on as root when told not to. Two capabilities
 * are kept, so that SIGHUP still works as it did as root: CAP_NET_BIND_SERVICE (a reload
 * may add a listener on a port below 1024) and CAP_DAC_READ_SEARCH (certificates are
 * usually readable by root only: Let's Encrypt's live/ and archive/ are mode 0700). */
static void drop_privileges(const struct cfg *c)
{
    if (!c->user)
        return;
    struct passwd *pw = getpwnam(c->user);
    if (!pw)
        fatalx("user %s: no such user", c->user);
    gid_t gid = pw->pw_gid;
    if (c->group) {
        struct group *gr = getgrnam(c->group);
        if (!gr)
            fatalx("group %s: no such group", c->group);
        gid = gr->gr_gid;
    }
    if (geteuid() != 0) {
        if (geteuid() != pw->pw_uid)
            log_warnx("not started as root: running as uid %u, not switching to user %s",
                      (unsigned)geteuid(), c->user);
        return;
    }
    if (prctl(PR_SET_KEEPCAPS, 1) != 0 || setgroups(1, &gid) != 0 || setgid(gid) != 0 ||
        setuid(pw->pw_uid) != 0)
        fatal("cannot switch to user %s", c->user);
    /* Only the two capabilities, effective and permitted; nothing inheritable. */
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
    struct __user_cap_data_struct data[2] = {{0}};
    data[0].permitted = data[0].effective =
        (1u << CAP_NET_BIND_SERVICE) | (1u << CAP_DAC_READ_SEARCH);
    if (syscall(SYS_capset, &hdr, data) != 0)
        fatal("cannot limit capabilities after switching to user %s", c->user);
    prctl(PR_SET_KEEPCAPS, 0);
    if (pw->pw_uid != 0 && (setuid(0) == 0 || seteuid(0) == 0))
        fatalx("switched to user %s but could become root again: refusing to run", c->user);
    log_info("running as user %s (uid %u, gid %u), keeping only CAP_NET_BIND_SERVICE and "
             "CAP_DAC_READ_SEARCH for reloads",
             c->user, (unsigned)pw->pw_uid, (unsigned)gid);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mux443 [-c FILE] [-l LEVEL]       run in the foreground\n"
            "       mux443 -t [-c FILE]                check the configuration\n"
            "       mux443 --explain [-c FILE] [-L LISTENER] < first-bytes\n"
            "       mux443 --help-config               list every configuration key\n"
            "       mux443 --man-config                the same as the mux443.ini(5) page\n"
            "       mux443 -V | -h\n"
            "FILE defaults to " CFG_DEFAULT_PATH ". Exit status: 0 ok, 1 invalid configuration,\n"
            "2 usage error, 3 runtime failure (e.g. a port that cannot be bound).\n");
}

int main(int argc, char **argv)
{
    const char *path = CFG_DEFAULT_PATH, *level = NULL, *listener = NULL;
    bool test = false, explain = false;
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"test", no_argument, NULL, 't'},
                                         {"explain", no_argument, NULL, 'E'},
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
    if (optind != argc || (test && explain)) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (level && log_level_from_name(level) < 0) {
        fprintf(stderr, "mux443: unknown log level '%s' (expected error, warn, info, debug)\n",
                level);
        return EXIT_USAGE;
    }

    tls_global_init();
    struct cfg *c = cfg_load(path, stderr);
    if (!c) {
        fprintf(stderr, "mux443: %s: configuration is invalid\n", path);
        return EXIT_CONFIG;
    }
    if (test) {
        printf("mux443: %s: configuration is valid (%zu listeners, %zu backends, %zu routes)\n",
               path, c->nlisteners, c->nbackends, c->nroutes);
        cfg_unref(c);
        return 0;
    }
    if (explain) {
        int rc = explain_run(c, listener, stdin, stdout);
        cfg_unref(c);
        return rc ? EXIT_USAGE : 0;
    }

    log_set_level(level ? (enum log_level)log_level_from_name(level)
                        : (enum log_level)c->log_level);
    log_info("mux443 %s starting with %s", MUX443_VERSION, path);
    if (c->ntls)
        log_info("kernel TLS: %s",
                 tls_ktls_available()
                     ? "available: terminated TLS records are handled by the kernel"
                     : "not offered by this kernel (module tls not loaded): "
                       "records are encrypted in user space");
    if (workers_init(c, path) < 0)
        return EXIT_RUNTIME;
    drop_privileges(c);
    int rc = workers_run();
    cfg_unref(c);
    return rc;
}
