#!/usr/bin/env python3
"""The lab's "internet": a user-space delaying forwarder on a TUN device (the kernel here has no netem).

Run inside the lab's `inet` namespace, attached to the persistent TUN device that policy routing sends
every packet between two sites into (lab/net.ts). Each IPv4 packet read is held for a delay drawn
uniformly from [mean - jitter, mean + jitter] ms, or dropped with probability `loss`, then written back
to the same device, from where the kernel routes it to its destination site. Packets of one
(source, destination) address pair never overtake each other (a later packet leaves no earlier than the
previous one), so jitter does not reorder a TCP flow, as on most real paths.

Usage: delay.py <tun name> <mean ms> <jitter ms> <loss 0..1> <stats file> [seed]
Writes JSON stats (packets, dropped, applied delay percentiles measured from read to write) to the
stats file every second and on SIGTERM/SIGINT, then exits.
"""
import fcntl, heapq, json, os, random, select, signal, struct, sys, time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000

def main():
    name, mean, jitter, loss, stats_path = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
    rng = random.Random(int(sys.argv[6]) if len(sys.argv) > 6 else None)
    fd = os.open('/dev/net/tun', os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack('16sH', name.encode(), IFF_TUN | IFF_NO_PI))
    os.set_blocking(fd, False)
    queue = []  # (due, seq, packet, read_at)
    last_due = {}  # (src, dst) -> due time of the last packet of that pair
    seq = 0
    stats = {'packets': 0, 'dropped': 0, 'forwarded': 0, 'bytes': 0}
    applied = []  # ms actually held, sampled (bounded)
    stop = [False]
    def on_signal(_s, _f):
        stop[0] = True
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    def write_stats():
        s = sorted(applied)
        pct = lambda p: s[min(len(s) - 1, int(p * len(s)))] if s else None
        out = dict(stats, mean_ms=mean, jitter_ms=jitter, loss=loss, delay_p50_ms=pct(0.5), delay_p05_ms=pct(0.05), delay_p95_ms=pct(0.95), samples=len(s))
        tmp = stats_path + '.tmp'
        with open(tmp, 'w') as f:
            json.dump(out, f)
        os.replace(tmp, stats_path)
    next_stats = time.monotonic() + 1
    print('ready', flush=True)
    while not stop[0]:
        now = time.monotonic()
        timeout = 0.2
        if queue:
            timeout = max(0.0, min(timeout, queue[0][0] - now))
        try:
            r, _, _ = select.select([fd], [], [], timeout)
        except InterruptedError:
            continue
        now = time.monotonic()
        if r:
            for _ in range(256):  # bounded: at most 256 packets per wake-up
                try:
                    pkt = os.read(fd, 65536)
                except BlockingIOError:
                    break
                if len(pkt) < 20 or pkt[0] >> 4 != 4:
                    continue
                stats['packets'] += 1
                if rng.random() < loss:
                    stats['dropped'] += 1
                    continue
                key = (pkt[12:16], pkt[16:20])
                due = max(now + rng.uniform(mean - jitter, mean + jitter) / 1000.0, last_due.get(key, 0.0))
                last_due[key] = due
                seq += 1
                heapq.heappush(queue, (due, seq, pkt, now))
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, _, pkt, read_at = heapq.heappop(queue)
            try:
                os.write(fd, pkt)
            except OSError:
                stats['dropped'] += 1
                continue
            stats['forwarded'] += 1
            stats['bytes'] += len(pkt)
            if len(applied) < 200000:
                applied.append((now - read_at) * 1000.0)
        if now >= next_stats:
            write_stats()
            next_stats = now + 1
    write_stats()

if __name__ == '__main__':
    main()
