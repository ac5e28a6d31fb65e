// SPDX-License-Identifier: GPL-2.0
/*
 * cma-trust: add a root certificate to the kernel's .cma keyring, as
 * "keyctl padd asymmetric '' %:.cma < root.der" would (the guest has no
 * keyctl), for the tests of PCIe CMA device authentication.
 *
 * usage: cma-trust HEX
 *   HEX is the certificate (DER) as hex.  Prints the new key's serial
 *   number; exits 1 with a message when the keyring is missing or the
 *   kernel refuses the certificate.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static void die(const char *what, const char *why)
{
	fprintf(stderr, "cma-trust: %s%s%s\n", what, why ? ": " : "", why ? why : "");
	exit(1);
}

/* The serial number of the .cma keyring, from /proc/keys */
static long cma_keyring(void)
{
	char line[512], type[64], desc[256];
	unsigned long id;
	FILE *f = fopen("/proc/keys", "r");

	if (!f)
		die("/proc/keys", strerror(errno));
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%lx %*s %*s %*s %*s %*s %*s %63s %255s", &id, type, desc) == 3 &&
		    !strcmp(type, "keyring") && !strcmp(desc, ".cma:")) {
			fclose(f);
			return id;
		}
	fclose(f);
	die("no .cma keyring in /proc/keys", NULL);
	return 0;
}

int main(int argc, char **argv)
{
	static unsigned char der[65536];
	size_t i, n;
	long key;

	if (argc != 2)
		die("usage: cma-trust HEX", NULL);
	n = strlen(argv[1]) / 2;
	if (strlen(argv[1]) % 2 || !n || n > sizeof(der))
		die("HEX must be a certificate in hex", NULL);
	for (i = 0; i < n; i++)
		if (sscanf(argv[1] + 2 * i, "%2hhx", &der[i]) != 1)
			die("HEX is not hex", NULL);
	key = syscall(SYS_add_key, "asymmetric", "", der, n, cma_keyring());
	if (key < 0)
		die("add_key", strerror(errno));
	printf("%ld\n", key);
	return 0;
}
