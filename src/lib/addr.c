/* Socket address formatting and keys. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "mux443/lib/addr.h"

void addr_format(const struct sockaddr *sa, char *dst, size_t cap)
{
    char ip[INET6_ADDRSTRLEN];
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
        snprintf(dst, cap, "%s:%u", ip, ntohs(s4->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
        snprintf(dst, cap, "[%s]:%u", ip, ntohs(s6->sin6_port));
    } else {
        snprintf(dst, cap, "unknown");
    }
}

void addr_ip_set(union addr_ip *dst, const struct sockaddr *sa, socklen_t len)
{
    memset(dst, 0, sizeof(*dst));
    if ((sa->sa_family == AF_INET && len >= sizeof(dst->in)) ||
        (sa->sa_family == AF_INET6 && len >= sizeof(dst->in6)))
        memcpy(dst, sa, sa->sa_family == AF_INET ? sizeof(dst->in) : sizeof(dst->in6));
}

bool addr_key(const struct sockaddr *sa, uint8_t key[16])
{
    memset(key, 0, 16);
    if (sa->sa_family == AF_INET) {
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        return true;
    }
    return false;
}

void addr_mask(uint8_t key[16], unsigned bits)
{
    for (unsigned i = 0; i < 16; i++) {
        unsigned keep = bits > i * 8 ? bits - i * 8 : 0;
        if (keep < 8)
            key[i] &= (uint8_t)(0xff00u >> keep);
    }
}

bool addr_cidr_parse(const char *text, struct addr_cidr *out)
{
    char ip[INET6_ADDRSTRLEN];
    const char *slash = strchr(text, '/');
    size_t n = slash ? (size_t)(slash - text) : strlen(text);
    struct in_addr a4;
    unsigned long bits;
    char *end;

    if (n == 0 || n >= sizeof(ip))
        return false;
    memcpy(ip, text, n);
    ip[n] = '\0';
    memset(out, 0, sizeof(*out));
    bool v4 = inet_pton(AF_INET, ip, &a4) == 1;
    if (v4) {
        out->net[10] = out->net[11] = 0xff;
        memcpy(out->net + 12, &a4, 4);
    } else if (inet_pton(AF_INET6, ip, out->net) != 1) {
        return false;
    }
    bits = v4 ? 32 : 128;
    if (slash) {
        errno = 0;
        bits = strtoul(slash + 1, &end, 10);
        if (!slash[1] || *end || errno || bits > (v4 ? 32u : 128u))
            return false;
    }
    out->bits = (unsigned)bits + (v4 ? 96 : 0);
    addr_mask(out->net, out->bits);
    return true;
}

bool addr_cidr_match(const struct addr_cidr *net, const struct sockaddr *sa)
{
    uint8_t k[16];
    if (!addr_key(sa, k))
        return false;
    unsigned full = net->bits / 8, rest = net->bits % 8;
    if (memcmp(k, net->net, full) != 0)
        return false;
    return !rest || (k[full] & (uint8_t)(0xff00u >> rest)) == net->net[full];
}
