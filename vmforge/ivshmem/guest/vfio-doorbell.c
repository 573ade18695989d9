/*
 * The doorbell half of vmforge-ivshmem-peer inside a Linux guest: ivshmem-doorbell interrupts
 * through VFIO (part of the same static binary; see vmforge-ivshmem-peer.c).
 *
 *   vmforge-ivshmem-peer --doorbell ADDR HOST_PEER ROUNDS TIMEOUT_SECONDS
 *
 * Binds the ivshmem-doorbell function ADDR (e.g. 0000:00:05.0) to vfio-pci (driver_override),
 * opens its IOMMU group through the type-1 IOMMU, enables bus mastering, and routes MSI-X
 * vector 0 to an eventfd (VFIO_DEVICE_SET_IRQS).  Then, ROUNDS times: blocks in poll() on that
 * eventfd until the host's doorbell interrupt arrives (or TIMEOUT_SECONDS pass: exit 3), and
 * answers by writing (HOST_PEER << 16) | 0 to the Doorbell register (BAR0 offset 12), which
 * QEMU turns into a write to the host peer's eventfd.  The peer never polls shared memory here:
 * every wake-up is an interrupt.
 *
 * The Debian kernel has no CONFIG_VFIO_NOIOMMU, so the guest needs an IOMMU (QEMU's
 * intel-iommu, guest kernel intel_iommu=on); without interrupt remapping, vfio_iommu_type1
 * refuses the group unless allow_unsafe_interrupts is set, which this mode does (a test guest).
 * Exit: 0 all rounds answered, 1 setup error (message on stderr), 3 no interrupt in time.
 */
#include <linux/vfio.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>

#define IVSHMEM_REG_IVPOSITION 8
#define IVSHMEM_REG_DOORBELL 12

static int write_text(const char *path, const char *text) {
    int fd = open(path, O_WRONLY);
    if (fd < 0) return -1;
    ssize_t n = write(fd, text, strlen(text));
    int saved = errno;
    close(fd);
    errno = saved;
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

static int fail(const char *what, const char *detail) {
    fprintf(stderr, "vmforge-ivshmem-peer: %s: %s\n", what, detail);
    return 1;
}

static int bind_vfio(const char *addr) {
    char path[256], link[256];
    if (write_text("/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts", "Y") != 0)
        return fail("vfio_iommu_type1 is not loaded", strerror(errno));
    snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver", addr);
    ssize_t n = readlink(path, link, sizeof(link) - 1);
    if (n > 0) {
        link[n] = 0;
        if (strstr(link, "/vfio-pci")) return 0;
        snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver/unbind", addr);
        if (write_text(path, addr) != 0) return fail("cannot unbind the current driver", strerror(errno));
    }
    snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver_override", addr);
    if (write_text(path, "vfio-pci") != 0) return fail(path, strerror(errno));
    if (write_text("/sys/bus/pci/drivers_probe", addr) != 0)
        return fail("vfio-pci did not take the device (no IOMMU group? boot with intel_iommu=on)", strerror(errno));
    return 0;
}

static int open_device(const char *addr, int *device) {
    char path[320], link[256];
    snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", addr);
    ssize_t n = readlink(path, link, sizeof(link) - 1);
    if (n <= 0) return fail("the device has no IOMMU group (the guest needs an IOMMU: intel_iommu=on)", path);
    link[n] = 0;
    const char *group_no = strrchr(link, '/') ? strrchr(link, '/') + 1 : link;
    int container = open("/dev/vfio/vfio", O_RDWR);
    if (container < 0) return fail("/dev/vfio/vfio", strerror(errno));
    if (ioctl(container, VFIO_GET_API_VERSION) != VFIO_API_VERSION) return fail("vfio", "unknown API version");
    if (!ioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1_IOMMU)) return fail("vfio", "no type-1 IOMMU");
    snprintf(path, sizeof(path), "/dev/vfio/%s", group_no);
    int group = open(path, O_RDWR);
    if (group < 0) return fail(path, strerror(errno));
    struct vfio_group_status status = {.argsz = sizeof(status)};
    if (ioctl(group, VFIO_GROUP_GET_STATUS, &status) != 0 || !(status.flags & VFIO_GROUP_FLAGS_VIABLE))
        return fail(path, "the IOMMU group is not viable (another device of the group has a driver)");
    if (ioctl(group, VFIO_GROUP_SET_CONTAINER, &container) != 0) return fail("VFIO_GROUP_SET_CONTAINER", strerror(errno));
    if (ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU) != 0) return fail("VFIO_SET_IOMMU", strerror(errno));
    *device = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, addr);
    if (*device < 0) return fail("VFIO_GROUP_GET_DEVICE_FD", strerror(errno));
    fprintf(stderr, "vmforge-ivshmem-peer: %s bound to vfio-pci (IOMMU group %s)\n", addr, group_no);
    return 0;
}

static int region(int device, unsigned index, struct vfio_region_info *info) {
    memset(info, 0, sizeof(*info));
    info->argsz = sizeof(*info);
    info->index = index;
    return ioctl(device, VFIO_DEVICE_GET_REGION_INFO, info);
}

static int enable_msix(int device, int *efd) {
    struct vfio_irq_info irq = {.argsz = sizeof(irq), .index = VFIO_PCI_MSIX_IRQ_INDEX};
    if (ioctl(device, VFIO_DEVICE_GET_IRQ_INFO, &irq) != 0 || irq.count < 1)
        return fail("the device has no MSI-X vectors", strerror(errno));
    /* bus mastering: QEMU delivers a device's MSI-X message only while it is a bus master */
    struct vfio_region_info config;
    if (region(device, VFIO_PCI_CONFIG_REGION_INDEX, &config) != 0) return fail("PCI config region", strerror(errno));
    uint16_t command;
    if (pread(device, &command, 2, (off_t)config.offset + 4) != 2) return fail("reading PCI command", strerror(errno));
    command |= 0x4;
    if (pwrite(device, &command, 2, (off_t)config.offset + 4) != 2) return fail("writing PCI command", strerror(errno));
    *efd = eventfd(0, EFD_CLOEXEC);
    if (*efd < 0) return fail("eventfd", strerror(errno));
    char buf[sizeof(struct vfio_irq_set) + sizeof(int)];
    struct vfio_irq_set *set = (struct vfio_irq_set *)buf;
    set->argsz = sizeof(buf);
    set->flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
    set->index = VFIO_PCI_MSIX_IRQ_INDEX;
    set->start = 0;
    set->count = 1;
    memcpy(set->data, efd, sizeof(int));
    if (ioctl(device, VFIO_DEVICE_SET_IRQS, set) != 0) return fail("VFIO_DEVICE_SET_IRQS (MSI-X)", strerror(errno));
    fprintf(stderr, "vmforge-ivshmem-peer: MSI-X vector 0 of %u routed to an eventfd\n", irq.count);
    return 0;
}

/* --vfio: the device on vfio-pci, MSI-X vector 0 on an eventfd, BAR2 (the shared memory) mapped */
static int vfio_map(const char *addr, uint8_t **mem, uint64_t *size, int *device, int *efd, uint64_t *bar0_offset) {
    if (bind_vfio(addr) || open_device(addr, device) || enable_msix(*device, efd)) return 1;
    struct vfio_region_info bar0, bar2;
    if (region(*device, VFIO_PCI_BAR0_REGION_INDEX, &bar0) != 0 || bar0.size < 16)
        return fail("BAR0 (ivshmem registers)", "missing");
    if (region(*device, VFIO_PCI_BAR2_REGION_INDEX, &bar2) != 0 || !(bar2.flags & VFIO_REGION_INFO_FLAG_MMAP))
        return fail("BAR2 (shared memory)", "missing or not mappable");
    *mem = mmap(NULL, bar2.size, PROT_READ | PROT_WRITE, MAP_SHARED, *device, (off_t)bar2.offset);
    if (*mem == MAP_FAILED) return fail("mapping BAR2", strerror(errno));
    *size = bar2.size;
    *bar0_offset = bar0.offset;
    return 0;
}

static int doorbell_main(const char *addr, unsigned host_peer, unsigned rounds, double timeout) {
    int device, efd;
    if (bind_vfio(addr) || open_device(addr, &device) || enable_msix(device, &efd)) return 1;
    struct vfio_region_info bar0;
    if (region(device, VFIO_PCI_BAR0_REGION_INDEX, &bar0) != 0 || bar0.size < 16)
        return fail("BAR0 (ivshmem registers)", "missing");
    uint32_t own_id;
    if (pread(device, &own_id, 4, (off_t)bar0.offset + IVSHMEM_REG_IVPOSITION) != 4)
        return fail("reading IVPosition", strerror(errno));
    fprintf(stderr, "vmforge-ivshmem-peer: doorbell ready: own peer id %u, host peer %u\n", own_id, host_peer);
    for (unsigned i = 0; i < rounds; i++) {
        struct pollfd p = {.fd = efd, .events = POLLIN};
        int ready = poll(&p, 1, (int)(timeout * 1000));
        if (ready <= 0) {
            fprintf(stderr, "vmforge-ivshmem-peer: no doorbell interrupt within %gs (round %u)\n", timeout, i + 1);
            return 3;
        }
        uint64_t count;
        if (read(efd, &count, 8) != 8) return fail("reading the interrupt eventfd", strerror(errno));
        uint32_t ring = (host_peer << 16) | 0u;
        if (pwrite(device, &ring, 4, (off_t)bar0.offset + IVSHMEM_REG_DOORBELL) != 4)
            return fail("writing the Doorbell register", strerror(errno));
        fprintf(stderr, "vmforge-ivshmem-peer: interrupt %u (count %llu), rang host peer %u\n", i + 1,
                (unsigned long long)count, host_peer);
    }
    return 0;
}
