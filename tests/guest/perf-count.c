// SPDX-License-Identifier: GPL-2.0
/*
 * perf-count: count one event of a perf PMU (a CXL CPMU) for a while, as
 * "perf stat -e PMU/EVENT/ -a sleep" would, without perf.
 *
 * usage: perf-count PMU EVENT MILLISECONDS
 *   PMU is a directory name under /sys/bus/event_source/devices and EVENT
 *   a file in its events/ directory ("config=0x...").  The event is opened
 *   on the CPU the PMU's cpumask names.  Prints
 *     count=N ns=ELAPSED
 *   where ELAPSED is CLOCK_MONOTONIC time between enable and disable.
 */
#include <errno.h>
#include <inttypes.h>
#include <linux/perf_event.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SYSFS "/sys/bus/event_source/devices"

static int read_file(const char *pmu, const char *name, char *buf, size_t len)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), SYSFS "/%s/%s", pmu, name);
	f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "perf-count: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!fgets(buf, len, f)) {
		fprintf(stderr, "perf-count: %s: empty\n", path);
		fclose(f);
		return -1;
	}
	fclose(f);
	return 0;
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	struct perf_event_attr attr;
	char buf[256], name[300];
	uint64_t count;
	int64_t t0, t1;
	int fd, cpu;
	long ms;

	if (argc != 4) {
		fprintf(stderr, "usage: perf-count PMU EVENT MILLISECONDS\n");
		return 2;
	}
	ms = strtol(argv[3], NULL, 0);

	memset(&attr, 0, sizeof(attr));
	attr.size = sizeof(attr);
	attr.disabled = 1;
	if (read_file(argv[1], "type", buf, sizeof(buf)))
		return 1;
	attr.type = strtoul(buf, NULL, 0);
	snprintf(name, sizeof(name), "events/%s", argv[2]);
	if (read_file(argv[1], name, buf, sizeof(buf)))
		return 1;
	if (strncmp(buf, "config=", 7)) {
		fprintf(stderr, "perf-count: %s: unexpected \"%s\"\n", name, buf);
		return 1;
	}
	attr.config = strtoull(buf + 7, NULL, 0);
	if (read_file(argv[1], "cpumask", buf, sizeof(buf)))
		return 1;
	cpu = atoi(buf);

	fd = syscall(SYS_perf_event_open, &attr, -1, cpu, -1, 0);
	if (fd < 0) {
		fprintf(stderr, "perf-count: perf_event_open(%s/%s/, cpu %d): %s\n",
			argv[1], argv[2], cpu, strerror(errno));
		return 1;
	}
	t0 = now_ns();
	ioctl(fd, PERF_EVENT_IOC_ENABLE, 0);
	usleep(ms * 1000);
	ioctl(fd, PERF_EVENT_IOC_DISABLE, 0);
	t1 = now_ns();
	if (read(fd, &count, sizeof(count)) != sizeof(count)) {
		fprintf(stderr, "perf-count: read: %s\n", strerror(errno));
		return 1;
	}
	close(fd);
	printf("count=%" PRIu64 " ns=%" PRId64 "\n", count, t1 - t0);
	return 0;
}
