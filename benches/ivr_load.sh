#!/usr/bin/env bash
# Concurrent calls in the IVR, measured the way a carrier would see them: SIPp places CALLS
# calls at RATE calls/s to a real `hotline serve` (release build) on loopback; each caller
# streams G.711 for the whole call (rtp_stream) and hears a 90 s recorded prompt; the calls
# overlap for HOLD seconds. During the steady state tcpdump captures what the engine sends
# (its RTP port range only) for WINDOW seconds, and benches/pcap_pacing.py judges the pacing
# from the capture (SIPp's own view of timing is uneven, see ../shared/load/README.md).
# The engine's CPU (utime+stime from /proc) and resident memory are read before the calls
# and during the steady state.
#
# With MODE=bridge the script transfers every caller at once to an agent (a SIPp UAS answering
# in A-law and echoing the audio, benches/sipp/uas_agent.xml): every call is then a bridged,
# transcoded, recorded call with two legs, and the capture covers both legs' sends.
#
# usage: benches/ivr_load.sh [CALLS=2000] [RATE=200] [HOLD=40] [WINDOW=10]
# KEEP=1 keeps the work directory (recordings, capture, logs). RECORD=false turns recordings off (recordings.enabled). MEDIA_THREADS sets rtp.media_threads (default 0: one per core but one), REALTIME rtp.realtime
# (default true). Needs root for tcpdump; installs sip-tester and tcpdump from Debian if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
. benches/load_lib.sh
calls=${1:-2000} rate=${2:-200} hold=${3:-40} window=${4:-10}
apt_install sip-tester tcpdump python3
cargo build --release -q

work=$(mktemp -d /tmp/hl-ivrload.XXXXXX)
chmod 755 "$work"
mkdir -p "$work/prompts" "$work/rec"
write_audio "$work" long.wav 90
if [ "${MODE:-ivr}" = bridge ]; then
  cat > "$work/ivr.toml" <<TOML
start = "agent"
[nodes.agent]
type = "transfer"
uri = "sip:agent@127.0.0.1:25080"
TOML
  (cd "$work" && sipp -sf "$OLDPWD/benches/sipp/uas_agent.xml" -i 127.0.0.1 -p 25080 -mp 50000 \
    -rtp_echo -m "$calls" -buff_size 4194304 -nostdin >"$work/agent.out" 2>&1) &
  agent=$!
else
  cat > "$work/ivr.toml" <<TOML
start = "hello"
[nodes.hello]
type = "play"
prompt = { file = "prompts/long.wav" }
next = "wait"
[nodes.wait]
type = "queue"
queue = "general"
TOML
fi
db_line="embedded_dir = \"$work/pg\""
if [ -n "${DATABASE_URL:-}" ]; then
  scratch="hl_bench_$$"
  psql -q "$DATABASE_URL" -c "CREATE DATABASE $scratch"
  db_line="url = \"${DATABASE_URL%/*}/$scratch\""
fi
cat > "$work/hotline.toml" <<TOML
[sip]
listen = "127.0.0.1"
udp_port = 25060
tcp_port = 25060
[rtp]
port_min = 30000
port_max = 39999
media_threads = ${MEDIA_THREADS:-0}
realtime = ${REALTIME:-true}
[http]
listen = "127.0.0.1:28080"
[database]
$db_line
[recordings]
dir = "$work/rec"
enabled = ${RECORD:-true}
[ivr]
script = "$work/ivr.toml"
[log]
level = "warn"
TOML

target/release/hotline --config "$work/hotline.toml" serve 2>"$work/serve.log" &
node=$!
cleanup() {
  [ -n "${agent:-}" ] && kill "$agent" 2>/dev/null || true
  kill "$node" 2>/dev/null || true
  wait "$node" 2>/dev/null || true
  [ -n "${scratch:-}" ] && psql -q "$DATABASE_URL" -c "DROP DATABASE IF EXISTS $scratch WITH (FORCE)" || true
  # Gigabytes of recordings and the capture: kept only with KEEP=1.
  if [ -z "${KEEP:-}" ]; then rm -rf "$work"; fi
}
trap cleanup EXIT
wait_health http://127.0.0.1:28080 || { echo "the node did not start"; exit 1; }
cpu() { proc_cpu "$node"; }
rss() { proc_rss "$node"; }
hz=$(getconf CLK_TCK)
rss0=$(rss)

(cd "$work" && sipp 127.0.0.1:25060 -sf "$OLDPWD/benches/sipp/uac_media_load.xml" -s 12345 \
  -r "$rate" -l "$calls" -m "$calls" -d $((hold * 1000)) -i 127.0.0.1 -p 25070 -mp 40000 \
  -buff_size 4194304 -nostdin -timeout $((hold + calls / rate + 60))s >"$work/sipp.out" 2>&1) &
sipp=$!
# Steady state: every call placed, plus 3 s.
sleep $((calls / rate + 3))
cpu0=$(cpu)
tcpdump -i lo -s 64 -B 131072 -w "$work/engine.pcap" 'udp and src portrange 30000-39999' \
  2>"$work/tcpdump.log" &
dump=$!
sleep "$window"
kill -INT "$dump"; wait "$dump" || true
cpu1=$(cpu)
rss1=$(rss)
live=$(curl -s http://127.0.0.1:28080/metrics | awk '/^hotline_calls_live / {print $2}')
# Who has the CPU in the steady state (threads of every process).
top -b -n 1 -H -w 200 | head -20 >"$work/top.txt"
wait "$sipp" || true
dropped=$(curl -s http://127.0.0.1:28080/metrics | awk '/^hotline_recording_frames_dropped_total/ {print $2}')

echo "calls $calls at $rate/s, each ${hold}s; steady-state window ${window}s"
grep -E "Successful call|Failed call" "$work/sipp.out" | tail -2
if [ -n "${agent:-}" ]; then
  wait "$agent" || true
  echo "agents:"; grep -E "Successful call|Failed call" "$work/agent.out" | tail -2
  t0=$(date +%s)
  while [ "$(find "$work/rec" -name '*.part' | wc -l)" -gt 0 ] && [ $(($(date +%s) - t0)) -lt 120 ]; do
    sleep 1
  done
  echo "recordings: $(find "$work/rec" -name '*.wav' | wc -l) finished (all within $(($(date +%s) - t0)) s of the last call's end), $(find "$work/rec" -name '*.part' | wc -l) unfinished"
fi
echo "calls live in the window: ${live:-?}"
grep -E "packets (captured|received by filter|dropped by kernel)" "$work/tcpdump.log" || true
python3 benches/pcap_pacing.py "$work/engine.pcap" 30000 39999
awk -v a="$cpu0" -v b="$cpu1" -v hz="$hz" -v w="$window" -v n="${live:-$calls}" \
  'BEGIN { s = (b - a) / hz; printf "engine CPU in the window: %.2f s of %d s = %.0f %% of one core; %.1f us per call-second\n", s, w, 100 * s / w, 1e6 * s / w / n }'
awk -v a="$rss0" -v b="$rss1" -v n="${live:-$calls}" \
  'BEGIN { printf "engine RSS: %.1f MiB idle, %.1f MiB with the calls: %.1f KiB per call\n", a / 1024, b / 1024, (b - a) / n }'
echo "recording frames dropped (writer behind): ${dropped:-0}"
echo "busiest threads in the window:"; sed -n '8,16p' "$work/top.txt"
echo "work directory: $work (removed at exit unless KEEP=1)"
