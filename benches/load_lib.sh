# Shared by the load benchmarks (benches/ivr_load.sh, benches/acd_load.sh), sourced: their
# audio files, waiting for the node, and a process's CPU and memory from /proc.

# write_audio WORK PROMPT SECONDS: WORK/prompts/PROMPT, SECONDS of a 440/880 Hz alternation
# (8 kHz 16-bit mono), and WORK/voice.ulaw, 10 s of a 300 Hz tone as raw mu-law (rtp_stream
# takes headerless G.711; SIPp loops it for the callers).
write_audio() {
  mkdir -p "$1/prompts"
  python3 - "$1" "$2" "$3" <<'PY'
import math, struct, sys, wave
work, prompt, secs = sys.argv[1], sys.argv[2], int(sys.argv[3])
w = wave.open(f"{work}/prompts/{prompt}", "wb")
w.setnchannels(1); w.setsampwidth(2); w.setframerate(8000)
w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * (440 if (n // 8000) % 2 == 0 else 880) * n / 8000))) for n in range(8000 * secs)))
w.close()
def ulaw(s):
    sign = 0x80 if s < 0 else 0
    m = min(abs(s), 32635) + 0x84
    e = 7
    while e > 0 and not (m & (0x4000 >> (7 - e))):
        e -= 1
    return ~(sign | (e << 4) | ((m >> (e + 3)) & 0x0F)) & 0xFF
open(f"{work}/voice.ulaw", "wb").write(bytes(ulaw(int(6000 * math.sin(2 * math.pi * 300 * n / 8000))) for n in range(80000)))
PY
}

# wait_health URL: until the node answers its health check (at most a minute).
wait_health() {
  for _ in $(seq 1 120); do
    curl -sf "$1/health" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  return 1
}

# proc_cpu PID: its CPU time so far (utime + stime) in clock ticks (getconf CLK_TCK a second).
proc_cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# proc_rss PID: its resident memory in KiB.
proc_rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
