/* Unit tests for probe_mqtt: mosquitto_pub's CONNECT in MQTT 3.1, 3.1.1 and 5.0 as
 * captured (whole, every split, every byte damaged), and the need function. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mux443/lib/probe_mqtt.h"
#include "mux443/lib/probe_stun.h"
#include "test_util.h"

static struct probe_out out;

static const struct {
    const char *file;
    uint8_t level;
} vectors[] = {{"mosquitto-pub-v31-connect.bin", 3},
               {"mosquitto-pub-v311-connect.bin", 4},
               {"mosquitto-pub-v5-connect.bin", 5}};

static void test_vectors(void **state)
{
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        size_t n;
        uint8_t *p = tu_load(vectors[i].file, &n);

        tu_check_prefixes(probe_mqtt, p, n, 0, PROBE_MATCH, &out);
        assert_int_equal(out.cls, CLASS_MQTT);
        assert_int_equal(out.consumed, n);
        assert_int_equal(out.mqtt_level, vectors[i].level);
        assert_string_equal(out.mqtt_client, "sensor-17");
        assert_false(out.mqtt_client_cut);
        /* need: always ahead of what the probe has, and exact at the end */
        for (size_t k = 0; k < n; k++) {
            size_t need = probe_mqtt_need(p, k);
            assert_true(need > k && need <= n);
            for (size_t j = k; j < need; j++)
                assert_int_equal(tu_run(probe_mqtt, p, j, &out), PROBE_AGAIN);
        }
        assert_int_equal(probe_mqtt_need(p, n), 0);
        /* the other probes do not take it */
        assert_int_equal(tu_run(probe_stun, p, n, &out), PROBE_NOMATCH);
        assert_int_equal(tu_run(probe_ice_tcp, p, n, &out), PROBE_NOMATCH);
        free(p);
    }
}

static void test_corruption(void **state)
{
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        size_t n;
        uint8_t *p = tu_load(vectors[i].file, &n);
        uint8_t *q = malloc(n);

        for (size_t k = 0; k < n; k++)
            for (unsigned m = 1; m < 256; m++) {
                memcpy(q, p, n);
                q[k] ^= (uint8_t)m;
                enum probe_result r = tu_run(probe_mqtt, q, n, &out);
                tu_check_sane(r, &out, n);
                if (r == PROBE_NOMATCH)
                    assert_non_null(out.why);
                if (k == 0 || (k >= 4 && k < 8)) /* first byte, protocol name */
                    assert_int_equal(r, PROBE_NOMATCH);
            }
        free(q);
        free(p);
    }
}

static void test_hand_built(void **state)
{
    /* MQTT 3.1.1 with an empty client id (the broker assigns one) */
    static const uint8_t empty[] = {0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60, 0, 0};
    /* remaining length of five bytes */
    static const uint8_t longlen[] = {0x10, 0x80, 0x80, 0x80, 0x80, 0x01};
    /* level 5 under the 3.1 name */
    static const uint8_t badlevel[] = {0x10, 14, 0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 5};
    /* reserved connect flag */
    static const uint8_t reserved[] = {0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 4, 3};

    assert_int_equal(tu_run(probe_mqtt, empty, sizeof(empty), &out), PROBE_MATCH);
    assert_int_equal(out.mqtt_client_len, 0);
    assert_int_equal(tu_run(probe_mqtt, longlen, sizeof(longlen), &out), PROBE_NOMATCH);
    assert_int_equal(tu_run(probe_mqtt, badlevel, sizeof(badlevel), &out), PROBE_NOMATCH);
    assert_int_equal(tu_run(probe_mqtt, reserved, sizeof(reserved), &out), PROBE_NOMATCH);
    /* a client id longer than PROBE_NAME_MAX is cut once PROBE_NAME_MAX bytes are in */
    static uint8_t big[16 + 300];
    memcpy(big, (const uint8_t[]){0x10, 0xb8, 0x02, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60, 1, 0x2c},
           15);
    memset(big + 15, 'c', 300);
    assert_int_equal(tu_run(probe_mqtt, big, 15 + PROBE_NAME_MAX, &out), PROBE_MATCH);
    assert_true(out.mqtt_client_cut);
    assert_int_equal(out.mqtt_client_len, PROBE_NAME_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_corruption),
        cmocka_unit_test(test_hand_built),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
