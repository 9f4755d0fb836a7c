/* System calls real programs use beyond the basics (tests/user/test_syscalls.py), each
 * printing what Linux returns: epoll (the 16-byte epoll_event), timerfd, inotify,
 * SysV message queues and semaphores, POSIX message queues, preadv2/pwritev2, tee,
 * vmsplice, sendmmsg/recvmmsg, capget, sched_*, ptrace (EPERM under an emulator) and
 * an unimplemented call (ENOSYS). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <mqueue.h>
#include <sched.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/ptrace.h>
#include <sys/sem.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static const char *err(long r) { return r < 0 ? strerror(errno) : "ok"; }

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* epoll: two pipes, the u64 data must come back whole */
    int p1[2], p2[2];
    pipe(p1), pipe(p2);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0x1122334455667788ull};
    epoll_ctl(ep, EPOLL_CTL_ADD, p1[0], &ev);
    ev.data.u64 = 0xdeadbeefcafef00dull;
    epoll_ctl(ep, EPOLL_CTL_ADD, p2[0], &ev);
    write(p2[1], "x", 1);
    struct epoll_event got[4];
    int n = epoll_wait(ep, got, 4, 1000);
    printf("epoll: %d events, data %llx, events %x\n", n,
           n > 0 ? (unsigned long long)got[0].data.u64 : 0ull, n > 0 ? got[0].events : 0);
    write(p1[1], "y", 1);
    n = epoll_pwait(ep, got, 4, 0, NULL);
    printf("epoll_pwait: %d events\n", n);
    printf("epoll_ctl del: %d, bad op: %s\n", epoll_ctl(ep, EPOLL_CTL_DEL, p1[0], NULL),
           err(epoll_ctl(ep, 99, p1[0], &ev)));

    /* timerfd: 20 ms one-shot, read the expiration count */
    int tfd = timerfd_create(CLOCK_MONOTONIC, 0);
    struct itimerspec its = {.it_value = {0, 20000000}};
    timerfd_settime(tfd, 0, &its, NULL);
    uint64_t expirations = 0;
    read(tfd, &expirations, 8);
    timerfd_gettime(tfd, &its);
    printf("timerfd: expirations %llu, disarmed %d\n", (unsigned long long)expirations,
           its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0);

    /* inotify: create a file in the working directory */
    int in = inotify_init1(IN_NONBLOCK);
    int wd = inotify_add_watch(in, ".", IN_CREATE);
    close(open("created.txt", O_CREAT | O_WRONLY, 0644));
    char evbuf[512];
    ssize_t len = read(in, evbuf, sizeof evbuf);
    struct inotify_event *ie = (struct inotify_event *)evbuf;
    printf("inotify: wd ok %d, mask %x, name %s\n", len > 0 && ie->wd == wd,
           len > 0 ? ie->mask : 0, len > 0 ? ie->name : "-");
    printf("inotify_rm_watch: %d\n", inotify_rm_watch(in, wd));

    /* SysV message queue */
    int q = msgget(IPC_PRIVATE, 0600);
    struct { long mtype; char text[32]; } msg = {7, "queued"}, back = {0, ""};
    msgsnd(q, &msg, sizeof msg.text, 0);
    struct msqid_ds qs;
    msgctl(q, IPC_STAT, &qs);
    printf("msgq: qnum %lu, mode %o\n", (unsigned long)qs.msg_qnum, qs.msg_perm.mode & 0777);
    ssize_t got_len = msgrcv(q, &back, sizeof back.text, 7, 0);
    printf("msgrcv: %zd type %ld text %s, rmid %d\n", got_len, back.mtype, back.text,
           msgctl(q, IPC_RMID, NULL));

    /* SysV semaphores: nsems through IPC_STAT (a struct whose layout differs on x86-64) */
    int s = semget(IPC_PRIVATE, 3, 0600);
    unsigned short vals[3] = {1, 2, 3}, vals_back[3] = {0};
    semctl(s, 0, SETALL, vals);
    struct sembuf op = {1, -2, 0};
    semop(s, &op, 1);
    semctl(s, 0, GETALL, vals_back);
    struct semid_ds ss;
    semctl(s, 0, IPC_STAT, &ss);
    printf("sem: nsems %lu, values %d %d %d, getval %d, rmid %d\n", (unsigned long)ss.sem_nsems,
           vals_back[0], vals_back[1], vals_back[2], semctl(s, 2, GETVAL),
           semctl(s, 0, IPC_RMID));

    /* POSIX message queue */
    char name[64];
    snprintf(name, sizeof name, "/llvmtcg-test-%d", getpid());
    struct mq_attr attr = {.mq_maxmsg = 4, .mq_msgsize = 64};
    mqd_t mq = mq_open(name, O_CREAT | O_RDWR, 0600, &attr);
    if (mq == (mqd_t)-1) {
        printf("mq_open: %s\n", strerror(errno));
    } else {
        mq_send(mq, "posix", 6, 3);
        char mbuf[64];
        unsigned prio = 0;
        ssize_t m = mq_receive(mq, mbuf, sizeof mbuf, &prio);
        mq_getattr(mq, &attr);
        printf("mq: %zd %s prio %u, maxmsg %ld, unlink %d\n", m, m > 0 ? mbuf : "-", prio,
               attr.mq_maxmsg, mq_unlink(name));
    }

    /* preadv2 / pwritev2 */
    int fd = open("vec.bin", O_CREAT | O_RDWR | O_TRUNC, 0644);
    char a[] = "hello ", b[] = "vectors";
    struct iovec out[2] = {{a, 6}, {b, 7}};
    printf("pwritev2: %zd\n", pwritev2(fd, out, 2, 0, 0));
    char c[6] = {0}, d[8] = {0};
    struct iovec in2[2] = {{c, 5}, {d, 7}};
    printf("preadv2: %zd '%s' '%s'\n", preadv2(fd, in2, 2, 1, 0), c, d);

    /* tee and vmsplice between pipes */
    int a1[2], a2[2];
    pipe(a1), pipe(a2);
    struct iovec vs = {"spliced", 7};
    printf("vmsplice: %zd\n", vmsplice(a1[1], &vs, 1, 0));
    printf("tee: %zd\n", tee(a1[0], a2[1], 7, 0));
    char t1[8] = {0}, t2[8] = {0};
    read(a1[0], t1, 7), read(a2[0], t2, 7);
    printf("both ends: %s %s\n", t1, t2);

    /* sendmmsg / recvmmsg on a datagram socket pair */
    int sv[2];
    socketpair(AF_UNIX, SOCK_DGRAM, 0, sv);
    struct iovec m1 = {"first", 5}, m2 = {"second!", 7};
    struct mmsghdr msgs[2] = {{.msg_hdr = {.msg_iov = &m1, .msg_iovlen = 1}},
                              {.msg_hdr = {.msg_iov = &m2, .msg_iovlen = 1}}};
    printf("sendmmsg: %d lens %u %u\n", sendmmsg(sv[0], msgs, 2, 0), msgs[0].msg_len,
           msgs[1].msg_len);
    char r1[16] = {0}, r2[16] = {0};
    struct iovec i1 = {r1, 15}, i2 = {r2, 15};
    struct mmsghdr rmsgs[2] = {{.msg_hdr = {.msg_iov = &i1, .msg_iovlen = 1}},
                               {.msg_hdr = {.msg_iov = &i2, .msg_iovlen = 1}}};
    printf("recvmmsg: %d %s(%u) %s(%u)\n", recvmmsg(sv[1], rmsgs, 2, 0, NULL), r1,
           rmsgs[0].msg_len, r2, rmsgs[1].msg_len);

    /* capabilities, scheduling, ptrace, an unimplemented call */
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct caps[2];
    printf("capget: %ld\n", syscall(SYS_capget, &hdr, caps));
    struct timespec rr;
    printf("sched_rr_get_interval: %d\n", sched_rr_get_interval(0, &rr));
    struct sched_param sp = {0};
    printf("sched_setscheduler: %d, policy %d\n", sched_setscheduler(0, SCHED_OTHER, &sp),
           sched_getscheduler(0));
    errno = 0;
    long pr = ptrace(PTRACE_TRACEME, 0, NULL, NULL);
    printf("ptrace: %ld %s\n", pr, err(pr));
    errno = 0;
    long un = syscall(258 /* riscv_hwprobe: not in qemu 7.2 either */, 0, 0, 0, 0, 0);
    printf("unimplemented: %ld %s\n", un, err(un));
    errno = 0;
    un = syscall(258, 0, 0, 0, 0, 0);  /* (-d unimp reports a number once) */
    printf("again: %ld %s\n", un, err(un));
    return 0;
}
