/* qmgr retry schedule: doubling from the minimum, the cap, overflow safety, lifetime and the test time scale. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../qmgr/sched.h"

static const struct qsched_params P = { 300000, 3600000, 5ull * 86400000, 1, 4ull * 3600000 };

static void test_backoff(void **state)
{
	(void)state;
	assert_true(qsched_backoff(&P, 0) == 300000);
	assert_true(qsched_backoff(&P, 1) == 300000);
	assert_true(qsched_backoff(&P, 2) == 600000);
	assert_true(qsched_backoff(&P, 3) == 1200000);
	assert_true(qsched_backoff(&P, 4) == 2400000);
	assert_true(qsched_backoff(&P, 5) == 3600000);
	assert_true(qsched_backoff(&P, 6) == 3600000);
	assert_true(qsched_backoff(&P, UINT32_MAX) == 3600000);
	/* the schedule never decreases */
	for (uint32_t a = 1; a < 100; a++)
		assert_true(qsched_backoff(&P, a + 1) >= qsched_backoff(&P, a));
}

static void test_huge_values(void **state)
{
	(void)state;
	struct qsched_params p = { UINT64_MAX / 3, UINT64_MAX, UINT64_MAX, 1, UINT64_MAX };
	assert_true(qsched_backoff(&p, 10) == UINT64_MAX);
	assert_false(qsched_expired(&p, 0, UINT64_MAX - 1));
}

static void test_scale(void **state)
{
	(void)state;
	struct qsched_params p = P;
	p.time_scale = 600;	/* five minutes become half a second */
	assert_true(qsched_backoff(&p, 1) == 500);
	assert_true(qsched_backoff(&p, 9) == 6000);
	p.time_scale = UINT64_MAX;	/* never zero */
	assert_true(qsched_backoff(&p, 1) == 1);
	p.time_scale = 0;	/* treated as 1 */
	assert_true(qsched_backoff(&p, 1) == 300000);
}

static void test_expired(void **state)
{
	(void)state;
	uint64_t t0 = 1800000000000ull;
	assert_false(qsched_expired(&P, t0, t0));
	assert_false(qsched_expired(&P, t0, t0 + 5ull * 86400000 - 1));
	assert_true(qsched_expired(&P, t0, t0 + 5ull * 86400000));
	/* a clock that went backwards never expires anything */
	assert_false(qsched_expired(&P, t0, t0 - 1000));
	struct qsched_params p = P;
	p.time_scale = 86400;	/* a day per second: five days = five seconds */
	assert_true(qsched_expired(&p, t0, t0 + 5000));
	assert_false(qsched_expired(&p, t0, t0 + 4999));
	assert_true(qsched_now() > t0 - 1000000000000ull);
}

static void test_warn_due(void **state)
{
	(void)state;
	uint64_t t0 = 1800000000000ull;
	assert_false(qsched_warn_due(&P, t0, t0 + 4ull * 3600000 - 1));
	assert_true(qsched_warn_due(&P, t0, t0 + 4ull * 3600000));
	assert_false(qsched_warn_due(&P, t0, t0 - 1));
	struct qsched_params p = P;
	p.warn_ms = 0;		/* the default: never */
	assert_false(qsched_warn_due(&p, 0, UINT64_MAX));
	p = P;
	p.time_scale = 3600;	/* four hours = four seconds */
	assert_true(qsched_warn_due(&p, t0, t0 + 4000));
	assert_false(qsched_warn_due(&p, t0, t0 + 3999));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_huge_values),
		cmocka_unit_test(test_scale),
		cmocka_unit_test(test_expired),
		cmocka_unit_test(test_warn_due),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
