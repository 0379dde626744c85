/* Unit tests for the ICE ufrag table (state/ufrag.c): registration, lookups, expiry and
 * grace, entries held by handle across a DELETE, two pools with the same ufrag, the size
 * limit, and a listing formatted with no lock held. Expiry is tested without waiting:
 * lifetimes of 0 or less have expired by the time of the next sweep. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "mux443/conf/load.h"
#include "mux443/state/metrics.h"
#include "mux443/state/ufrag.h"

#define MEDIA1 "127.0.0.1:14444"
#define MEDIA2 "127.0.0.1:14445"
#define OTHER  "127.0.0.1:14446"

static struct cfg *cfg, *cfg_reloaded;
static const struct cfg_backend *media, *other;

static struct cfg *load(const char *text)
{
    FILE *in = fmemopen((void *)text, strlen(text), "r");
    struct cfg *c = cfg_load_stream(in, "t.ini", stderr, NULL);
    fclose(in);
    assert_non_null(c);
    return c;
}

/* Two balance = ufrag pools; and `media` again after a reload that removed MEDIA2. */
static int setup(void **state)
{
    (void)state;
    cfg = load("[mux443]\nlisten = 127.0.0.1:9\n"
               "[backend media]\nserver = " MEDIA1 ", " MEDIA2 "\nbalance = ufrag\n"
               "[backend other]\nserver = " OTHER "\nbalance = ufrag\n"
               "[route]\nice-tcp = media\n");
    cfg_reloaded = load("[mux443]\nlisten = 127.0.0.1:9\n"
                        "[backend media]\nserver = " MEDIA1 "\nbalance = ufrag\n"
                        "[route]\nice-tcp = media\n");
    media = cfg_backend_find(cfg, "media");
    other = cfg_backend_find(cfg, "other");
    ufrag_set_timing(600, 30);
    return 0;
}

/* Every test leaves nothing held: with lifetimes in the past, a sweep empties the table. */
static int teardown(void **state)
{
    (void)state;
    ufrag_set_timing(-1, -1);
    ufrag_sweep();
    assert_int_equal(ufrag_count(), 0);
    cfg_free(cfg);
    cfg_free(cfg_reloaded);
    return 0;
}

/* Registers ufrag u for `server` of `backend` (ttl 0: the configured ufrag_ttl). */
static void reg(const char *u, const char *backend, const char *server, double ttl)
{
    struct ufrag_reg r = {.ttl = ttl};
    snprintf(r.ufrag, sizeof(r.ufrag), "%s", u);
    snprintf(r.backend, sizeof(r.backend), "%s", backend);
    snprintf(r.server, sizeof(r.server), "%s", server);
    assert_true(ufrag_register(&r, 1));
}

static struct ufrag_entry *acquire(const struct cfg_backend *b, const char *u, size_t *idx)
{
    size_t dummy;
    return ufrag_acquire(b, u, strlen(u), idx ? idx : &dummy);
}

/* The table as GET /ufrags shows it (caller frees). Not inlined: gcc 12 takes the
 * buffer open_memstream fills for a pointer to this frame (-Wdangling-pointer). */
__attribute__((noinline)) static char *listing(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ufrag_list_json(f);
    fclose(f);
    return text;
}

/* The listing's row for ufrag u shows `field` (e.g. "\"connections\":1"). */
static void assert_row(const char *u, const char *field)
{
    char key[300];
    char *all = listing();
    snprintf(key, sizeof(key), "{\"ufrag\":\"%s\",", u);
    char *row = strstr(all, key);
    char *end = row ? strchr(row, '}') : NULL;
    if (!row || !end)
        fail_msg("no row for %s in %s", u, all);
    *end = '\0';
    if (!strstr(row, field))
        fail_msg("expected %s in %s", field, row);
    free(all);
}

static void test_register_and_lookup(void **state)
{
    size_t idx = 99;
    (void)state;

    unsigned long long hits = atomic_load(&mx.ufrag_hits), misses = atomic_load(&mx.ufrag_misses);
    reg("abcd", "media", MEDIA2, 0);
    assert_int_equal(ufrag_count(), 1);
    struct ufrag_entry *e = acquire(media, "abcd", &idx);
    assert_non_null(e);
    assert_int_equal(idx, 1);
    assert_row("abcd", "\"backend\":\"media\",\"server\":\"" MEDIA2 "\",\"source\":\"registered\","
                       "\"connections\":1");
    assert_null(acquire(media, "abce", NULL));  /* another ufrag */
    assert_null(acquire(media, "abcde", NULL)); /* a longer one with the same start */
    assert_null(acquire(other, "abcd", NULL));  /* registered for the other pool only */
    assert_int_equal(atomic_load(&mx.ufrag_hits) - hits, 1);
    assert_int_equal(atomic_load(&mx.ufrag_misses) - misses, 3);
    ufrag_release(e);
    assert_row("abcd", "\"connections\":0");
    /* Registering again updates the entry in place. */
    reg("abcd", "media", MEDIA1, 0);
    assert_int_equal(ufrag_count(), 1);
    ufrag_release(acquire(media, "abcd", &idx));
    assert_int_equal(idx, 0);
    assert_int_equal(ufrag_unregister("abcd", 4), 1);
    assert_int_equal(ufrag_unregister("abcd", 4), 0);
    assert_null(acquire(media, "abcd", NULL));
}

static void test_expiry(void **state)
{
    (void)state;

    ufrag_set_timing(-1, 30); /* registrations without their own ttl: already expired */
    reg("shrt", "media", MEDIA1, 0);
    reg("long", "media", MEDIA1, 600);
    assert_int_equal(ufrag_count(), 2);
    ufrag_sweep();
    assert_int_equal(ufrag_count(), 1);
    assert_null(acquire(media, "shrt", NULL));
    struct ufrag_entry *e = acquire(media, "long", NULL);
    assert_non_null(e);
    ufrag_release(e);
    assert_int_equal(ufrag_unregister("long", 4), 1);
}

/* An entry lives while held, then `grace` after its last connection closed; a
 * registration's own longer lifetime is kept. */
static void test_grace_after_last_release(void **state)
{
    (void)state;

    ufrag_set_timing(-1, 600); /* learnt entries expire at once unless held */
    struct ufrag_entry *a = ufrag_learn(media, "lrnt", 4, 1);
    assert_non_null(a);
    struct ufrag_entry *b = acquire(media, "lrnt", NULL);
    assert_ptr_equal(a, b);
    assert_row("lrnt", "\"source\":\"fanout\",\"connections\":2");
    ufrag_sweep();
    ufrag_release(a);
    ufrag_sweep();
    assert_row("lrnt", "\"connections\":1");
    ufrag_release(b);
    ufrag_sweep();
    assert_row("lrnt", "\"connections\":0"); /* in its 600 s of grace */

    ufrag_set_timing(-1, -1); /* no grace: swept as soon as the last connection closed */
    struct ufrag_entry *c = ufrag_learn(media, "lrn2", 4, 0);
    assert_non_null(c);
    ufrag_sweep(); /* held: kept, though its lifetime is over */
    assert_ptr_equal(acquire(media, "lrn2", NULL), c);
    ufrag_release(c);
    ufrag_release(c);
    ufrag_sweep();
    assert_null(acquire(media, "lrn2", NULL));

    reg("regd", "media", MEDIA1, 600); /* its own lifetime outlasts the (absent) grace */
    ufrag_release(acquire(media, "regd", NULL));
    ufrag_sweep();
    assert_row("regd", "\"connections\":0");
    assert_int_equal(ufrag_unregister("lrnt", 4), 1);
    assert_int_equal(ufrag_unregister("regd", 4), 1);
}

/* Regression (fixed in 9a70af1). A connection holds the entry for "dele"; DELETE
 * /ufrags/dele, then a new registration of "dele" to another server, which a new
 * connection holds. The old connection's release must leave the new entry alone. The
 * old code released by ufrag string: it found the new entry, took its count to 0 and
 * gave it `grace` from now, so with a short grace a sweep forgot the new registration
 * under its live connection (and DELETE had freed the old entry while it was held). */
static void test_delete_while_held_then_register_again(void **state)
{
    size_t idx;
    (void)state;

    ufrag_set_timing(600, -1); /* released entries expire at once: a wrong release shows */
    reg("dele", "media", MEDIA1, 0);
    struct ufrag_entry *old = acquire(media, "dele", &idx);
    assert_non_null(old);
    assert_int_equal(idx, 0);
    assert_int_equal(ufrag_unregister("dele", 4), 1);
    assert_int_equal(ufrag_count(), 0);
    assert_null(acquire(media, "dele", NULL));

    reg("dele", "media", MEDIA2, 0);
    struct ufrag_entry *now = acquire(media, "dele", &idx);
    assert_non_null(now);
    assert_ptr_not_equal(now, old);
    assert_int_equal(idx, 1);
    ufrag_release(old); /* frees the deleted entry (ASan checks) */
    ufrag_sweep();
    assert_int_equal(ufrag_count(), 1);
    assert_row("dele", "\"server\":\"" MEDIA2 "\",\"source\":\"registered\",\"connections\":1");
    struct ufrag_entry *again = acquire(media, "dele", &idx);
    assert_ptr_equal(again, now);
    assert_int_equal(idx, 1);
    ufrag_release(again);
    ufrag_release(now);
    assert_int_equal(ufrag_unregister("dele", 4), 1);
}

/* Regression (fixed in 9a70af1): two balance = ufrag pools, one ufrag. The old table was
 * keyed by the ufrag alone: a lookup through `media` found `other`'s entry, saw another
 * backend and, nothing holding it, deleted it; and registering the ufrag for one pool
 * replaced the other's entry. */
static void test_two_pools_same_ufrag(void **state)
{
    size_t idx = 99;
    (void)state;

    reg("same", "other", OTHER, 0);
    assert_null(acquire(media, "same", NULL));
    assert_int_equal(ufrag_count(), 1); /* the miss through `media` evicted nothing */
    struct ufrag_entry *o = acquire(other, "same", &idx);
    assert_non_null(o);
    assert_int_equal(idx, 0);

    reg("same", "media", MEDIA2, 0);
    assert_int_equal(ufrag_count(), 2);
    struct ufrag_entry *m = acquire(media, "same", &idx);
    assert_non_null(m);
    assert_ptr_not_equal(m, o);
    assert_int_equal(idx, 1);
    ufrag_release(o);
    ufrag_release(m);
    assert_non_null(o = acquire(other, "same", &idx));
    assert_int_equal(idx, 0);
    ufrag_release(o);
    assert_int_equal(ufrag_unregister("same", 4), 2); /* DELETE forgets it in every pool */
}

/* A reload removed the entry's server from the pool: the entry is dropped by the next
 * lookup when nothing holds it, and kept for the connections that do. */
static void test_server_left_the_pool(void **state)
{
    const struct cfg_backend *now = cfg_backend_find(cfg_reloaded, "media");
    (void)state;

    reg("gone", "media", MEDIA2, 0);
    struct ufrag_entry *held = acquire(media, "gone", NULL);
    assert_non_null(held);
    assert_null(acquire(now, "gone", NULL));
    assert_int_equal(ufrag_count(), 1);
    ufrag_release(held);
    assert_null(acquire(now, "gone", NULL));
    assert_int_equal(ufrag_count(), 0);
}

/* UFRAG_MAX_ENTRIES: registrations are all or nothing, and fan-out results are not kept
 * once the table is full. */
static void test_table_full(void **state)
{
    enum { BATCH = 1000 };
    struct ufrag_reg *r = calloc(BATCH, sizeof(*r));
    (void)state;

    assert_non_null(r);
    ufrag_set_timing(-1, -1); /* all swept by the teardown */
    for (size_t i = 0; i < BATCH; i++) {
        snprintf(r[i].backend, sizeof(r[i].backend), "media");
        snprintf(r[i].server, sizeof(r[i].server), MEDIA1);
    }
    for (size_t n = 0; n < UFRAG_MAX_ENTRIES - 1;) {
        size_t k = UFRAG_MAX_ENTRIES - 1 - n < BATCH ? UFRAG_MAX_ENTRIES - 1 - n : BATCH;
        for (size_t i = 0; i < k; i++)
            snprintf(r[i].ufrag, sizeof(r[i].ufrag), "u%07zu", n + i);
        assert_true(ufrag_register(r, k));
        n += k;
    }
    assert_int_equal(ufrag_count(), UFRAG_MAX_ENTRIES - 1);
    snprintf(r[0].ufrag, sizeof(r[0].ufrag), "last");
    snprintf(r[1].ufrag, sizeof(r[1].ufrag), "last2");
    assert_false(ufrag_register(r, 2)); /* one place left: nothing registered */
    assert_int_equal(ufrag_count(), UFRAG_MAX_ENTRIES - 1);
    assert_null(acquire(media, "last", NULL));
    assert_true(ufrag_register(r, 1));
    assert_int_equal(ufrag_count(), UFRAG_MAX_ENTRIES);
    assert_false(ufrag_register(&r[1], 1));
    assert_null(ufrag_learn(media, "fanout", 6, 0));
    assert_int_equal(ufrag_count(), UFRAG_MAX_ENTRIES);
    free(r);
}

/* ---- the listing holds no lock while it writes ------------------------------------ */

struct slow_reader {
    pthread_t thread;
    bool started, joined, hit;
    char *text;
    size_t len;
};

static void *lookup_thread(void *arg)
{
    struct slow_reader *s = arg;
    struct ufrag_entry *e = acquire(media, "lock", NULL);
    s->hit = e != NULL;
    ufrag_release(e);
    return NULL;
}

/* The listing's destination: when the row for "lock" is written, another thread looks
 * "lock" up and this write waits for it (10 s at most), as a slow admin client would keep
 * a worker waiting if the table were locked meanwhile. */
static ssize_t slow_write(void *cookie, const char *buf, size_t n)
{
    struct slow_reader *s = cookie;
    char *t = realloc(s->text, s->len + n + 1);
    assert_non_null(t);
    memcpy(t + s->len, buf, n);
    s->text = t;
    s->len += n;
    t[s->len] = '\0';
    if (!s->started && strstr(t, "\"ufrag\":\"lock\"")) {
        struct timespec deadline;
        s->started = pthread_create(&s->thread, NULL, lookup_thread, s) == 0;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += 10;
        s->joined = s->started && pthread_timedjoin_np(s->thread, NULL, &deadline) == 0;
    }
    return (ssize_t)n;
}

/* Regression (fixed in 9a70af1): the old ufrag_list_json held the table's lock while it
 * wrote into the admin response, so a lookup from a worker waited for the writer: here
 * the join times out (the lookup only completes once the listing is done). */
static void test_list_json_holds_no_lock(void **state)
{
    struct slow_reader s = {0};
    cookie_io_functions_t io = {.write = slow_write};
    (void)state;

    reg("lock", "media", MEDIA1, 0);
    FILE *f = fopencookie(&s, "w", io);
    assert_non_null(f);
    setvbuf(f, NULL, _IONBF, 0); /* every row reaches slow_write as it is formatted */
    ufrag_list_json(f);
    fclose(f);
    assert_true(s.started);
    if (!s.joined) {
        pthread_join(s.thread, NULL);
        fail_msg("a lookup waited for the listing to finish: the table was locked meanwhile");
    }
    assert_true(s.hit);
    assert_non_null(strstr(s.text, "\"server\":\"" MEDIA1 "\""));
    assert_int_equal(s.text[s.len - 2], ']');
    free(s.text);
    assert_int_equal(ufrag_unregister("lock", 4), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_register_and_lookup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grace_after_last_release, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_while_held_then_register_again, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_two_pools_same_ufrag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_left_the_pool, setup, teardown),
        cmocka_unit_test_setup_teardown(test_table_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_json_holds_no_lock, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
