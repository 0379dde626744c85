/* Privileges: switch to the configured user after binding, keeping only what reloads
 * need. */
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "mux443/lib/log.h"
#include "mux443/runtime/privileges.h"

/* After binding: become `user` (and `group`). Either it works and root cannot be
 * regained, or mux443 exits: it never runs on as root when told not to. Two capabilities
 * are kept, so that SIGHUP still works as it did as root: CAP_NET_BIND_SERVICE (a reload
 * may add a listener on a port below 1024) and CAP_DAC_READ_SEARCH (certificates are
 * usually readable by root only: Let's Encrypt's live/ and archive/ are mode 0700). */
void privileges_drop(const struct cfg *c)
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
