/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Users' strings on a terminal (cli_printable, cli/cli.h): pure, no I/O,
 * so that hec, hec-store and the unit test link it alike.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

/* The length of the valid UTF-8 character at @s (2-4), 0 if it is not one. */
static size_t utf8_len(const unsigned char *s)
{
	size_t n;
	unsigned cp;

	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, cp = s[0] & 0x1fu;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, cp = s[0] & 0x0fu;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, cp = s[0] & 0x07u;
	else
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3fu);
	}
	/* overlong forms, surrogates, past U+10FFFF, and the C1 controls */
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f))
		return 0;
	return n;
}

const char *cli_printable(const char *s, char *buf, size_t len)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	size_t used = 0, n;

	if (!len)
		return buf;
	while (*p) {
		if (*p >= 0x20 && *p < 0x7f) {
			if (used + 1 >= len)
				break;
			buf[used++] = (char)*p++;
		} else if (*p >= 0x80 && (n = utf8_len(p))) {
			if (used + n >= len)
				break;
			memcpy(buf + used, p, n);
			used += n;
			p += n;
		} else {
			if (used + 4 >= len)
				break;
			snprintf(buf + used, 5, "\\x%02x", *p++);
			used += 4;
		}
	}
	buf[used] = 0;
	return buf;
}
