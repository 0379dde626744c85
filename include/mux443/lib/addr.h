/* Socket addresses as text (logs, metrics labels, the ufrag table) and as fixed-size
 * keys (per-client tables). */
#ifndef MUX443_LIB_ADDR_H
#define MUX443_LIB_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* "255.255.255.255:65535" / "[v6 address]:65535" fit. */
#define ADDR_TEXT_MAX 64

/* An IPv4 or IPv6 socket address: what a connection keeps of its client and of the
 * address it reached, in 28 bytes rather than sockaddr_storage's 128 (TCP listeners and
 * PROXY headers carry nothing else). */
union addr_ip {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
};

/* AF_INET or AF_INET6: a TCP socket of that family (the others here are AF_UNIX). */
static inline bool addr_family_ip(sa_family_t f)
{
    return f == AF_INET || f == AF_INET6;
}

/* Copies sa (len bytes) into dst; another family leaves dst AF_UNSPEC. */
void addr_ip_set(union addr_ip *dst, const struct sockaddr *sa, socklen_t len);

/* "127.0.0.1:443" / "[::1]:443"; "unknown" for other families. */
void addr_format(const struct sockaddr *sa, char *dst, size_t cap);

/* The IP address as 16 bytes, IPv4 as v4-mapped IPv6 (so that both forms of one client
 * count together). False for other families. */
bool addr_key(const struct sockaddr *sa, uint8_t key[16]);

/* Clears the bits of an addr_key past the first `bits`. */
void addr_mask(uint8_t key[16], unsigned bits);

/* An address prefix: 16 bytes as addr_key, bits counted on that form (an IPv4 /24 is
 * a /120 of its v4-mapped form). */
struct addr_cidr {
    uint8_t net[16];
    unsigned bits;
};

/* "10.0.0.0/8", "2001:db8::/32", or one address (all bits). False if malformed or the
 * length is out of range. */
bool addr_cidr_parse(const char *text, struct addr_cidr *out);
/* Whether sa's address is inside net. */
bool addr_cidr_match(const struct addr_cidr *net, const struct sockaddr *sa);

#endif
