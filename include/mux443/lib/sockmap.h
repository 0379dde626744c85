/* The kernel relay's BPF side (README "Kernel relay"): loads the embedded sk_skb
 * stream-verdict program (src/bpf/relay.bpf.c), creates its maps and attaches it; puts
 * sockets in and takes them out. Each socket in the map has a slot, shared memory with
 * the program: its counters are read and its limit and arming written with plain loads and
 * stores, without a system call. */
#ifndef MUX443_LIB_SOCKMAP_H
#define MUX443_LIB_SOCKMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The program's struct kr_slot. */
struct sockmap_slot {
    uint64_t peer;     /* the peer socket's cookie */
    uint64_t bytes;    /* bytes the kernel moved from this socket to its peer */
    uint64_t passed;   /* bytes passed to user space (read them with read(2)) */
    uint64_t armed_at; /* the kernel moves bytes only while passed == armed_at */
    uint64_t limit;    /* bytes + passed may not pass it (else drops, sets over) */
    uint32_t over;
    uint32_t pad;
};

struct sockmap;

/* Loads the program and creates the maps (needs CAP_BPF + CAP_NET_ADMIN, or root). NULL
 * with the reason in err when it cannot (no privileges, a kernel without sockmap, built
 * without libbpf). */
struct sockmap *sockmap_open(char *err, size_t cap);

void sockmap_close(struct sockmap *m);

/* The socket's cookie (its key in the maps); 0 on error. */
uint64_t sockmap_cookie(int fd);

/* Puts socket fd (cookie `cookie`, whose peer has cookie `peer`) in the map, not armed:
 * what it receives is passed to user space until sockmap_arm. Bytes already queued on
 * the socket are run through the program at once. The slot, or NULL with errno (e.g.
 * EOPNOTSUPP: the socket is not ESTABLISHED; ENOSPC: no slot left). */
struct sockmap_slot *sockmap_add(struct sockmap *m, int fd, uint64_t cookie, uint64_t peer,
                                 uint64_t limit);

/* Takes the socket out of the maps (if still there) and frees its slot. */
void sockmap_remove(struct sockmap *m, uint64_t cookie, struct sockmap_slot *s);

/* Lets the kernel move the socket's bytes, provided user space has read all `read` bytes
 * it was passed (the slot's passed count): true when armed. */
bool sockmap_arm(struct sockmap_slot *s, uint64_t read);

/* Reads a counter the program writes. */
static inline uint64_t sockmap_load(const uint64_t *field)
{
    return __atomic_load_n(field, __ATOMIC_ACQUIRE);
}

#endif
