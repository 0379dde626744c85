/* Per-worker UDP flow table: O(1) lookup by client address+port, bounded in total, per
 * client prefix and in new flows per second, no allocation after init. */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "mux443/core/udp_flow.h"
#include "mux443/lib/addr.h"
#include "mux443/lib/hash.h"

static bool peer_of(const struct sockaddr *sa, struct udp_peer *p)
{
    memset(p, 0, sizeof(*p));
    if (!addr_key(sa, p->ip))
        return false;
    p->port = sa->sa_family == AF_INET ? ((const struct sockaddr_in *)sa)->sin_port
                                       : ((const struct sockaddr_in6 *)sa)->sin6_port;
    return true;
}

/* The client's prefix: /24 of an IPv4 address (v4-mapped: bytes 12..14), /64 of IPv6. */
static void prefix_of(const uint8_t ip[16], uint8_t out[16])
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    size_t keep = memcmp(ip, mapped, sizeof(mapped)) == 0 ? 15 : 8;

    memset(out, 0, 16);
    memcpy(out, ip, keep);
}

int udp_ftab_init(struct udp_ftab *t, const struct udp_limits *lim)
{
    uint32_t buckets = 1;

    memset(t, 0, sizeof(*t));
    if (lim->max_flows == 0 || lim->max_flows > (1u << 30)) {
        errno = EINVAL;
        return -1;
    }
    while (buckets < lim->max_flows)
        buckets <<= 1;
    /* calloc: the pages of slots never used are never touched. */
    t->flows = calloc(lim->max_flows, sizeof(*t->flows));
    t->pfx = calloc(lim->max_flows, sizeof(*t->pfx));
    t->bucket = calloc(buckets, sizeof(*t->bucket));
    t->pbucket = calloc(buckets, sizeof(*t->pbucket));
    if (t->flows == NULL || t->pfx == NULL || t->bucket == NULL || t->pbucket == NULL) {
        udp_ftab_free(t);
        errno = ENOMEM;
        return -1;
    }
    t->mask = buckets - 1;
    for (uint32_t i = 0; i < lim->max_flows; i++) {
        t->flows[i].next = i + 2 <= lim->max_flows ? i + 2 : 0;
        t->pfx[i].next = t->flows[i].next;
    }
    t->free_flow = t->free_pfx = 1;
    t->lim = *lim;
    t->tokens = lim->new_per_sec;
    return 0;
}

void udp_ftab_free(struct udp_ftab *t)
{
    free(t->flows);
    free(t->pfx);
    free(t->bucket);
    free(t->pbucket);
    memset(t, 0, sizeof(*t));
}

void udp_ftab_set_limits(struct udp_ftab *t, const struct udp_limits *lim)
{
    t->lim.per_prefix = lim->per_prefix;
    t->lim.new_per_sec = lim->new_per_sec;
    if (t->tokens > lim->new_per_sec)
        t->tokens = lim->new_per_sec;
}

static uint32_t *chain_of(struct udp_ftab *t, const struct udp_peer *p)
{
    return &t->bucket[hash_bytes(p, sizeof(*p)) & t->mask];
}

struct udp_flow *udp_ftab_find(struct udp_ftab *t, const struct sockaddr *sa)
{
    struct udp_peer p;

    if (!peer_of(sa, &p))
        return NULL;
    for (uint32_t i = *chain_of(t, &p); i != 0; i = t->flows[i - 1].next) {
        if (memcmp(&t->flows[i - 1].peer, &p, sizeof(p)) == 0)
            return &t->flows[i - 1];
    }
    return NULL;
}

/* The prefix node of ip (created with count 0 when `create`), as index + 1, or 0. */
static uint32_t prefix_get(struct udp_ftab *t, const uint8_t ip[16], bool create)
{
    uint8_t key[16];
    uint32_t *head, i;

    prefix_of(ip, key);
    head = &t->pbucket[hash_bytes(key, sizeof(key)) & t->mask];
    for (i = *head; i != 0; i = t->pfx[i - 1].next) {
        if (memcmp(t->pfx[i - 1].ip, key, sizeof(key)) == 0)
            return i;
    }
    if (!create || t->free_pfx == 0)
        return 0;
    i = t->free_pfx;
    t->free_pfx = t->pfx[i - 1].next;
    memcpy(t->pfx[i - 1].ip, key, sizeof(key));
    t->pfx[i - 1].count = 0;
    t->pfx[i - 1].next = *head;
    *head = i;
    return i;
}

static void prefix_put(struct udp_ftab *t, uint32_t i)
{
    uint8_t *key = t->pfx[i - 1].ip;
    uint32_t *link = &t->pbucket[hash_bytes(key, 16) & t->mask];

    if (--t->pfx[i - 1].count > 0)
        return;
    while (*link != i)
        link = &t->pfx[*link - 1].next;
    *link = t->pfx[i - 1].next;
    t->pfx[i - 1].next = t->free_pfx;
    t->free_pfx = i;
}

/* Token bucket: new_per_sec tokens a second, at most one second's worth saved. */
static bool rate_take(struct udp_ftab *t, uint64_t now_ms)
{
    if (t->lim.new_per_sec == 0)
        return true;
    if (now_ms > t->tokens_ms) {
        t->tokens += (double)(now_ms - t->tokens_ms) * t->lim.new_per_sec / 1000.0;
        if (t->tokens > t->lim.new_per_sec)
            t->tokens = t->lim.new_per_sec;
    }
    t->tokens_ms = now_ms;
    if (t->tokens < 1.0)
        return false;
    t->tokens -= 1.0;
    return true;
}

static enum udp_refuse refuse(struct udp_ftab *t, enum udp_refuse r)
{
    t->refused[r]++;
    return r;
}

enum udp_refuse udp_ftab_open(struct udp_ftab *t, const struct sockaddr *sa, socklen_t len,
                              uint64_t now_ms, struct udp_flow **out)
{
    struct udp_peer p;
    struct udp_flow *f;
    uint32_t i, pi = 0;

    *out = NULL;
    if (!peer_of(sa, &p) || len > sizeof(f->addr))
        return refuse(t, UDPR_FAMILY);
    if (t->free_flow == 0)
        return refuse(t, UDPR_FULL);
    if (t->lim.per_prefix > 0) {
        pi = prefix_get(t, p.ip, false);
        if (pi != 0 && t->pfx[pi - 1].count >= t->lim.per_prefix)
            return refuse(t, UDPR_PREFIX);
    }
    if (!rate_take(t, now_ms))
        return refuse(t, UDPR_RATE);
    /* Counted for every flow, also when per_prefix is 0, so that a reload may set it. */
    pi = prefix_get(t, p.ip, true); /* a free node exists: one per flow at most */
    t->pfx[pi - 1].count++;

    i = t->free_flow;
    f = &t->flows[i - 1];
    t->free_flow = f->next;
    memset(f, 0, sizeof(*f));
    f->peer = p;
    memcpy(&f->addr, sa, len);
    f->addr_len = len;
    f->prefix = pi;
    f->used = true;
    f->start_ms = f->last_ms = now_ms;
    for (int s = 0; s < UDP_UPS; s++)
        f->up[s].fd = -1;
    f->next = *chain_of(t, &p);
    *chain_of(t, &p) = i;
    t->open++;
    *out = f;
    return UDPR_OK;
}

void udp_ftab_close(struct udp_ftab *t, struct udp_flow *f)
{
    uint32_t i = (uint32_t)(f - t->flows) + 1;
    uint32_t *link = chain_of(t, &f->peer);

    while (*link != i)
        link = &t->flows[*link - 1].next;
    *link = f->next;
    prefix_put(t, f->prefix);
    f->used = false;
    f->next = t->free_flow;
    t->free_flow = i;
    t->open--;
}

size_t udp_ftab_expired(struct udp_ftab *t, uint64_t now_ms, uint32_t *cursor, uint32_t scan,
                        struct udp_flow **v, size_t cap)
{
    size_t n = 0;

    if (scan > t->lim.max_flows)
        scan = t->lim.max_flows;
    for (uint32_t k = 0; k < scan && n < cap; k++) {
        struct udp_flow *f = &t->flows[*cursor];

        *cursor = *cursor + 1 < t->lim.max_flows ? *cursor + 1 : 0;
        if (f->used && now_ms >= f->last_ms && now_ms - f->last_ms >= f->idle_ms)
            v[n++] = f;
    }
    return n;
}

bool udp_up_admit(struct udp_up *u, uint32_t budget)
{
    if (!u->verified) {
        if (u->unverified >= budget)
            return false;
        u->unverified++;
    }
    return true;
}

void udp_flow_note_tid(struct udp_flow *f, enum udp_up_side side, const uint8_t tid[12])
{
    memcpy(f->tid[f->tid_next], tid, 12);
    f->tid_side[f->tid_next] = (uint8_t)(side + 1);
    f->tid_next = (uint8_t)((f->tid_next + 1) % UDP_TIDS);
}

int udp_flow_tid_side(struct udp_flow *f, const uint8_t tid[12])
{
    for (int k = 0; k < UDP_TIDS; k++) {
        if (f->tid_side[k] != 0 && memcmp(f->tid[k], tid, 12) == 0) {
            int side = f->tid_side[k] - 1;

            f->tid_side[k] = 0;
            return side;
        }
    }
    return -1;
}

const char *udp_refuse_name(enum udp_refuse r)
{
    static const char *const names[] = {"ok", "table_full", "per_prefix", "rate", "family"};

    return (size_t)r < sizeof(names) / sizeof(names[0]) ? names[r] : "?";
}
