// SPDX-License-Identifier: GPL-2.0
/*
 * doe-xfer: one DOE exchange through config space, as a driver would, for
 * tests that drive a device's DOE mailbox from the guest (the harness's
 * SPDM requester talks to a device's CMA mailbox through it).
 *
 * usage: doe-xfer DEVICE HEX
 *   DEVICE is a PCI address as in /sys/bus/pci/devices (0000:0d:00.0), HEX
 *   the request data object, DOE header included, as bytes in hex.  The
 *   mailbox is the first DOE capability whose Discovery lists the
 *   request's vendor ID and data object type.  Prints the response object
 *   as hex bytes on one line.  Exits 2 when no Data Object Ready comes
 *   within 2 s (the device discarded the request), 3 on DOE Error, 1 on
 *   any other failure, with a message on stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define EXT_CAP_ID_DOE	0x2e
#define DOE_CTRL	0x08
#define DOE_STATUS	0x0c
#define DOE_WRITE	0x10
#define DOE_READ	0x14
#define DOE_GO		0x80000000u
#define DOE_ABORT	0x00000001u
#define DOE_BUSY	0x00000001u
#define DOE_ERROR	0x00000004u
#define DOE_READY	0x80000000u
#define DOE_MAX_DW	(1u << 18)

static int cfg;

static void die(int code, const char *what)
{
	fprintf(stderr, "doe-xfer: %s\n", what);
	exit(code);
}

static uint32_t rd(unsigned int off)
{
	uint32_t v;

	if (pread(cfg, &v, 4, off) != 4)
		die(1, "config read failed");
	return v;
}

static void wr(unsigned int off, uint32_t v)
{
	if (pwrite(cfg, &v, 4, off) != 4)
		die(1, "config write failed");
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Send @n dwords to the mailbox at @doe; read the response into @rsp */
static uint32_t xfer(unsigned int doe, const uint32_t *req, uint32_t n, uint32_t *rsp)
{
	double end = now() + 2;
	uint32_t i, len, st;

	if (rd(doe + DOE_STATUS) & (DOE_BUSY | DOE_ERROR))
		wr(doe + DOE_CTRL, DOE_ABORT);
	for (i = 0; i < n; i++)
		wr(doe + DOE_WRITE, req[i]);
	wr(doe + DOE_CTRL, rd(doe + DOE_CTRL) | DOE_GO);
	while (!((st = rd(doe + DOE_STATUS)) & DOE_READY)) {
		if (st & DOE_ERROR)
			die(3, "DOE Error");
		if (now() > end)
			die(2, "no Data Object Ready within 2 s");
		usleep(1000);
	}
	len = 2;
	for (i = 0; i < len && i < DOE_MAX_DW; i++) {
		rsp[i] = rd(doe + DOE_READ);
		wr(doe + DOE_READ, 0);
		if (i == 1)
			len = (rsp[1] & (DOE_MAX_DW - 1)) ?: DOE_MAX_DW;
	}
	return len;
}

/* The first DOE mailbox whose Discovery lists @proto (vendor | type << 16) */
static unsigned int find_mailbox(uint32_t proto)
{
	static uint32_t rsp[DOE_MAX_DW];
	unsigned int pos = 0x100, hops = 0;

	while (pos && hops++ < 512) {
		uint32_t hdr = rd(pos), idx = 0;

		if (hdr == 0xffffffff || !hdr)
			break;
		if ((hdr & 0xffff) == EXT_CAP_ID_DOE) {
			do {
				uint32_t req[3] = { 0x00000001, 3, idx };

				if (xfer(pos, req, 3, rsp) < 3)
					break;
				if ((rsp[2] & 0xffffff) == proto)
					return pos;
				idx = (rsp[2] >> 24) & 0xff;
			} while (idx);
		}
		pos = (hdr >> 20) & 0xffc;
	}
	die(1, "no DOE mailbox lists the request's protocol");
	return 0;
}

int main(int argc, char **argv)
{
	static uint32_t req[DOE_MAX_DW], rsp[DOE_MAX_DW];
	uint8_t *bytes = (uint8_t *)req;
	char path[256];
	size_t i, n;
	uint32_t len;

	if (argc != 3)
		die(1, "usage: doe-xfer DEVICE HEX");
	n = strlen(argv[2]) / 2;
	if (strlen(argv[2]) % 2 || n < 8 || n % 4 || n > sizeof(req))
		die(1, "HEX must be a whole DOE data object (dwords, header included)");
	for (i = 0; i < n; i++)
		if (sscanf(argv[2] + 2 * i, "%2hhx", &bytes[i]) != 1)
			die(1, "HEX is not hex");
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/config", argv[1]);
	cfg = open(path, O_RDWR);
	if (cfg < 0)
		die(1, strerror(errno));
	/* Vendor ID and data object type of the request, as Discovery lists them */
	len = xfer(find_mailbox(req[0] & 0xffffff), req, n / 4, rsp);
	for (i = 0; i < len * 4; i++)
		printf("%02x", ((uint8_t *)rsp)[i]);
	printf("\n");
	return 0;
}
