/* Fuzz the DMARC record parser (and evaluation with what it parsed): never crash, pct within 0..100, a
 * parsed record always has a policy. */
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "dmarc.h"
#include "psl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct psl *psl;
	struct dmarc_record r;
	struct buf err = BUF_INIT(256);

	if (!psl) {
		static const char list[] = "com\nco.uk\nuk\n*.ck\n!www.ck\n";
		psl = psl_parse(list, sizeof(list) - 1);
	}
	if (dmarc_record_parse((const char *)data, size, &r, &err)) {
		if (r.pct > 100 || r.p == DMARC_POLICY_UNSET || !r.fo)
			__builtin_trap();
		const char *dk[] = { "mail.example.com" };
		struct dmarc_input in = { "example.com", size & 1, "bounce.example.com", dk, size & 2 ? 1 : 0 };
		struct dmarc_verdict v;
		dmarc_evaluate(psl, &in, &r, "example.com", (unsigned)(size % 100), &v);
		dmarc_record_clear(&r);
	}
	/* the PSL parser takes any text too */
	struct psl *p = psl_parse((const char *)data, size);
	(void)psl_org_domain(p, "a.b.example.co.uk");
	psl_free(&p);
	buf_free(&err);
	return 0;
}
