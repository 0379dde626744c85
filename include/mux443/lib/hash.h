/* One keyed hash for every table whose keys a client chooses (client addresses, ICE
 * ufrags): SipHash-2-4 under a key drawn at start, so that nobody can aim many keys at
 * one bucket. Also the balancing hash of `balance = source`. */
#ifndef MUX443_LIB_HASH_H
#define MUX443_LIB_HASH_H

#include <stddef.h>
#include <stdint.h>

/* Draws the process's key from the kernel (getrandom). Called once at start, before any
 * thread hashes; without it the key is zero (deterministic: tests). Returns 0, or -1 with
 * errno when no randomness was available. */
int hash_init(void);

/* SipHash-2-4 of n bytes under the process key. */
uint64_t hash_bytes(const void *p, size_t n);

/* SipHash-2-4 under an explicit 16-byte key (test vectors). */
uint64_t hash_siphash(const uint8_t key[16], const void *p, size_t n);

#endif
