// SPDX-License-Identifier: GPL-2.0
/*
 * aer-inject: inject an AER error through the kernel's software injector
 * (CONFIG_PCIEAER_INJECT, /dev/aer_inject), as the upstream aer-inject
 * tool does, without its config-file parser.
 *
 * usage: aer-inject DOMAIN:BUS:DEV.FN cor|nonfatal|fatal [STATUS]
 *   STATUS defaults to Receiver Error (cor) or Data Link Protocol Error
 *   (uncorrectable).  Fatal/non-fatal is decided by the device's severity
 *   register, as in hardware; "fatal" and "nonfatal" pick a default status
 *   whose default severity matches.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Same layout as struct aer_error_inj in drivers/pci/pcie/aer_inject.c */
struct aer_error_inj {
	uint8_t bus;
	uint8_t dev;
	uint8_t fn;
	uint32_t uncor_status;
	uint32_t cor_status;
	uint32_t header_log0;
	uint32_t header_log1;
	uint32_t header_log2;
	uint32_t header_log3;
	uint32_t domain;
};

int main(int argc, char **argv)
{
	struct aer_error_inj e;
	unsigned int dom, bus, dev, fn;
	uint32_t status;
	int fd;

	if (argc < 3 || sscanf(argv[1], "%x:%x:%x.%x", &dom, &bus, &dev, &fn) != 4) {
		fprintf(stderr, "usage: %s DOMAIN:BUS:DEV.FN cor|nonfatal|fatal [STATUS]\n", argv[0]);
		return 2;
	}
	memset(&e, 0, sizeof(e));
	e.domain = dom;
	e.bus = bus;
	e.dev = dev;
	e.fn = fn;
	if (!strcmp(argv[2], "cor")) {
		status = argc > 3 ? strtoul(argv[3], NULL, 0) : 0x1;	/* RcvErr */
		e.cor_status = status;
	} else if (!strcmp(argv[2], "nonfatal")) {
		/* Completion Timeout (bit 14) is non-fatal by default */
		status = argc > 3 ? strtoul(argv[3], NULL, 0) : 0x4000;
		e.uncor_status = status;
	} else if (!strcmp(argv[2], "fatal")) {
		/* Data Link Protocol Error (bit 4) is fatal by default */
		status = argc > 3 ? strtoul(argv[3], NULL, 0) : 0x10;
		e.uncor_status = status;
	} else {
		fprintf(stderr, "%s: unknown severity '%s'\n", argv[0], argv[2]);
		return 2;
	}
	fd = open("/dev/aer_inject", O_WRONLY);
	if (fd < 0) {
		fprintf(stderr, "open /dev/aer_inject: %s\n", strerror(errno));
		return 1;
	}
	if (write(fd, &e, sizeof(e)) != sizeof(e)) {
		fprintf(stderr, "inject into %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	close(fd);
	return 0;
}
