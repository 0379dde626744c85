/* The kernel relay's sk_skb stream-verdict program (README "Kernel relay"). Every segment
 * a relayed socket receives goes straight to its peer's send path, counted, within the
 * limit user space sets; the empty skb of a FIN is dropped (user space passes the FIN on
 * once the peer took every counted byte). Until user space arms a socket, and whenever a
 * segment was passed to user space since, segments are passed to user space instead, so
 * that bytes are never reordered. Built with clang -target bpf and embedded in mux443
 * (src/lib/sockmap.c loads it). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* One per relayed socket: the layout of struct sockmap_slot (include/mux443/lib/sockmap.h);
 * user space maps the array and writes peer, limit and armed_at. */
struct kr_slot {
    __u64 peer;     /* the peer socket's cookie: its key in kr_socks */
    __u64 bytes;    /* bytes received on this socket and redirected to the peer */
    __u64 passed;   /* bytes passed to user space */
    __u64 armed_at; /* redirect only while passed == armed_at */
    __u64 limit;    /* go on while bytes + passed stay within this; past it: drop, flag */
    __u32 over;     /* set once a segment was dropped for the limit */
    __u32 pad;
};

#define KR_SLOTS 32768

struct {
    __uint(type, BPF_MAP_TYPE_SOCKHASH);
    __uint(max_entries, KR_SLOTS);
    __type(key, __u64);
    __type(value, __u32);
} kr_socks SEC(".maps");

/* socket cookie -> slot */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, KR_SLOTS);
    __type(key, __u64);
    __type(value, __u32);
} kr_index SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, KR_SLOTS);
    __uint(map_flags, BPF_F_MMAPABLE);
    __type(key, __u32);
    __type(value, struct kr_slot);
} kr_slots SEC(".maps");

SEC("sk_skb/stream_verdict")
int kr_verdict(struct __sk_buff *skb)
{
    __u32 len = skb->len;
    __u64 key;
    __u32 *idx;
    struct kr_slot *s;

    /* The FIN's empty skb: redirected, it would break the peer's stream. */
    if (len == 0)
        return SK_DROP;
    key = bpf_get_socket_cookie(skb);
    idx = bpf_map_lookup_elem(&kr_index, &key);
    if (!idx)
        return SK_PASS;
    s = bpf_map_lookup_elem(&kr_slots, idx);
    if (!s)
        return SK_PASS;
    /* Neither path has back-pressure: past the limit, drop (user space closes the
     * connection at its next look: its receiver does not read). */
    if (s->bytes + s->passed + len > s->limit) {
        s->over = 1;
        return SK_DROP;
    }
    /* Not armed, or bytes went to user space since: they must reach the peer first. */
    if (s->passed != s->armed_at) {
        __sync_fetch_and_add(&s->passed, len);
        return SK_PASS;
    }
    if (bpf_sk_redirect_hash(skb, &kr_socks, &s->peer, 0) != SK_PASS) {
        __sync_fetch_and_add(&s->passed, len); /* the peer left the map: user space */
        return SK_PASS;
    }
    __sync_fetch_and_add(&s->bytes, len);
    return SK_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
