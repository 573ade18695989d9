/*
 * vmforge-ivshmem-peer: the guest side of the vmforge ivshmem channel, layout version 1.
 *
 * Maps a shared-memory area (inside a Linux guest: /sys/bus/pci/devices/<addr>/resource2, the
 * ivshmem BAR2; on the host, for tests: /dev/shm/NAME), attaches to the host's session as the
 * guest peer and answers: ECHO -> ECHO_REPLY, PING -> PONG, FRAME_REQUEST -> writes a pattern
 * frame (seqlock, CRC-32) and sends FRAME_READY, BYE -> detaches and exits 0.  Re-attaches when
 * the host re-creates the session.  The contract is docs/ivshmem-protocol.md.
 *
 * Build: gcc -static -O2 -o vmforge-ivshmem-peer vmforge-ivshmem-peer.c
 * Usage: vmforge-ivshmem-peer PATH [IDLE_TIMEOUT_SECONDS]
 *   exits 0 after BYE, 1 on errors, 2 on usage, 3 when no session appeared within the timeout,
 *   4 when the host's layout version is refused.
 *        vmforge-ivshmem-peer --vfio ADDR [IDLE_TIMEOUT_SECONDS]
 *   the same peer on an ivshmem-doorbell device through VFIO: BAR2 mapped from the VFIO device,
 *   idle waits block on the MSI-X interrupt, every message sent rings the host's doorbell.
 *        vmforge-ivshmem-peer --doorbell ADDR HOST_PEER ROUNDS TIMEOUT_SECONDS
 *   answers ivshmem-doorbell interrupts through VFIO (vfio-doorbell.c, included below).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define VERSION_MAJOR 1
#define VERSION_MINOR 1
static const char MAGIC[8] = {'V', 'M', 'F', 'G', 'S', 'H', 'M', 0};

/* header offsets */
#define OFF_VERSION_MAJOR 8
#define OFF_VERSION_MINOR 10
#define OFF_TOTAL_SIZE 16
#define OFF_SESSION_ID 24
#define OFF_HOST_FEATURES 32
#define OFF_HOST_STATE 40
#define OFF_HOST_DOORBELL_ID 44
#define OFF_QUEUE_COUNT 48
#define OFF_QUEUE_TABLE 52
#define OFF_FRAME_TABLE 56
#define OFF_HOST_HEARTBEAT 64
#define OFF_GUEST_SESSION 128
#define OFF_GUEST_VERSION_MAJOR 136
#define OFF_GUEST_VERSION_MINOR 138
#define OFF_GUEST_STATE 140
#define OFF_GUEST_FEATURES 144
#define OFF_GUEST_HEARTBEAT 192
#define QUEUE_ENTRY_SIZE 32
#define OFF_FRAME_LATEST (512 + 64)
#define OFF_FRAME_READING (512 + 128)
#define FRAME_DESC_OFFSET (512 + 192)
#define FRAME_DESC_SIZE 64
#define SLOT_HEADER_SIZE 16
#define RING_CONTROL_SIZE 128

#define GUEST_ATTACHED 1
#define GUEST_DETACHED 2
#define GUEST_REFUSED_VERSION 3
#define FEATURE_DOORBELL 1
#define FEATURE_FRAME_CRC 2
#define FLAG_CRC 1

#define MSG_PING 0x0001
#define MSG_PONG 0x0002
#define MSG_ECHO 0x0003
#define MSG_ECHO_REPLY 0x0004
#define MSG_FRAME_REQUEST 0x0010
#define MSG_FRAME_READY 0x0011
#define MSG_BYE 0x0020

#define HEARTBEAT_NS 100000000ull

struct ring {
    uint8_t *base;
    uint64_t *head, *tail;
    uint8_t *slots;
    uint32_t slot_size, slot_count;
    uint64_t next;
};

struct session {
    uint8_t *mem;
    uint64_t size, id;
    struct ring rx, tx; /* rx: host->guest, tx: guest->host */
    uint32_t width, height, pitch, frame_count, producer;
    uint64_t frames_offset, frame_stride, frame_no;
    int device, efd;     /* --vfio: the VFIO device and the MSI-X vector 0 eventfd; -1 otherwise */
    uint64_t bar0;       /* --vfio: file offset of BAR0 (the ivshmem registers) in the device fd */
    uint64_t interrupts; /* doorbell interrupts that woke the peer */
};

static uint64_t load64(const void *p) { return __atomic_load_n((const uint64_t *)p, __ATOMIC_ACQUIRE); }
static void store64(void *p, uint64_t v) { __atomic_store_n((uint64_t *)p, v, __ATOMIC_RELEASE); }
static uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint16_t rd16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static void wr32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void wr16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static void wr64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint32_t crc_table[256];
static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}
static void beat(struct session *s, uint64_t *last) {
    uint64_t t = now_ns();
    if (t - *last >= HEARTBEAT_NS) {
        uint8_t *hb = s->mem + OFF_GUEST_HEARTBEAT;
        store64(hb, load64(hb) + 1);
        *last = t;
    }
}

/* Long loops (a 4K frame is 33 MB) beat every BEAT_CHUNK bytes: on a slow CPU (TCG) one frame
 * takes seconds, and the host declares a silent peer lost after 0.5 s. */
#define BEAT_CHUNK (256u * 1024u)

static uint32_t crc32_buf(struct session *s, uint64_t *last, const uint8_t *p, uint64_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (uint64_t i = 0; i < n; i++) {
        if ((i % BEAT_CHUNK) == 0) beat(s, last);
        c = crc_table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    }
    return c ^ 0xFFFFFFFFu;
}

static int ring_setup(struct session *s, struct ring *r, uint32_t direction) {
    uint32_t count = rd32(s->mem + OFF_QUEUE_COUNT), table = rd32(s->mem + OFF_QUEUE_TABLE);
    for (uint32_t i = 0; i < count && i < 8; i++) {
        uint8_t *e = s->mem + table + i * QUEUE_ENTRY_SIZE;
        if (rd32(e + 4) != direction) continue;
        uint64_t off = rd64(e + 8);
        r->slot_size = rd32(e + 16);
        r->slot_count = rd32(e + 20);
        if (r->slot_count == 0 || (r->slot_count & (r->slot_count - 1)) || r->slot_size < SLOT_HEADER_SIZE ||
            off + RING_CONTROL_SIZE + (uint64_t)r->slot_size * r->slot_count > s->size)
            return -1;
        r->base = s->mem + off;
        r->head = (uint64_t *)r->base;
        r->tail = (uint64_t *)(r->base + 64);
        r->slots = r->base + RING_CONTROL_SIZE;
        return 0;
    }
    return -1;
}

/* returns payload length, -1 when empty, -2 when the ring is inconsistent */
static int ring_recv(struct ring *r, uint16_t *type, uint8_t *out, uint32_t cap) {
    uint64_t i = r->next;
    if (load64(r->head) <= i) return -1;
    uint8_t *slot = r->slots + (i & (r->slot_count - 1)) * (uint64_t)r->slot_size;
    uint32_t len = rd32(slot);
    *type = rd16(slot + 4);
    if (rd64(slot + 8) != i + 1 || len > r->slot_size - SLOT_HEADER_SIZE || len > cap) return -2;
    memcpy(out, slot + SLOT_HEADER_SIZE, len);
    r->next = i + 1;
    store64(r->tail, r->next);
    return (int)len;
}

/* 0 sent, -1 full */
static int ring_send(struct ring *r, uint16_t type, const uint8_t *payload, uint32_t len) {
    uint64_t i = r->next;
    if (i - load64(r->tail) >= r->slot_count) return -1;
    uint8_t *slot = r->slots + (i & (r->slot_count - 1)) * (uint64_t)r->slot_size;
    memcpy(slot + SLOT_HEADER_SIZE, payload, len);
    wr32(slot, len);
    wr16(slot + 4, type);
    wr16(slot + 6, 0);
    wr64(slot + 8, i + 1);
    r->next = i + 1;
    store64(r->head, r->next); /* publish after payload and slot header */
    return 0;
}

/* Wait for a published session; 0 attached, 3 timeout, 4 version refused, 1 malformed. */
static int attach(struct session *s, double idle_timeout) {
    uint64_t deadline = now_ns() + (uint64_t)(idle_timeout * 1e9);
    uint64_t id;
    for (;;) {
        id = load64(s->mem + OFF_SESSION_ID);
        if (id && memcmp(s->mem, MAGIC, 8) == 0) break;
        if (now_ns() >= deadline) return 3;
        usleep(10000);
    }
    uint16_t major = rd16(s->mem + OFF_VERSION_MAJOR), minor = rd16(s->mem + OFF_VERSION_MINOR);
    wr16(s->mem + OFF_GUEST_VERSION_MAJOR, VERSION_MAJOR);
    wr16(s->mem + OFF_GUEST_VERSION_MINOR, VERSION_MINOR);
    if (major != VERSION_MAJOR) {
        fprintf(stderr, "vmforge-ivshmem-peer: the host speaks layout version %u.%u, this peer %u.%u; refusing\n",
                major, minor, VERSION_MAJOR, VERSION_MINOR);
        wr32(s->mem + OFF_GUEST_STATE, GUEST_REFUSED_VERSION);
        store64(s->mem + OFF_GUEST_SESSION, id);
        return 4;
    }
    s->size = rd64(s->mem + OFF_TOTAL_SIZE) <= s->size ? rd64(s->mem + OFF_TOTAL_SIZE) : 0;
    if (!s->size) return 1;
    uint8_t *ft = s->mem + rd32(s->mem + OFF_FRAME_TABLE);
    s->frame_count = rd32(ft);
    s->width = rd32(ft + 8);
    s->height = rd32(ft + 12);
    s->pitch = rd32(ft + 16);
    s->producer = rd32(ft + 20);
    s->frames_offset = rd64(ft + 24);
    s->frame_stride = rd64(ft + 32);
    if (s->frame_count != 3 || s->pitch < s->width * 4 || s->frame_stride < (uint64_t)s->pitch * s->height ||
        s->frames_offset + 3 * s->frame_stride > s->size)
        return 1;
    if (ring_setup(s, &s->rx, 0) || ring_setup(s, &s->tx, 1)) return 1;
    s->rx.next = load64(s->rx.tail);
    s->tx.next = load64(s->tx.head);
    s->frame_no = load64(s->mem + OFF_FRAME_LATEST) >> 2;
    uint64_t usable = FEATURE_FRAME_CRC | (s->efd >= 0 ? FEATURE_DOORBELL : 0);
    wr64(s->mem + OFF_GUEST_FEATURES, rd64(s->mem + OFF_HOST_FEATURES) & usable);
    wr32(s->mem + OFF_GUEST_STATE, GUEST_ATTACHED);
    store64(s->mem + OFF_GUEST_HEARTBEAT, load64(s->mem + OFF_GUEST_HEARTBEAT) + 1);
    if (load64(s->mem + OFF_SESSION_ID) != id) return attach(s, idle_timeout);
    store64(s->mem + OFF_GUEST_SESSION, id); /* attach last */
    s->id = id;
    return 0;
}

/* Fill a free buffer with the seed's pattern under the seqlock; returns the CRC. */
static uint32_t write_frame(struct session *s, uint64_t *last, uint64_t seed, uint64_t *frame_no) {
    uint64_t latest = load64(s->mem + OFF_FRAME_LATEST), reading = load64(s->mem + OFF_FRAME_READING);
    uint32_t index = 0;
    for (uint32_t k = 1; k <= 3; k++) {
        uint32_t cand = (uint32_t)(((latest & 3) + k) % 3);
        if ((latest && cand == (latest & 3)) || (reading && cand == reading - 1)) continue;
        index = cand;
        break;
    }
    uint8_t *desc = s->mem + FRAME_DESC_OFFSET + index * FRAME_DESC_SIZE;
    uint64_t seq = load64(desc);
    store64(desc, seq + ((seq & 1) ? 2 : 1)); /* odd: being written */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    uint8_t *px = s->mem + s->frames_offset + index * s->frame_stride;
    uint64_t bytes = (uint64_t)s->pitch * s->height;
    uint32_t *words = (uint32_t *)px, base = (uint32_t)seed;
    for (uint64_t i = 0; i < bytes / 4; i++) {
        if ((i % (BEAT_CHUNK / 4)) == 0) beat(s, last);
        words[i] = base ^ (uint32_t)(i * 2654435761u);
    }
    uint32_t crc = crc32_buf(s, last, px, bytes);
    *frame_no = ++s->frame_no;
    wr64(desc + 8, s->frame_no);
    wr32(desc + 16, s->width);
    wr32(desc + 20, s->height);
    wr32(desc + 24, s->pitch);
    wr32(desc + 28, crc);
    wr32(desc + 32, FLAG_CRC);
    store64(desc, load64(desc) + 1); /* even: stable */
    store64(s->mem + OFF_FRAME_LATEST, (s->frame_no << 2) | index);
    return crc;
}

/* --vfio: ring the host's doorbell (its ivshmem peer id comes from the header, layout 1.1) */
static void ring_host(struct session *s) {
    uint32_t host = rd32(s->mem + OFF_HOST_DOORBELL_ID);
    if (s->device < 0 || !host || !(rd64(s->mem + OFF_HOST_FEATURES) & FEATURE_DOORBELL)) return;
    uint32_t value = (host - 1) << 16; /* vector 0 */
    if (pwrite(s->device, &value, 4, (off_t)s->bar0 + 12) != 4)
        fprintf(stderr, "vmforge-ivshmem-peer: writing the Doorbell register: %s\n", strerror(errno));
}

/* --vfio: block until the host's doorbell interrupt (or timeout_ms) instead of polling */
static void wait_interrupt(struct session *s, int timeout_ms) {
    struct pollfd p = {.fd = s->efd, .events = POLLIN};
    uint64_t count;
    if (poll(&p, 1, timeout_ms) > 0 && read(s->efd, &count, 8) == 8) s->interrupts += count;
}

static void send_or_wait(struct session *s, uint16_t type, const uint8_t *p, uint32_t len, uint64_t *last) {
    while (ring_send(&s->tx, type, p, len) != 0) {
        beat(s, last);
        if (load64(s->mem + OFF_SESSION_ID) != s->id) return;
        usleep(100);
    }
    ring_host(s);
}

static int map_file(const char *path, uint8_t **mem, uint64_t *size) {
    int fd = open(path, O_RDWR);
    if (fd < 0) {
        fprintf(stderr, "vmforge-ivshmem-peer: cannot open %s: %s\n", path, strerror(errno));
        return 1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < 4096) {
        fprintf(stderr, "vmforge-ivshmem-peer: %s is too small or unreadable\n", path);
        return 1;
    }
    *mem = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (*mem == MAP_FAILED) {
        fprintf(stderr, "vmforge-ivshmem-peer: cannot map %s: %s\n", path, strerror(errno));
        return 1;
    }
    close(fd);
    *size = (uint64_t)st.st_size;
    return 0;
}

#include "vfio-doorbell.c"

int main(int argc, char **argv) {
    if (argc == 6 && strcmp(argv[1], "--doorbell") == 0)
        return doorbell_main(argv[2], (unsigned)atoi(argv[3]), (unsigned)atoi(argv[4]), atof(argv[5]));
    struct session s;
    memset(&s, 0, sizeof(s));
    s.device = s.efd = -1;
    const char *vfio = NULL;
    if (argc >= 3 && strcmp(argv[1], "--vfio") == 0) {
        vfio = argv[2];
        argv += 2;
        argc -= 2;
    }
    if (vfio ? argc > 2 : (argc < 2 || argc > 3)) {
        fprintf(stderr,
                "usage: vmforge-ivshmem-peer PATH [IDLE_TIMEOUT_SECONDS] | --vfio ADDR [IDLE_TIMEOUT_SECONDS]"
                " | --doorbell ADDR HOST_PEER ROUNDS TIMEOUT\n");
        return 2;
    }
    double idle_timeout = vfio ? (argc == 2 ? atof(argv[1]) : 1e9) : (argc == 3 ? atof(argv[2]) : 1e9);
    crc_init();
    uint64_t mapped;
    if (vfio) {
        if (vfio_map(vfio, &s.mem, &mapped, &s.device, &s.efd, &s.bar0)) return 1;
    } else if (map_file(argv[1], &s.mem, &mapped)) {
        return 1;
    }
    uint8_t buf[4096];
    for (;;) {
        s.size = mapped;
        int rc = attach(&s, idle_timeout);
        if (rc) {
            if (rc == 3) fprintf(stderr, "vmforge-ivshmem-peer: no host session within %gs\n", idle_timeout);
            if (rc == 1) fprintf(stderr, "vmforge-ivshmem-peer: the host's layout is malformed\n");
            return rc;
        }
        fprintf(stderr, "vmforge-ivshmem-peer: attached to session %016llx (%ux%u)\n", (unsigned long long)s.id,
                s.width, s.height);
        uint64_t last = 0;
        unsigned idle = 0;
        while (load64(s.mem + OFF_SESSION_ID) == s.id) {
            beat(&s, &last);
            uint16_t type;
            int len = ring_recv(&s.rx, &type, buf, sizeof(buf));
            if (len == -2) {
                fprintf(stderr, "vmforge-ivshmem-peer: host->guest ring is inconsistent; re-attaching\n");
                break;
            }
            if (len < 0) {
                ++idle;
                if (s.efd >= 0) {
                    if (idle > 8) wait_interrupt(&s, 100); /* the host rings after each message */
                } else if (idle > 1000) {
                    usleep(50); /* spin a little, then poll gently */
                }
                continue;
            }
            idle = 0;
            switch (type) {
            case MSG_PING:
                send_or_wait(&s, MSG_PONG, buf, (uint32_t)len, &last);
                break;
            case MSG_ECHO:
                send_or_wait(&s, MSG_ECHO_REPLY, buf, (uint32_t)len, &last);
                break;
            case MSG_FRAME_REQUEST:
                if (len >= 8 && s.producer == 1) {
                    uint64_t seed = rd64(buf), frame_no;
                    uint32_t crc = write_frame(&s, &last, seed, &frame_no);
                    uint8_t out[20];
                    wr64(out, seed);
                    wr64(out + 8, frame_no);
                    wr32(out + 16, crc);
                    send_or_wait(&s, MSG_FRAME_READY, out, sizeof(out), &last);
                }
                break;
            case MSG_BYE:
                wr32(s.mem + OFF_GUEST_STATE, GUEST_DETACHED);
                if (s.efd >= 0)
                    fprintf(stderr, "vmforge-ivshmem-peer: woken by %llu doorbell interrupts\n",
                            (unsigned long long)s.interrupts);
                return 0;
            default:
                break; /* draw, present and input messages belong to the compositor, not the echo peer */
            }
        }
        /* let a re-creating host know we no longer touch the old session's rings */
        if (load64(s.mem + OFF_GUEST_SESSION) == s.id) store64(s.mem + OFF_GUEST_SESSION, 0);
        fprintf(stderr, "vmforge-ivshmem-peer: session replaced; re-attaching\n");
    }
}
