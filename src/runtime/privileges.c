/* Privileges: switch to the configured user after binding; keep two capabilities
 * permitted, on the main thread only, and effective only while a reload reads and binds. */
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "mux443/lib/log.h"
#include "mux443/runtime/privileges.h"

/* What a reload needs: CAP_NET_BIND_SERVICE (a new listener on a port below 1024) and
 * CAP_DAC_READ_SEARCH (certificates are usually root's alone: Let's Encrypt's live/ and
 * archive/ are mode 0700). */
#define KEEP ((1u << CAP_NET_BIND_SERVICE) | (1u << CAP_DAC_READ_SEARCH))

static bool dropped; /* the capabilities below are ours to raise and lower */

static int caps_get(struct __user_cap_data_struct data[2])
{
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
    return (int)syscall(SYS_capget, &hdr, data);
}

static int caps_set(uint32_t permitted, uint32_t effective)
{
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
    struct __user_cap_data_struct data[2] = {{0}};
    data[0].permitted = permitted;
    data[0].effective = effective;
    return (int)syscall(SYS_capset, &hdr, data);
}

/* The bounding set: only KEEP (needs CAP_SETPCAP, so before leaving root). False when a
 * capability could not be dropped (a container without CAP_SETPCAP). */
static bool trim_bounding_set(void)
{
    bool ok = true;
    for (int cap = 0; cap <= 63; cap++) {
        if (cap < 32 && (KEEP & (1u << cap)))
            continue;
        if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1 && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0)
            ok = false;
    }
    return ok;
}

/* Permitted: what we had of KEEP; effective and inheritable: nothing; no new privileges
 * through exec (file capabilities, setuid programs). */
static void keep_only(const char *who)
{
    struct __user_cap_data_struct data[2] = {{0}};
    uint32_t have = caps_get(data) == 0 ? data[0].permitted & KEEP : 0;
    if (caps_set(have, 0) != 0)
        fatal("cannot limit capabilities%s", who);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        fatal("cannot set no_new_privs");
    dropped = true;
    if (have != KEEP && *who)
        log_warnx("capabilities for reloads not available (%s%s missing): a reload can only "
                  "bind ports >= 1024 and read files the user can read",
                  have & (1u << CAP_NET_BIND_SERVICE) ? "" : "CAP_NET_BIND_SERVICE ",
                  have & (1u << CAP_DAC_READ_SEARCH) ? "" : "CAP_DAC_READ_SEARCH");
}

void privileges_drop(const struct cfg *c)
{
    if (geteuid() != 0) {
        /* Started unprivileged (a container with a file capability on the binary): keep
         * what we were given for reloads, effective only around them. */
        if (c->user) {
            struct passwd *pw = getpwnam(c->user);
            if (!pw || geteuid() != pw->pw_uid)
                log_warnx("not started as root: running as uid %u, not switching to user %s",
                          (unsigned)geteuid(), c->user);
        }
        keep_only("");
        return;
    }
    if (!c->user)
        return; /* root, as told */
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
    bool trimmed = trim_bounding_set();
    if (prctl(PR_SET_KEEPCAPS, 1) != 0 || setgroups(1, &gid) != 0 || setgid(gid) != 0 ||
        setuid(pw->pw_uid) != 0)
        fatal("cannot switch to user %s", c->user);
    keep_only(" after switching user");
    prctl(PR_SET_KEEPCAPS, 0);
    if (pw->pw_uid != 0 && (setuid(0) == 0 || seteuid(0) == 0))
        fatalx("switched to user %s but could become root again: refusing to run", c->user);
    if (!trimmed)
        log_warnx("cannot trim the capability bounding set (no CAP_SETPCAP): left as is");
    log_info("running as user %s (uid %u, gid %u), no capability effective; "
             "CAP_NET_BIND_SERVICE and CAP_DAC_READ_SEARCH raised only during reloads",
             c->user, (unsigned)pw->pw_uid, (unsigned)gid);
}

void privileges_raise(void)
{
    struct __user_cap_data_struct data[2] = {{0}};
    if (dropped && caps_get(data) == 0 && caps_set(data[0].permitted, data[0].permitted) != 0)
        log_warn("reload: cannot raise capabilities");
}

void privileges_lower(void)
{
    struct __user_cap_data_struct data[2] = {{0}};
    if (dropped && caps_get(data) == 0 && caps_set(data[0].permitted, 0) != 0)
        fatal("cannot lower capabilities after a reload");
}

void privileges_thread(void)
{
    if (dropped && caps_set(0, 0) != 0)
        fatal("cannot drop the capabilities of a worker thread");
}
