/* String helpers; see str.h. */
#include "str.h"

#include <string.h>

bool str_eq_ci(const char *a, const char *b)
{
	for (; *a && *b; a++, b++)
		if (str_ascii_lower((unsigned char)*a) != str_ascii_lower((unsigned char)*b))
			return false;
	return *a == *b;
}

bool str_eqn_ci(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (str_ascii_lower((unsigned char)a[i]) != str_ascii_lower((unsigned char)b[i]))
			return false;
		if (a[i] == '\0')
			return true;
	}
	return true;
}

bool str_has_prefix_ci(const char *s, const char *prefix)
{
	size_t n = strlen(prefix);
	return strnlen(s, n) == n && str_eqn_ci(s, prefix, n);
}

void str_lower(char *s)
{
	for (; *s; s++)
		*s = (char)str_ascii_lower((unsigned char)*s);
}

static bool is_space(int c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

char *str_trim(char *s)
{
	size_t n;
	while (is_space((unsigned char)*s))
		s++;
	n = strlen(s);
	while (n > 0 && is_space((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

bool str_to_u64n(const char *s, size_t n, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (max - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

bool str_to_u64(const char *s, uint64_t max, uint64_t *out)
{
	return str_to_u64n(s, strlen(s), max, out);
}

bool str_copy(char *dst, size_t dstsize, const char *src)
{
	size_t n = strlen(src);
	if (dstsize == 0)
		return false;
	if (n >= dstsize) {
		memcpy(dst, src, dstsize - 1);
		dst[dstsize - 1] = '\0';
		return false;
	}
	memcpy(dst, src, n + 1);
	return true;
}

size_t str_split(char *s, const char *seps, char **fields, size_t max)
{
	size_t count = 0;
	char *p = s;

	for (;;) {
		p += strspn(p, seps);
		if (*p == '\0')
			break;
		if (count < max)
			fields[count] = p;
		count++;
		p += strcspn(p, seps);
		if (*p == '\0')
			break;
		*p++ = '\0';
	}
	return count;
}
