/* Fuzz x509_cert_info_pem: any bytes as a certificate file; never crash, and on success report a CN that is
 * printable and NUL-terminated within its field. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "x509.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf err = BUF_INIT(4096);
	struct x509_info info;

	if (x509_cert_info_pem(data, size, &info, &err)) {
		size_t n = strnlen(info.subject_cn, sizeof(info.subject_cn));
		if (n == sizeof(info.subject_cn))
			__builtin_trap();
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)info.subject_cn[i] < 0x20 || (unsigned char)info.subject_cn[i] >= 0x7f)
				__builtin_trap();
		(void)x509_seconds_left(&info, 0);
	} else if (err.len == 0) {
		__builtin_trap();	/* a failure always says why */
	}
	buf_free(&err);
	return 0;
}
