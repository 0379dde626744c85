/* SSH probe: the client's identification string (RFC 4253 section 4.2; "SSH-1.99-" is
 * a server or client that also speaks protocol 1, section 5.1). */
#include <string.h>

#include "mux443/lib/probe_ssh.h"

enum probe_result probe_ssh(const uint8_t *p, size_t n, struct probe_out *out)
{
    static const char *const ids[] = {"SSH-2.0-", "SSH-1.99-"};
    bool again = false;

    memset(out, 0, sizeof(*out));
    if (n == 0)
        return PROBE_AGAIN;
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        size_t l = strlen(ids[i]), k = n < l ? n : l;
        if (memcmp(p, ids[i], k) != 0)
            continue;
        if (n < l) {
            again = true;
            continue;
        }
        out->cls = CLASS_SSH;
        out->consumed = l;
        return PROBE_MATCH;
    }
    if (again)
        return PROBE_AGAIN;
    out->why = "not an SSH identification string";
    return PROBE_NOMATCH;
}

enum probe_result probe_ssh_step(struct probe_state *st, const uint8_t *p, size_t n,
                                 struct probe_out *out, size_t *need)
{
    (void)st;
    (void)need;
    return probe_ssh(p, n, out);
}
