/* The UDP kernel path's BPF side: the embedded tc program, its two maps (the NAT entries,
 * and the slots mapped into our memory), and its tcx links, one per device. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "mux443/lib/udpnat.h"

#define TEXT_MAX 512

uint64_t udpnat_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#ifdef MUX443_HAVE_BPF
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

/* The compiled program (generated at build time from src/bpf/udp_nat.bpf.c). */
extern const unsigned char mux443_udp_nat_bpf[];
extern const size_t mux443_udp_nat_bpf_len;

/* tcx (Linux 6.6): Debian 12's headers (6.1) and libbpf 1.1 predate it. */
#define UDPNAT_TCX_INGRESS 46 /* enum bpf_attach_type BPF_TCX_INGRESS */

#define LINKS_MAX 64

struct udpnat {
    struct bpf_object *obj;
    int flows_fd, flows6_fd;
    struct udpnat_slot *slots;
    size_t slots_len;
    uint32_t nslots;
    int links[LINKS_MAX];
    size_t nlinks;
    bool accept_local, route_localnet; /* lo's, at start */
    char attached[TEXT_MAX], skipped[TEXT_MAX];
};

static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
    (void)level;
    (void)fmt;
    (void)ap;
    return 0;
}

/* Appends "name" or "name (why)" to a comma list. */
static void append(char *buf, const char *name, const char *why)
{
    size_t len = strlen(buf);

    if (len + 1 < TEXT_MAX)
        snprintf(buf + len, TEXT_MAX - len, "%s%s%s%s%s", len ? ", " : "", name, why ? " (" : "",
                 why ? why : "", why ? ")" : "");
}

/* A tcx link of the program at dev's ingress: its descriptor, or -1 with errno. The raw
 * system call, since libbpf 1.1 has no tcx. */
static int tcx_attach(int prog_fd, unsigned ifindex)
{
    union bpf_attr attr;

    memset(&attr, 0, sizeof(attr));
    attr.link_create.prog_fd = (uint32_t)prog_fd;
    attr.link_create.target_ifindex = ifindex;
    attr.link_create.attach_type = UDPNAT_TCX_INGRESS;
    return (int)syscall(__NR_bpf, BPF_LINK_CREATE, &attr, sizeof(attr));
}

/* Whether `name` is in the list (NULL: every device). */
static bool wanted(const char *list, const char *name)
{
    size_t len = strlen(name);

    if (list == NULL)
        return true;
    for (const char *p = list; *p;) {
        size_t w;

        p += strspn(p, ", \t");
        w = strcspn(p, ", \t");
        if (w == len && strncmp(p, name, len) == 0)
            return true;
        p += w;
    }
    return false;
}

/* Attaches the program to each device wanted that is up and has an Ethernet header (the
 * program reads the IPv4 header behind one: lo and Ethernet-like devices, veth included). */
static void attach_all(struct udpnat *n, int prog_fd, const char *list)
{
    struct if_nameindex *ifs = if_nameindex();
    int sfd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    for (size_t i = 0; ifs && sfd >= 0 && ifs[i].if_index != 0; i++) {
        struct ifreq ifr;
        const char *name = ifs[i].if_name;
        int fd;

        if (!wanted(list, name))
            continue;
        memset(&ifr, 0, sizeof(ifr));
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
        if (ioctl(sfd, SIOCGIFFLAGS, &ifr) != 0 || !(ifr.ifr_flags & IFF_UP)) {
            if (list != NULL)
                append(n->skipped, name, "down");
            continue;
        }
        if (ioctl(sfd, SIOCGIFHWADDR, &ifr) != 0 || (ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER &&
                                                     ifr.ifr_hwaddr.sa_family != ARPHRD_LOOPBACK)) {
            append(n->skipped, name, "no Ethernet header");
            continue;
        }
        if (n->nlinks == LINKS_MAX) {
            append(n->skipped, name, "too many devices");
            continue;
        }
        if ((fd = tcx_attach(prog_fd, ifs[i].if_index)) < 0) {
            append(n->skipped, name, strerror(errno));
            continue;
        }
        n->links[n->nlinks++] = fd;
        append(n->attached, name, NULL);
    }
    /* Names asked for that are not there at all. */
    for (const char *p = list ? list : ""; *p;) {
        char name[IF_NAMESIZE + 1];
        size_t w;

        p += strspn(p, ", \t");
        w = strcspn(p, ", \t");
        if (w > 0 && w < sizeof(name)) {
            memcpy(name, p, w);
            name[w] = '\0';
            if (if_nametoindex(name) == 0)
                append(n->skipped, name, "no such device");
        }
        p += w;
    }
    if (sfd >= 0)
        close(sfd);
    if (ifs)
        if_freenameindex(ifs);
}

/* A boolean sysctl of lo's (or of all devices: either one set counts, as for the kernel). */
static bool lo_conf(const char *key)
{
    bool on = false;

    for (int i = 0; i < 2 && !on; i++) {
        char path[96], c = '0';
        FILE *f;

        snprintf(path, sizeof(path), "/proc/sys/net/ipv4/conf/%s/%s", i ? "all" : "lo", key);
        if ((f = fopen(path, "re")) != NULL) {
            on = fread(&c, 1, 1, f) == 1 && c == '1';
            fclose(f);
        }
    }
    return on;
}

struct udpnat *udpnat_open(const char *devices, uint32_t slots, uint32_t entries, char *err,
                           size_t cap)
{
    struct udpnat *n = calloc(1, sizeof(*n));
    const char *step = "out of memory";
    struct bpf_program *prog;
    struct bpf_map *flows, *flows6, *slotmap;
    int prog_fd, slots_fd;

    libbpf_set_print(quiet);
    if (!n || slots == 0 || entries == 0)
        goto fail;
    n->flows_fd = n->flows6_fd = -1;
    step = "cannot open the BPF object";
    n->obj = bpf_object__open_mem(mux443_udp_nat_bpf, mux443_udp_nat_bpf_len, NULL);
    if (!n->obj)
        goto fail;
    flows = bpf_object__find_map_by_name(n->obj, "un_flows");
    flows6 = bpf_object__find_map_by_name(n->obj, "un_flows6");
    slotmap = bpf_object__find_map_by_name(n->obj, "un_slots");
    prog = bpf_object__find_program_by_name(n->obj, "un_ingress");
    step = "BPF object without its program or maps";
    if (!flows || !flows6 || !slotmap || !prog || bpf_map__set_max_entries(flows, entries) != 0 ||
        bpf_map__set_max_entries(flows6, entries) != 0 ||
        bpf_map__set_max_entries(slotmap, slots) != 0)
        goto fail;
    /* The program declares these layouts again (it cannot include this header): a
     * mismatch would make every entry garbage, silently. */
    step = "the BPF program's map layouts differ from lib/udpnat.h";
    errno = EPROTO;
    if (bpf_map__key_size(flows) != sizeof(struct udpnat_key) ||
        bpf_map__value_size(flows) != sizeof(struct udpnat_entry) ||
        bpf_map__key_size(flows6) != sizeof(struct udpnat_key6) ||
        bpf_map__value_size(flows6) != sizeof(struct udpnat_entry6) ||
        bpf_map__value_size(slotmap) != sizeof(struct udpnat_slot))
        goto fail;
    step = "cannot load the BPF program (needs CAP_BPF and CAP_NET_ADMIN, or root)";
    if (bpf_object__load(n->obj) != 0)
        goto fail;
    n->flows_fd = bpf_map__fd(flows);
    n->flows6_fd = bpf_map__fd(flows6);
    slots_fd = bpf_map__fd(slotmap);
    prog_fd = bpf_program__fd(prog);
    step = "cannot map the slots";
    n->nslots = slots;
    n->slots_len = (size_t)slots * sizeof(struct udpnat_slot);
    n->slots = mmap(NULL, n->slots_len, PROT_READ | PROT_WRITE, MAP_SHARED, slots_fd, 0);
    if (n->slots == MAP_FAILED) {
        n->slots = NULL;
        goto fail;
    }
    n->accept_local = lo_conf("accept_local");
    n->route_localnet = lo_conf("route_localnet");
    attach_all(n, prog_fd, devices);
    if (n->nlinks == 0) {
        snprintf(err, cap,
                 "no device took the tc program (tcx needs Linux 6.6 and CAP_NET_ADMIN)%s%s",
                 n->skipped[0] ? ": " : "", n->skipped);
        udpnat_close(n);
        return NULL;
    }
    return n;
fail:
    snprintf(err, cap, "%s: %s", step, strerror(errno));
    udpnat_close(n);
    return NULL;
}

void udpnat_close(struct udpnat *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->nlinks; i++)
        close(n->links[i]); /* the link goes, and the program leaves the device */
    if (n->slots)
        munmap(n->slots, n->slots_len);
    bpf_object__close(n->obj);
    free(n);
}

const char *udpnat_attached(const struct udpnat *n)
{
    return n->attached;
}

const char *udpnat_skipped(const struct udpnat *n)
{
    return n->skipped;
}

struct udpnat_slot *udpnat_slot(struct udpnat *n, uint32_t i)
{
    return i < n->nslots ? &n->slots[i] : NULL;
}

int udpnat_put(struct udpnat *n, const struct udpnat_key *k, const struct udpnat_entry *e)
{
    return bpf_map_update_elem(n->flows_fd, k, e, BPF_ANY);
}

void udpnat_del(struct udpnat *n, const struct udpnat_key *k)
{
    bpf_map_delete_elem(n->flows_fd, k);
}

static bool loopback(uint32_t ip)
{
    return (ntohl(ip) >> 24) == 127;
}

/* The kernel's route to dst (4 or 16 bytes of family's): its type and output device
 * (0: none named). False when the kernel has no answer (NLMSG_ERROR: no route). */
static bool get_route(int family, const void *dst, size_t dst_len, unsigned char *type,
                      uint32_t *oif)
{
    struct {
        struct nlmsghdr h;
        struct rtmsg r;
        struct rtattr a;
        uint8_t dst[16];
    } req;
    union {
        struct nlmsghdr h;
        char buf[1024];
    } ans;
    struct rtmsg *rt;
    struct rtattr *a;
    int fd, len, attr_len;

    memset(&req, 0, sizeof(req));
    req.h.nlmsg_len = (uint32_t)NLMSG_LENGTH(sizeof(req.r) + RTA_LENGTH(dst_len));
    req.h.nlmsg_type = RTM_GETROUTE;
    req.h.nlmsg_flags = NLM_F_REQUEST;
    req.r.rtm_family = (unsigned char)family;
    req.r.rtm_dst_len = (unsigned char)(dst_len * 8);
    req.a.rta_type = RTA_DST;
    req.a.rta_len = (unsigned short)RTA_LENGTH(dst_len);
    memcpy(req.dst, dst, dst_len);
    if ((fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE)) < 0)
        return false;
    len = send(fd, &req, req.h.nlmsg_len, 0) == (ssize_t)req.h.nlmsg_len
              ? (int)recv(fd, &ans, sizeof(ans), 0)
              : -1;
    close(fd);
    if (len < (int)NLMSG_LENGTH(sizeof(*rt)) || !NLMSG_OK(&ans.h, (unsigned)len) ||
        ans.h.nlmsg_type != RTM_NEWROUTE)
        return false;
    rt = NLMSG_DATA(&ans.h);
    *type = rt->rtm_type;
    *oif = 0;
    attr_len = (int)RTM_PAYLOAD(&ans.h);
    for (a = RTM_RTA(rt); RTA_OK(a, attr_len); a = RTA_NEXT(a, attr_len))
        if (a->rta_type == RTA_OIF && RTA_PAYLOAD(a) >= sizeof(uint32_t))
            memcpy(oif, RTA_DATA(a), sizeof(uint32_t));
    return true;
}

bool udpnat_route(const struct udpnat *n, struct udpnat_nat *nat)
{
    unsigned char type;
    uint32_t oif;

    if (!get_route(AF_INET, &nat->daddr, sizeof(nat->daddr), &type, &oif))
        return false;
    nat->ifindex = 0;
    nat->flags = 0;
    if (type == RTN_LOCAL) {
        if (n->accept_local &&
            (n->route_localnet || (!loopback(nat->saddr) && !loopback(nat->daddr))))
            nat->flags |= UDPNAT_LO_OK;
        return true;
    }
    nat->ifindex = oif;
    return type == RTN_UNICAST && oif != 0;
}

int udpnat_put6(struct udpnat *n, const struct udpnat_key6 *k, const struct udpnat_entry6 *e)
{
    return bpf_map_update_elem(n->flows6_fd, k, e, BPF_ANY);
}

void udpnat_del6(struct udpnat *n, const struct udpnat_key6 *k)
{
    bpf_map_delete_elem(n->flows6_fd, k);
}

bool udpnat_route6(const struct udpnat *n, struct udpnat_nat6 *nat)
{
    unsigned char type;
    uint32_t oif;

    (void)n;
    if (!get_route(AF_INET6, nat->daddr, sizeof(nat->daddr), &type, &oif))
        return false;
    nat->ifindex = 0;
    nat->flags = 0;
    /* IPv6 has no accept_local nor route_localnet: lo's input takes ::1 and our own
     * addresses as a source whatever the device the datagram first came in on. */
    if (type == RTN_LOCAL) {
        nat->flags |= UDPNAT_LO_OK;
        return true;
    }
    nat->ifindex = oif;
    return type == RTN_UNICAST && oif != 0;
}

#else /* built without libbpf */

struct udpnat *udpnat_open(const char *devices, uint32_t slots, uint32_t entries, char *err,
                           size_t cap)
{
    (void)devices, (void)slots, (void)entries;
    snprintf(err, cap, "mux443 was built without libbpf");
    return NULL;
}

void udpnat_close(struct udpnat *n)
{
    (void)n;
}

const char *udpnat_attached(const struct udpnat *n)
{
    (void)n;
    return "";
}

const char *udpnat_skipped(const struct udpnat *n)
{
    (void)n;
    return "";
}

struct udpnat_slot *udpnat_slot(struct udpnat *n, uint32_t i)
{
    (void)n, (void)i;
    return NULL;
}

int udpnat_put(struct udpnat *n, const struct udpnat_key *k, const struct udpnat_entry *e)
{
    (void)n, (void)k, (void)e;
    errno = EOPNOTSUPP;
    return -1;
}

void udpnat_del(struct udpnat *n, const struct udpnat_key *k)
{
    (void)n, (void)k;
}

bool udpnat_route(const struct udpnat *n, struct udpnat_nat *nat)
{
    (void)n, (void)nat;
    return false;
}

int udpnat_put6(struct udpnat *n, const struct udpnat_key6 *k, const struct udpnat_entry6 *e)
{
    (void)n, (void)k, (void)e;
    errno = EOPNOTSUPP;
    return -1;
}

void udpnat_del6(struct udpnat *n, const struct udpnat_key6 *k)
{
    (void)n, (void)k;
}

bool udpnat_route6(const struct udpnat *n, struct udpnat_nat6 *nat)
{
    (void)n, (void)nat;
    return false;
}

#endif
