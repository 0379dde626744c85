/* A growable byte buffer with a read offset: the preread buffer of a connection and the
 * bytes one side of a relay could not pass on yet. Allocated only while it holds data. */
#ifndef MUX443_LIB_BUF_H
#define MUX443_LIB_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf {
    uint8_t *data;
    uint32_t off, len, cap; /* bytes [off, len) are unread */
};

/* Unread bytes. */
static inline size_t buf_unread(const struct buf *b)
{
    return b->len - b->off;
}

/* Makes room for `want` more bytes after len: compacts first, then grows by doubling,
 * but never beyond `max` bytes in all (so the room may be smaller than want: callers
 * use cap - len). Returns false when out of memory or when len has reached max; the
 * buffer is unchanged then. */
bool buf_reserve(struct buf *b, size_t want, size_t max);

/* Appends n bytes (buf_reserve must have made room). */
void buf_put(struct buf *b, const void *p, size_t n);

/* Drops the first n unread bytes. */
void buf_consume(struct buf *b, size_t n);

/* Frees the memory; the buffer is empty and holds nothing afterwards. */
void buf_release(struct buf *b);

#endif
