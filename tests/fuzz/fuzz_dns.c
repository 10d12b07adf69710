/* Fuzz DNS reply handling: arbitrary bytes as the reply to an MX, A, AAAA, TXT or PTR query (first byte picks the
 * type), through c-ares's parsers and our result building (MX sorting, TXT joining, PTR names). The result must
 * be consistent whatever the bytes: an OK status has records, any other status has an error text and none.
 * The same bytes, as a name, go through dns_name_ascii (recipient domains from the network are converted to
 * A-labels): what it accepts must come out pure ASCII. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = { "example.test", "example.test", "example.test", "example.test",
		                             "192.0.2.1" };
	struct dns_result *r;
	enum dns_type type;

	if (size == 0)
		return 0;
	char name[300];
	size_t nlen = size - 1 < sizeof(name) - 1 ? size - 1 : sizeof(name) - 1;
	memcpy(name, data + 1, nlen);
	name[nlen] = '\0';
	struct buf alabels = BUF_INIT(4096);
	if (dns_name_ascii(name, &alabels, NULL))
		for (size_t i = 0; i < alabels.len; i++)
			if ((unsigned char)alabels.data[i] >= 0x80)
				__builtin_trap();
	buf_free(&alabels);
	type = (enum dns_type)(data[0] % 5);
	r = dns_result_from_reply(type, names[type], data + 1, size - 1);
	if (!r || r->type != type)
		__builtin_trap();
	if (r->status == DNS_OK) {
		if (r->n == 0 || r->error)
			__builtin_trap();
		for (size_t i = 1; type == DNS_MX && i < r->n; i++)
			if (r->mx[i - 1].pref > r->mx[i].pref)
				__builtin_trap();
		for (size_t i = 0; type == DNS_TXT && i < r->n; i++) {
			size_t total = 0;
			for (size_t j = 0; j < r->txt[i].nstrings; j++)
				total += r->txt[i].lens[j];
			if (total != r->txt[i].len || r->txt[i].text[r->txt[i].len] != '\0')
				__builtin_trap();
		}
		for (size_t i = 0; type == DNS_PTR && i < r->n; i++)
			(void)strlen(r->ptr[i]);
	} else if (r->n != 0 || !r->error) {
		__builtin_trap();
	}
	dns_result_free(&r);
	return 0;
}
