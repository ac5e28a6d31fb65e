// SPDX-License-Identifier: GPL-2.0
/*
 * mmio: read or write a register in a PCI BAR through sysfs, for tests that
 * drive a device directly (the guest kernel has no /dev/mem).
 *
 * usage: mmio DEVICE BAR OFFSET [VALUE]
 *   DEVICE is a PCI address as in /sys/bus/pci/devices (0000:0d:00.0),
 *   BAR its BAR number, OFFSET the byte offset in the BAR.  Accesses are
 *   64 bits wide (8-byte aligned OFFSET), or 32 bits when OFFSET is only
 *   4-byte aligned.  Without VALUE, prints the register as 0x%x.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	volatile uint8_t *map;
	unsigned long long off, val = 0;
	char path[256];
	struct stat st;
	size_t page, base, len;
	int fd;

	if (argc != 4 && argc != 5) {
		fprintf(stderr, "usage: mmio DEVICE BAR OFFSET [VALUE]\n");
		return 2;
	}
	off = strtoull(argv[3], NULL, 0);
	if (argc == 5)
		val = strtoull(argv[4], NULL, 0);
	if (off & 3) {
		fprintf(stderr, "mmio: offset 0x%llx is not 4-byte aligned\n", off);
		return 2;
	}
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/resource%s",
		 argv[1], argv[2]);
	fd = open(path, argc == 5 ? O_RDWR | O_SYNC : O_RDONLY | O_SYNC);
	if (fd < 0 || fstat(fd, &st)) {
		fprintf(stderr, "mmio: %s: %s\n", path, strerror(errno));
		return 1;
	}
	if (off + ((off & 7) ? 4 : 8) > (unsigned long long)st.st_size) {
		fprintf(stderr, "mmio: offset 0x%llx beyond %s (0x%llx bytes)\n",
			off, path, (unsigned long long)st.st_size);
		return 1;
	}
	page = sysconf(_SC_PAGESIZE);
	base = off & ~(page - 1);
	len = page;
	map = mmap(NULL, len, argc == 5 ? PROT_READ | PROT_WRITE : PROT_READ,
		   MAP_SHARED, fd, base);
	if (map == MAP_FAILED) {
		fprintf(stderr, "mmio: mmap %s at 0x%zx: %s\n", path, base,
			strerror(errno));
		return 1;
	}
	map += off - base;
	if (argc == 5) {
		if (off & 7)
			*(volatile uint32_t *)map = val;
		else
			*(volatile uint64_t *)map = val;
	} else {
		if (off & 7)
			printf("0x%" PRIx32 "\n", *(volatile uint32_t *)map);
		else
			printf("0x%" PRIx64 "\n", *(volatile uint64_t *)map);
	}
	return 0;
}
