#!/usr/bin/env python3
"""Pacing of the RTP the engine sent, judged from a loopback capture (tcpdump -w).

usage: pcap_pacing.py CAPTURE [ENGINE_PORT_MIN ENGINE_PORT_MAX]

Per stream (even UDP source port in the engine's RTP range; the odd ports are RTCP): the interval between consecutive
packets, and each packet's lateness against the stream's ideal clock (its first packet's time
plus 20 ms x the RTP sequence distance, the clock shifted so the earliest packet is on time).
Prints streams, packets, sequence gaps, interval percentiles (deviation from 20 ms) and the
lateness percentiles and maximum. Standard library only (pcap and pcapng are not both needed:
tcpdump -w writes classic pcap)."""
import struct
import sys


def packets(path):
    with open(path, "rb") as f:
        head = f.read(24)
        magic = struct.unpack("<I", head[:4])[0]
        if magic in (0xA1B2C3D4, 0xA1B23C4D):
            endian = "<"
        else:
            endian = ">"
            magic = struct.unpack(">I", head[:4])[0]
        nano = magic == 0xA1B23C4D
        linktype = struct.unpack(endian + "I", head[20:24])[0]
        rec = struct.Struct(endian + "IIII")
        while True:
            h = f.read(16)
            if len(h) < 16:
                return
            sec, frac, incl, _ = rec.unpack(h)
            data = f.read(incl)
            t = sec + frac / (1e9 if nano else 1e6)
            # Linux cooked (113), cooked v2 (276), Ethernet (1), or raw/loopback null (0).
            if linktype == 1:
                off = 14
            elif linktype == 113:
                off = 16
            elif linktype == 276:
                off = 20
            elif linktype == 0:
                off = 4
            else:
                off = 0
            ip = data[off:]
            if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 17:
                continue
            ihl = (ip[0] & 15) * 4
            udp = ip[ihl:]
            if len(udp) < 8 + 12:
                continue
            sport = struct.unpack(">H", udp[:2])[0]
            rtp = udp[8:]
            seq = struct.unpack(">H", rtp[2:4])[0]
            yield t, sport, seq


def pct(sorted_values, p):
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, int(p / 100.0 * len(sorted_values)))
    return sorted_values[i]


def main():
    path = sys.argv[1]
    lo, hi = (int(sys.argv[2]), int(sys.argv[3])) if len(sys.argv) > 3 else (0, 65535)
    streams = {}
    for t, sport, seq in packets(path):
        # RTP leaves from even ports; the odd ones above carry RTCP.
        if lo <= sport <= hi and sport % 2 == 0:
            streams.setdefault(sport, []).append((t, seq))
    deviations, lateness, gaps, total = [], [], 0, 0
    for pkts in streams.values():
        total += len(pkts)
        # Sequence numbers unwrap along the capture.
        base_t, base_seq = pkts[0]
        ext, last, offsets = 0, base_seq, []
        for t, seq in pkts:
            d = (seq - last) & 0xFFFF
            if d > 0x8000:
                d -= 0x10000
            ext += d
            last = seq
            offsets.append((t, ext))
        ideal = [t - base_t - 0.020 * n for t, n in offsets]
        early = min(ideal)
        lateness.extend((x - early) * 1000 for x in ideal)
        for (t0, n0), (t1, n1) in zip(offsets, offsets[1:]):
            if n1 - n0 != 1:
                gaps += 1
                continue
            deviations.append(abs((t1 - t0) * 1000 - 20.0))
    deviations.sort()
    lateness.sort()
    print(f"streams {len(streams)}  packets {total}  sequence gaps {gaps}")
    for p in (50, 90, 99, 99.9):
        print(f"interval |dev from 20 ms| p{p}: {pct(deviations, p):.3f} ms")
    if deviations:
        print(f"interval |dev| max: {deviations[-1]:.3f} ms")
    for p in (50, 99, 99.9):
        print(f"lateness vs ideal clock p{p}: {pct(lateness, p):.3f} ms")
    if lateness:
        print(f"lateness max: {lateness[-1]:.3f} ms  (>10 ms: {sum(1 for x in lateness if x > 10)})")


if __name__ == "__main__":
    main()
