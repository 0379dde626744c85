/* Byte buffers that hold memory only while they hold bytes. */
#include <stdlib.h>
#include <string.h>

#include "mux443/lib/buf.h"

bool buf_reserve(struct buf *b, size_t want, size_t max)
{
    if (b->off && b->off == b->len)
        b->off = b->len = 0;
    if (b->cap - b->len >= want)
        return true;
    if (b->off) { /* compact before growing */
        memmove(b->data, b->data + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
        if (b->cap - b->len >= want)
            return true;
    }
    if (b->len >= max)
        return false;
    size_t cap = b->cap ? b->cap : want;
    while (cap < b->len + want)
        cap *= 2;
    if (cap > max)
        cap = max;
    uint8_t *d = realloc(b->data, cap);
    if (!d)
        return false;
    b->data = d;
    b->cap = (uint32_t)cap;
    return true;
}

void buf_put(struct buf *b, const void *p, size_t n)
{
    memcpy(b->data + b->len, p, n);
    b->len += (uint32_t)n;
}

void buf_consume(struct buf *b, size_t n)
{
    b->off += (uint32_t)n;
    if (b->off == b->len)
        b->off = b->len = 0;
}

void buf_release(struct buf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}
