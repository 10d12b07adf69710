/* throttle: growing delays, cap, reset on success, decay, bounded memory with LRU eviction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "throttle.h"

static int64_t fake_now;

static int64_t fake_clock(void *arg)
{
	(void)arg;
	return fake_now;
}

static struct throttle *make(unsigned cap, unsigned decay, size_t n)
{
	struct throttle_params p = { .max_delay = cap, .decay = decay, .max_entries = n, .clock = fake_clock };
	fake_now = 1000;
	return throttle_new(&p);
}

static void test_delays_grow_and_cap(void **state)
{
	(void)state;
	struct throttle *t = make(30, 600, 16);
	unsigned want[] = { 0, 1, 2, 4, 8, 16, 30, 30, 30 };
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		assert_int_equal(throttle_delay(t, "10.0.0.1"), want[i]);
		throttle_failure(t, "10.0.0.1");
	}
	/* many more failures never overflow the shift */
	for (int i = 0; i < 100; i++)
		throttle_failure(t, "10.0.0.1");
	assert_int_equal(throttle_delay(t, "10.0.0.1"), 30);
	/* other keys are independent */
	assert_int_equal(throttle_delay(t, "10.0.0.2"), 0);
	assert_int_equal(throttle_entries(t), 1);
	throttle_free(&t);
	assert_null(t);

	struct throttle_params p = { .max_delay = 5 };
	assert_int_equal(throttle_delay_for(&p, 0), 0);
	assert_int_equal(throttle_delay_for(&p, 1), 1);
	assert_int_equal(throttle_delay_for(&p, 3), 4);
	assert_int_equal(throttle_delay_for(&p, 4), 5);
	assert_int_equal(throttle_delay_for(&p, 33), 5);
	assert_int_equal(throttle_delay_for(&p, 4000000000u), 5);
}

static void test_reset_on_success(void **state)
{
	(void)state;
	struct throttle *t = make(60, 600, 16);
	for (int i = 0; i < 5; i++)
		throttle_failure(t, "user@x.org");
	assert_int_equal(throttle_delay(t, "user@x.org"), 16);
	throttle_success(t, "user@x.org");
	assert_int_equal(throttle_delay(t, "user@x.org"), 0);
	assert_int_equal(throttle_entries(t), 0);
	throttle_success(t, "never@x.org");	/* unknown key: no-op */
	throttle_failure(t, "user@x.org");
	assert_int_equal(throttle_delay(t, "user@x.org"), 1);
	throttle_free(&t);
}

static void test_decay(void **state)
{
	(void)state;
	struct throttle *t = make(60, 100, 16);
	for (int i = 0; i < 4; i++)
		throttle_failure(t, "k");
	assert_int_equal(throttle_failures(t, "k"), 4);
	fake_now += 99;
	assert_int_equal(throttle_failures(t, "k"), 4);	/* not yet a quiet period */
	fake_now += 1;
	assert_int_equal(throttle_failures(t, "k"), 2);
	assert_int_equal(throttle_delay(t, "k"), 2);
	fake_now += 150;	/* 1.5 periods: one more halving, the half period carries over */
	assert_int_equal(throttle_failures(t, "k"), 1);
	fake_now += 50;
	assert_int_equal(throttle_failures(t, "k"), 0);
	assert_int_equal(throttle_entries(t), 0);	/* fully decayed entries are dropped */

	/* a failure during decay restarts the quiet period */
	for (int i = 0; i < 8; i++)
		throttle_failure(t, "k");
	fake_now += 100;
	throttle_failure(t, "k");	/* 8 -> 4, then 5 */
	assert_int_equal(throttle_failures(t, "k"), 5);
	fake_now += 99;
	assert_int_equal(throttle_failures(t, "k"), 5);
	/* a very long quiet time clears everything without overflow */
	fake_now += (int64_t)1 << 40;
	assert_int_equal(throttle_failures(t, "k"), 0);
	/* a clock going backwards does not decay or crash */
	throttle_failure(t, "k");
	fake_now -= 1000;
	assert_int_equal(throttle_failures(t, "k"), 1);
	throttle_free(&t);
}

static void test_eviction_bound(void **state)
{
	(void)state;
	struct throttle *t = make(60, 600, 8);
	char key[32];
	for (int i = 0; i < 1000; i++) {
		snprintf(key, sizeof key, "192.0.2.%d", i);
		throttle_failure(t, key);
		assert_true(throttle_entries(t) <= 8);
	}
	assert_int_equal(throttle_entries(t), 8);
	/* the most recent 8 survive, older ones were evicted */
	assert_int_equal(throttle_failures(t, "192.0.2.999"), 1);
	assert_int_equal(throttle_failures(t, "192.0.2.992"), 1);
	assert_int_equal(throttle_failures(t, "192.0.2.991"), 0);
	/* LRU, not FIFO: a key that keeps failing stays */
	struct throttle *u = make(60, 600, 4);
	for (int i = 0; i < 100; i++) {
		throttle_failure(u, "attacker");
		snprintf(key, sizeof key, "other%d", i);
		throttle_failure(u, key);
	}
	assert_int_equal(throttle_failures(u, "attacker"), 100);
	assert_int_equal(throttle_entries(u), 4);
	/* success and eviction interleaved keep the structure consistent */
	for (int i = 0; i < 100; i++) {
		snprintf(key, sizeof key, "other%d", i);
		throttle_success(u, key);
		throttle_failure(u, key);
		throttle_failure(u, "x");
	}
	assert_true(throttle_entries(u) <= 4);
	throttle_free(&u);
	/* one entry only */
	struct throttle *one = make(60, 600, 1);
	throttle_failure(one, "a");
	throttle_failure(one, "b");
	assert_int_equal(throttle_failures(one, "a"), 0);
	assert_int_equal(throttle_failures(one, "b"), 1);
	throttle_free(&one);
	throttle_free(&t);
}

static void test_long_keys(void **state)
{
	(void)state;
	struct throttle *t = make(60, 600, 8);
	char a[THROTTLE_KEY_MAX + 50], b[THROTTLE_KEY_MAX + 50];
	memset(a, 'a', sizeof a);
	a[sizeof a - 1] = '\0';
	memcpy(b, a, sizeof b);
	b[sizeof b - 2] = 'b';	/* differs only past the cut: the same key */
	throttle_failure(t, a);
	assert_int_equal(throttle_failures(t, b), 1);
	assert_int_equal(throttle_failures(t, ""), 0);
	throttle_failure(t, "");
	assert_int_equal(throttle_failures(t, ""), 1);
	throttle_free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_delays_grow_and_cap),
		cmocka_unit_test(test_reset_on_success),
		cmocka_unit_test(test_decay),
		cmocka_unit_test(test_eviction_bound),
		cmocka_unit_test(test_long_keys),
	};
	return cmocka_run_group_tests_name("throttle", tests, NULL, NULL);
}
