#!/usr/bin/env bash
# The ACD under load (issue 8): AGENTS agents logged in with their phones registered by digest
# (one SIPp UAS answers for all of them, echoing the audio), then CALLS callers at RATE
# calls/s, each streaming G.711 for HOLD seconds. The first AGENTS callers are rung to agents,
# answered, bridged and recorded; the rest wait in the queue hearing music on hold (with a
# place announcement every 30 s). In the steady state the engine's CPU (utime+stime from
# /proc) and resident memory are read over WINDOW seconds, and the ACD snapshot says how many
# wait and how many agents talk.
#
# usage: benches/acd_load.sh [CALLS=700] [AGENTS=200] [RATE=25] [HOLD=90] [WINDOW=15]
# ANNOUNCE sets acd.announce_secs (default 30; 0 none). KEEP=1 keeps the work directory. Needs DATABASE_URL (a PostgreSQL server; a scratch database
# is made and dropped) and installs sip-tester and espeak-ng from Debian if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
. benches/load_lib.sh
calls=${1:-700} agents=${2:-200} rate=${3:-25} hold=${4:-90} window=${5:-15}
: "${DATABASE_URL:?set DATABASE_URL to a PostgreSQL server}"
apt_install sip-tester espeak-ng python3 curl
cargo build --release -q

work=$(mktemp -d /tmp/hl-acdload.XXXXXX)
chmod 755 "$work"
mkdir -p "$work/prompts" "$work/rec"
write_audio "$work" hello.wav 1
cat > "$work/ivr.toml" <<TOML
start = "hello"
[nodes.hello]
type = "play"
prompt = { file = "prompts/hello.wav" }
next = "wait"
[nodes.wait]
type = "queue"
queue = "general"
TOML
scratch="hl_acdbench_$$"
psql -q "$DATABASE_URL" -c "CREATE DATABASE $scratch"
db="${DATABASE_URL%/*}/$scratch"
cat > "$work/hotline.toml" <<TOML
[sip]
listen = "127.0.0.1"
udp_port = 25060
tcp_port = 25060
digest_algorithms = ["MD5"]
[rtp]
port_min = 30000
port_max = 39999
[http]
listen = "127.0.0.1:28080"
[database]
url = "$db"
[recordings]
dir = "$work/rec"
[ivr]
script = "$work/ivr.toml"
[acd]
wrap_up_secs = 0
announce_secs = ${ANNOUNCE:-30}
[log]
level = "warn"
TOML

target/release/hotline --config "$work/hotline.toml" serve 2>"$work/serve.log" &
node=$!
cleanup() {
  [ -n "${phones:-}" ] && kill "$phones" 2>/dev/null || true
  kill "$node" 2>/dev/null || true
  wait "$node" 2>/dev/null || true
  psql -q "$DATABASE_URL" -c "DROP DATABASE IF EXISTS $scratch WITH (FORCE)" || true
  if [ -z "${KEEP:-}" ]; then rm -rf "$work"; fi
}
trap cleanup EXIT
wait_health http://127.0.0.1:28080 || { echo "the node did not start"; exit 1; }

# The agents: one administrator made on the command line, then users, profiles and SIP
# accounts in bulk (every agent shares the administrator's password hash, and SIP password
# "agentpass"), each logged in through the API.
echo "chief's password" | target/release/hotline --config "$work/hotline.toml" user chief --role admin >/dev/null
first=3001 last=$((3000 + agents))
psql -q "$db" <<SQL
INSERT INTO sip_accounts (username, realm, ha1_md5, ha1_sha256)
  SELECT n::text, 'hotline', md5(n || ':hotline:agentpass'),
         encode(sha256(convert_to(n || ':hotline:agentpass', 'UTF8')), 'hex')
  FROM generate_series($first, $last) n;
INSERT INTO users (username, display_name, role, password_hash)
  SELECT 'agent' || n, 'agent ' || n, 'intake', (SELECT password_hash FROM users WHERE username = 'chief')
  FROM generate_series($first, $last) n;
INSERT INTO agent_profiles (user_id, sip_username, queues)
  SELECT id, substr(username, 6), '{general}' FROM users WHERE username LIKE 'agent%';
SQL
sleep 2 # the SIP account cache reloads on the NOTIFY
(cd "$work" && sipp -sf "$OLDPWD/benches/sipp/uas_agent.xml" -i 127.0.0.1 -p 25080 -mp 50000 \
  -rtp_echo -m "$agents" -buff_size 4194304 -nostdin >"$work/phones.out" 2>&1) &
phones=$!
# One SIPp run per agent: SIPp 3.6 does not expand injected fields inside [authentication].
for n in $(seq $first $last); do
  (cd "$work" && sipp 127.0.0.1:25060 -sf "$OLDPWD/tests/sipp/register_contact.xml" -key user "$n" \
    -au "$n" -ap agentpass -key contact_port 25080 -i 127.0.0.1 -p 25090 -m 1 -nostdin \
    -timeout 10s >"$work/register.out" 2>&1) || { echo "agent $n cannot register"; exit 1; }
done
python3 - "$first" "$last" <<'PY'
import json, sys, urllib.request
def post(path, body=None, token=None):
    req = urllib.request.Request("http://127.0.0.1:28080" + path, method="POST",
                                 data=json.dumps(body).encode() if body is not None else None)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    return json.load(urllib.request.urlopen(req))
for n in range(int(sys.argv[1]), int(sys.argv[2]) + 1):
    token = post("/api/auth/login", {"username": f"agent{n}", "password": "chief's password"})["token"]
    post("/api/agents/me/login", token=token)
PY
admin=$(curl -s -X POST -H 'Content-Type: application/json' \
  -d '{"username":"chief","password":"chief'"'"'s password"}' http://127.0.0.1:28080/api/auth/login |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
snapshot() { curl -s -H "Authorization: Bearer $admin" http://127.0.0.1:28080/api/acd/snapshot; }
cpu() { proc_cpu "$node"; }
rss() { proc_rss "$node"; }
hz=$(getconf CLK_TCK)
rss0=$(rss)

(cd "$work" && sipp 127.0.0.1:25060 -sf "$OLDPWD/benches/sipp/uac_media_load.xml" -s 12345 \
  -r "$rate" -l "$calls" -m "$calls" -d $((hold * 1000)) -i 127.0.0.1 -p 25070 -mp 40000 \
  -buff_size 4194304 -nostdin -timeout $((hold + calls / rate + 60))s >"$work/sipp.out" 2>&1) &
sipp=$!
sleep $((calls / rate + 5))
cpu0=$(cpu)
t0=$(date +%s.%N)
sleep "$window"
cpu1=$(cpu)
t1=$(date +%s.%N)
rss1=$(rss)
snap=$(snapshot)
top -b -n 1 -H -w 200 | head -20 >"$work/top.txt"
wait "$sipp" || true
kill "$phones" 2>/dev/null || true
echo "$agents agents, $calls callers at $rate/s, each ${hold}s; steady-state window ${window}s"
grep -E "Successful call|Failed call" "$work/sipp.out" | tail -2
echo "$snap" | python3 -c '
import json, sys
s = json.load(sys.stdin)
q = s["queues"][0]
states = {}
for a in s["agents"]:
    states[a["state"]] = states.get(a["state"], 0) + 1
print("in the window: waiting", q["waiting"], "longest wait", q["longest_wait_secs"], "s; agents", states,
      "; answered today", q["answered_today"])'
awk -v a="$cpu0" -v b="$cpu1" -v hz="$hz" -v t0="$t0" -v t1="$t1" \
  'BEGIN { s = (b - a) / hz; w = t1 - t0; printf "engine CPU in the window: %.2f s of %.1f s = %.0f %% of one core\n", s, w, 100 * s / w }'
awk -v a="$rss0" -v b="$rss1" -v n="$calls" \
  'BEGIN { printf "engine RSS: %.1f MiB with agents logged in, %.1f MiB with the calls: %.1f KiB per call\n", a / 1024, b / 1024, (b - a) / n }'
echo "busiest threads in the window:"; sed -n '8,16p' "$work/top.txt"
echo "work directory: $work (removed at exit unless KEEP=1)"
