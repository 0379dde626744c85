/* Socket addresses as text (logs, metrics labels, the ufrag table) and as fixed-size
 * keys (per-client tables). */
#ifndef MUX443_LIB_ADDR_H
#define MUX443_LIB_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* "255.255.255.255:65535" / "[v6 address]:65535" fit. */
#define ADDR_TEXT_MAX 64

/* "127.0.0.1:443" / "[::1]:443"; "unknown" for other families. */
void addr_format(const struct sockaddr *sa, char *dst, size_t cap);

/* The IP address as 16 bytes, IPv4 as v4-mapped IPv6 (so that both forms of one client
 * count together). False for other families. */
bool addr_key(const struct sockaddr *sa, uint8_t key[16]);

#endif
