/* Unit tests for session-ticket keys (tls/ticket.c): rotation, a failing source of
 * randomness, and which key the OpenSSL callback uses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "mux443/tls/ticket.h"

static int rand_calls;

static int rand_fails(unsigned char *buf, int n)
{
    (void)buf;
    (void)n;
    rand_calls++;
    return 0;
}

/* Known key material: every byte 0x5a. */
static int rand_fixed(unsigned char *buf, int n)
{
    rand_calls++;
    memset(buf, 0x5a, (size_t)n);
    return 1;
}

/* Runs the ticket callback as OpenSSL does: enc 1 names the key a new ticket is made
 * with (written to name); enc 0 asks about a ticket made with key `name` (0 unknown, 1
 * current, 2 previous). */
static int callback(unsigned char name[16], int enc)
{
    unsigned char iv[EVP_MAX_IV_LENGTH] = {0};
    EVP_CIPHER_CTX *ectx = EVP_CIPHER_CTX_new();
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *hctx = mac ? EVP_MAC_CTX_new(mac) : NULL;

    assert_non_null(ectx);
    assert_non_null(hctx);
    int rc = ticket_cb(NULL, name, iv, ectx, hctx, enc);
    EVP_MAC_CTX_free(hctx);
    EVP_MAC_free(mac);
    EVP_CIPHER_CTX_free(ectx);
    return rc;
}

static void current_key(unsigned char name[16])
{
    assert_int_equal(callback(name, 1), 1);
}

/* Regression (fixed in 9a70af1): the ticket-key callback, which runs on worker threads
 * during handshakes, made the new key with a helper that called fatalx() (exit) when
 * RAND_bytes failed. Now a failed rotation keeps the current key and reports false. */
static void test_rotation_failure_keeps_the_key(void **state)
{
    unsigned char before[16], after[16], name[16];
    time_t now = time(NULL);
    (void)state;

    ticket_set_rand(NULL);
    assert_true(ticket_init());
    current_key(before);

    ticket_set_rand(rand_fails);
    rand_calls = 0;
    assert_true(ticket_rotate(now)); /* not due yet: randomness is not even asked for */
    assert_int_equal(rand_calls, 0);
    assert_false(ticket_rotate(now + TICKET_ROTATE + 1));
    assert_int_equal(rand_calls, 1);
    current_key(after); /* still here: the process did not exit */
    assert_memory_equal(before, after, 16);
    memcpy(name, before, 16);
    assert_int_equal(callback(name, 0), 1);               /* its tickets still decrypt as current */
    assert_false(ticket_rotate(now + TICKET_ROTATE + 1)); /* tried again: fails again */
    assert_int_equal(rand_calls, 2);

    /* A source that works again: the rotation happens; the old key becomes the previous
     * one (valid, asks for a fresh ticket). */
    ticket_set_rand(rand_fixed);
    assert_true(ticket_rotate(now + TICKET_ROTATE + 1));
    current_key(after);
    static const unsigned char fixed[16] = {0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a,
                                            0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a};
    assert_memory_equal(after, fixed, 16);
    memcpy(name, before, 16);
    assert_int_equal(callback(name, 0), 2);
    memset(name, 0xa5, 16);
    assert_int_equal(callback(name, 0), 0); /* unknown key: a full handshake */

    /* NULL restores OpenSSL's RAND_bytes: the next rotation is no longer 0x5a. */
    ticket_set_rand(NULL);
    rand_calls = 0;
    assert_true(ticket_rotate(now + 2 * (TICKET_ROTATE + 1)));
    assert_int_equal(rand_calls, 0);
    current_key(after);
    assert_memory_not_equal(after, fixed, 16);
}

static void test_init_without_randomness(void **state)
{
    (void)state;
    ticket_set_rand(rand_fails);
    assert_false(ticket_init());
    ticket_set_rand(NULL);
    assert_true(ticket_init());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rotation_failure_keeps_the_key),
        cmocka_unit_test(test_init_without_randomness),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
