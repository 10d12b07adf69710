/* postern dkim keygen: make a DKIM signing key for DOMAIN and SELECTOR under $data_directory/dkim/, readable
 * only by its owner (root on a system instance: smtpd, the one process that signs, loads every key before it
 * drops privileges, so no mail_owner daemon can read them), and print the TXT record to publish at
 * SELECTOR._domainkey.DOMAIN. An existing key is never overwritten. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "buf.h"
#include "commands.h"
#include "config.h"
#include "daemon.h"
#include "dkim.h"
#include "fsutil.h"

static const struct cli_command dkim_cmd = { "dkim", cmd_dkim, "keygen DOMAIN SELECTOR [--ed25519] [-c DIR]" };

/* Domain and selector become a file name: letters, digits, '-', '_' and inner dots only. */
static bool name_ok(const char *s)
{
	if (!*s || *s == '.' || s[strlen(s) - 1] == '.' || strlen(s) > 253 || strstr(s, ".."))
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '-' || *p == '_' || *p == '.'))
			return false;
	return true;
}

/* Print the record as quoted strings of at most 255 bytes (the TXT limit per string). */
static void print_record(const char *selector, const char *domain, const char *rec)
{
	size_t len = strlen(rec);
	printf("%s._domainkey.%s. IN TXT (", selector, domain);
	for (size_t i = 0; i < len; i += 250)
		printf(" \"%.*s\"", (int)(len - i < 250 ? len - i : 250), rec + i);
	printf(" )\n");
}

static int keygen(int argc, char **argv)
{
	const char *domain = NULL, *selector = NULL, *dir = NULL;
	enum dkim_alg alg = DKIM_RSA_SHA256;
	int rc = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--ed25519") == 0)
			alg = DKIM_ED25519_SHA256;
		else if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
			dir = argv[++i];
		else if (argv[i][0] == '-')
			return cli_usage(&dkim_cmd);
		else if (!domain)
			domain = argv[i];
		else if (!selector)
			selector = argv[i];
		else
			return cli_usage(&dkim_cmd);
	}
	if (!domain || !selector)
		return cli_usage(&dkim_cmd);
	if (!name_ok(domain) || !name_ok(selector)) {
		fprintf(stderr, "postern dkim: bad domain or selector (letters, digits, '-', '_' and dots only)\n");
		return EX_USAGE;
	}
	struct buf err = BUF_INIT(4096), path = BUF_INIT(4096), pem = BUF_INIT(16384), rec = BUF_INIT(4096);
	struct config *cfg = daemon_config_load(cli_instance_dir(dir), &err, NULL);
	struct dkim_key *k = NULL;
	if (!cfg) {
		fprintf(stderr, "postern dkim: %s\n", buf_cstr(&err));
		rc = EX_CONFIG;
		goto out;
	}
	buf_printf(&path, "%s/dkim", config_str(cfg, "data_directory"));
	if (!fsutil_mkdir_p(path.data, 0700)) {
		fprintf(stderr, "postern dkim: %s: %s\n", path.data, strerror(errno));
		rc = EX_CANTCREAT;
		goto out;
	}
	buf_printf(&path, "/%s.%s.key", domain, selector);
	if (access(path.data, F_OK) == 0) {
		fprintf(stderr, "postern dkim: %s exists; remove it first to make a new key\n", path.data);
		rc = EX_CANTCREAT;
		goto out;
	}
	k = dkim_key_generate(alg);
	if (!dkim_key_pem(k, &pem) || !dkim_key_dns_record(k, &rec)) {
		fprintf(stderr, "postern dkim: cannot encode the key\n");
		rc = EX_SOFTWARE;
		goto out;
	}
	if (!fsutil_write_atomic(path.data, pem.data, pem.len, 0600, &err)) {
		fprintf(stderr, "postern dkim: %s\n", buf_cstr(&err));
		rc = EX_CANTCREAT;
		goto out;
	}
	fprintf(stderr, "postern dkim: wrote %s (%s)\n", path.data,
	        alg == DKIM_RSA_SHA256 ? "rsa-sha256, 2048 bits" : "ed25519-sha256");
	fprintf(stderr, "publish this record, add to the dkim_keys table:  %s  %s:%s  and run postern reload\n",
	        domain, selector, path.data);
	print_record(selector, domain, rec.data);
out:
	/* the private key bytes do not linger in freed memory */
	if (pem.data)
		memset(pem.data, 0, pem.cap);
	dkim_key_free(&k);
	config_free(&cfg);
	buf_free(&err);
	buf_free(&path);
	buf_free(&pem);
	buf_free(&rec);
	return rc;
}

int cmd_dkim(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "keygen") == 0)
		return keygen(argc - 1, argv + 1);
	return cli_usage(&dkim_cmd);
}
