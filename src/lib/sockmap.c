/* The kernel relay's BPF side: the embedded program, its three maps (the socket hash the
 * program redirects through, cookie -> slot, and the slots, mapped into our memory) and
 * the slot allocator. */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mux443/lib/sockmap.h"

#ifdef MUX443_HAVE_BPF
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

/* The compiled program (generated at build time from src/bpf/relay.bpf.c). */
extern const unsigned char mux443_relay_bpf[];
extern const size_t mux443_relay_bpf_len;

#define SLOTS 32768 /* KR_SLOTS in the program: sockets, two per connection */

struct sockmap {
    struct bpf_object *obj;
    int socks_fd, index_fd;
    struct sockmap_slot *slots; /* SLOTS, shared with the program */
    size_t slots_len;
    pthread_mutex_t lock; /* the free list: workers insert and remove concurrently */
    uint32_t *free;
    size_t nfree;
};

static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
    (void)level;
    (void)fmt;
    (void)ap;
    return 0;
}

struct sockmap *sockmap_open(char *err, size_t cap)
{
    struct sockmap *m = calloc(1, sizeof(*m));
    const char *step = "out of memory";
    int prog_fd, slots_fd;

    libbpf_set_print(quiet);
    if (!m || !(m->free = malloc(SLOTS * sizeof(*m->free))))
        goto fail;
    m->socks_fd = m->index_fd = -1;
    pthread_mutex_init(&m->lock, NULL);
    for (uint32_t i = 0; i < SLOTS; i++)
        m->free[i] = SLOTS - 1 - i;
    m->nfree = SLOTS;
    step = "cannot open the BPF object";
    m->obj = bpf_object__open_mem(mux443_relay_bpf, mux443_relay_bpf_len, NULL);
    if (!m->obj)
        goto fail;
    step = "cannot load the BPF program (needs CAP_BPF and CAP_NET_ADMIN, or root)";
    if (bpf_object__load(m->obj) != 0)
        goto fail;
    struct bpf_program *prog = bpf_object__find_program_by_name(m->obj, "kr_verdict");
    m->socks_fd = bpf_object__find_map_fd_by_name(m->obj, "kr_socks");
    m->index_fd = bpf_object__find_map_fd_by_name(m->obj, "kr_index");
    slots_fd = bpf_object__find_map_fd_by_name(m->obj, "kr_slots");
    step = "BPF object without its program or maps";
    if (!prog || (prog_fd = bpf_program__fd(prog)) < 0 || m->socks_fd < 0 || m->index_fd < 0 ||
        slots_fd < 0)
        goto fail;
    step = "cannot attach the stream verdict program to the socket hash";
    if (bpf_prog_attach(prog_fd, m->socks_fd, BPF_SK_SKB_STREAM_VERDICT, 0) != 0)
        goto fail;
    step = "cannot map the slots";
    m->slots_len = SLOTS * sizeof(struct sockmap_slot);
    m->slots = mmap(NULL, m->slots_len, PROT_READ | PROT_WRITE, MAP_SHARED, slots_fd, 0);
    if (m->slots == MAP_FAILED) {
        m->slots = NULL;
        goto fail;
    }
    return m;
fail:
    snprintf(err, cap, "%s: %s", step, strerror(errno));
    sockmap_close(m);
    return NULL;
}

void sockmap_close(struct sockmap *m)
{
    if (!m)
        return;
    if (m->slots)
        munmap(m->slots, m->slots_len);
    bpf_object__close(m->obj); /* the maps and the program go with their last descriptor */
    if (m->free)
        pthread_mutex_destroy(&m->lock);
    free(m->free);
    free(m);
}

struct sockmap_slot *sockmap_add(struct sockmap *m, int fd, uint64_t cookie, uint64_t peer,
                                 uint64_t limit)
{
    uint32_t idx, sock = (uint32_t)fd;

    pthread_mutex_lock(&m->lock);
    if (!m->nfree) {
        pthread_mutex_unlock(&m->lock);
        errno = ENOSPC;
        return NULL;
    }
    idx = m->free[--m->nfree];
    pthread_mutex_unlock(&m->lock);

    struct sockmap_slot *s = &m->slots[idx];
    memset(s, 0, sizeof(*s));
    s->peer = peer;
    s->limit = limit;
    __atomic_store_n(&s->armed_at, UINT64_MAX, __ATOMIC_RELEASE); /* passed never gets there */
    if (bpf_map_update_elem(m->index_fd, &cookie, &idx, BPF_NOEXIST) != 0)
        goto undo;
    if (bpf_map_update_elem(m->socks_fd, &cookie, &sock, BPF_NOEXIST) != 0) {
        int e = errno;
        bpf_map_delete_elem(m->index_fd, &cookie);
        errno = e;
        goto undo;
    }
    /* Bytes that arrived before the socket entered the map wait in its receive queue,
     * unseen by the program until more arrive: setting SO_RCVLOWAT runs the socket's
     * data_ready now, which hands them to the program (and so to user space, in order). */
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof(one));
    return s;
undo : {
    int e = errno;
    pthread_mutex_lock(&m->lock);
    m->free[m->nfree++] = idx;
    pthread_mutex_unlock(&m->lock);
    errno = e;
    return NULL;
}
}

void sockmap_remove(struct sockmap *m, uint64_t cookie, struct sockmap_slot *s)
{
    bpf_map_delete_elem(m->socks_fd, &cookie);
    bpf_map_delete_elem(m->index_fd, &cookie);
    pthread_mutex_lock(&m->lock);
    m->free[m->nfree++] = (uint32_t)(s - m->slots);
    pthread_mutex_unlock(&m->lock);
}

#else /* built without libbpf */

struct sockmap *sockmap_open(char *err, size_t cap)
{
    snprintf(err, cap, "mux443 was built without libbpf");
    return NULL;
}

void sockmap_close(struct sockmap *m)
{
    (void)m;
}

struct sockmap_slot *sockmap_add(struct sockmap *m, int fd, uint64_t cookie, uint64_t peer,
                                 uint64_t limit)
{
    (void)m, (void)fd, (void)cookie, (void)peer, (void)limit;
    errno = EOPNOTSUPP;
    return NULL;
}

void sockmap_remove(struct sockmap *m, uint64_t cookie, struct sockmap_slot *s)
{
    (void)m, (void)cookie, (void)s;
}

#endif

uint64_t sockmap_cookie(int fd)
{
    uint64_t ck = 0;
    socklen_t len = sizeof(ck);
    return getsockopt(fd, SOL_SOCKET, SO_COOKIE, &ck, &len) == 0 ? ck : 0;
}

bool sockmap_arm(struct sockmap_slot *s, uint64_t read)
{
    if (sockmap_load(&s->passed) != read)
        return false; /* bytes wait for user space: they go to the peer first */
    if (s->armed_at != read)
        __atomic_store_n(&s->armed_at, read, __ATOMIC_RELEASE);
    return true;
}
