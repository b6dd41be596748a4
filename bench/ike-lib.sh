# bench/ike-lib.sh - helpers of the IKE benchmarks (handshake.sh, scale.sh);
# source it after lib.sh. Both implementations get the same workload: PSK,
# IKE aes128gcm16-prfsha256-x25519, ESP aes128gcm16, one Child SA per IKE
# SA, initiator namespace $IKE_A (198.18.1.1) and responder $IKE_B
# (198.18.1.2) joined by a veth pair.
#
# strongSwan (5.9.x charon, as in /work/shared/lab/perf/06_ike_rate.sh):
# kernel-libipsec (userspace ESP, forces UDP encapsulation), one /32 inner
# address per initiator connection, responder "rw" with unique=never,
# dos_protection off, roam events off, driven by bench/cmd/vicibench.
# mifsec: bench/cmd/ikebench on both ends (engine.Engine, real UDP
# transport, null data plane), the responder leasing virtual IPs from a
# pool.

IKE_A=${IKE_A:-mfb-ika}
IKE_B=${IKE_B:-mfb-ikb}
IKE_ADDR_A=198.18.1.1
IKE_ADDR_B=198.18.1.2
IKE_PROP=${IKE_PROP:-aes128gcm16-prfsha256-x25519}
ESP_PROP=${ESP_PROP:-aes128gcm16}
IKE_PSK=ikebench-psk-0123456789abcdef
CHARON=${CHARON:-/usr/lib/ipsec/charon}

# PIN=CPULIST runs every daemon and driver on those CPUs (taskset), e.g.
# PIN=0 puts both ends on one CPU: no wake-up of another CPU per datagram.
pin() { [ -n "${PIN:-}" ] && echo "taskset -c $PIN"; true; }

# ike_build DIR : builds ikebench and vicibench into DIR/bin.
ike_build() {
  mkdir -p "$1/bin"
  go build -o "$1/bin/ikebench" ./bench/cmd/ikebench
  go build -o "$1/bin/vicibench" ./bench/cmd/vicibench
}

# ike_pair : fresh namespaces joined by a veth.
ike_pair() {
  delpair "$IKE_A" "$IKE_B"
  mkpair "$IKE_A" "$IKE_B" "$IKE_ADDR_A/24" "$IKE_ADDR_B/24"
}

# rss_kib PID : VmRSS in KiB.
rss_kib() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }

# anon_kib PID : RssAnon in KiB (VmRSS without the file pages: the
# binary's and libraries' code touched for the first time counts there).
anon_kib() { awk '/^RssAnon:/{print $2}' "/proc/$1/status"; }

# stop_pid PID : SIGTERM and wait (up to 10 s) for the process to go.
stop_pid() {
  local p=$1 i
  kill "$p" 2>/dev/null || return 0
  for i in $(seq 100); do [ -d "/proc/$p" ] || return 0; sleep 0.1; done
  kill -9 "$p" 2>/dev/null || true
}

# --- strongSwan -------------------------------------------------------------

# sw_conf DIR THREADS : strongswan.conf for a charon whose vici socket and
# log live in DIR.
sw_conf() {
  cat > "$1/strongswan.conf" <<EOC
charon {
  load = random nonce openssl aes sha1 sha2 hmac gcm aesni curve25519 kdf pem pkcs1 pubkey x509 kernel-libipsec kernel-netlink socket-default vici
  threads = $2
  # every SA comes from one address: no cookies, no per-IP limits
  dos_protection = no
  cookie_threshold = 1000000
  cookie_threshold_ip = 1000000
  block_threshold = 1000000
  init_limit_half_open = 0
  ikesa_table_size = 4096
  ikesa_table_segments = 16
  # kernel-libipsec adds a route per CHILD_SA; as roam events they would
  # reset IKE SAs still connecting
  plugins { vici { socket = unix://$1/charon.vici }
            kernel-netlink { roam_events = no } }
  filelog { bench { path = $1/charon.log
                    default = 0
                    ike = 1 } }
  syslog { daemon { default = -1 } }
}
EOC
}

# sw_start NS DIR THREADS : starts charon in NS (own mount namespace, /run
# bound to DIR/run for its pid file); sets SW_PID.
sw_start() {
  local ns=$1 d=$2
  mkdir -p "$d/run"
  sw_conf "$d" "$3"
  ip netns exec "$ns" $(pin) unshare -m --propagation private sh -c \
    "mount --bind $d/run /run && exec env STRONGSWAN_CONF=$d/strongswan.conf $CHARON" >"$d/charon.out" 2>&1 &
  SW_PID=$!
  waitfor 10 test -S "$d/charon.vici" || { echo "charon in $ns did not start" >&2; return 1; }
}

swanctl_d() { local d=$1 cmd=$2; shift 2; swanctl "$cmd" --uri "unix://$d/charon.vici" "$@"; }

# sw_addrs FIRST COUNT : the inner addresses, before the charons start
# (kernel-libipsec looks the local address of a selector up in charon's
# address cache: added later, the cache lags behind and policies fail).
sw_addrs() {
  local first=$1 n=$2 i
  ip -n "$IKE_B" addr add 10.75.0.1/32 dev "${IKE_B}v"
  for i in $(seq "$first" $((first + n - 1))); do
    echo "addr add 10.$((76 + i / 62500)).$((i / 250 % 250)).$((i % 250 + 1))/32 dev ${IKE_A}v"
  done | ip -n "$IKE_A" -batch -
}

# sw_responder DIR : loads the responder connection.
sw_responder() {
  local d=$1
  cat > "$d/swanctl.conf" <<EOC
connections { rw { version = 2
  local_addrs = $IKE_ADDR_B
  proposals = $IKE_PROP
  unique = never
  mobike = no
  encap = yes
  local { auth = psk
          id = gw.ikebench }
  remote { auth = psk }
  children { rw { local_ts = 10.75.0.1/32
                  remote_ts = 10.76.0.0/14
                  esp_proposals = $ESP_PROP } } } }
secrets { ike-any { secret = "$IKE_PSK" } }
EOC
  swanctl_d "$d" --load-all --file "$d/swanctl.conf" >"$d/load.out" 2>&1
}

# sw_initiator DIR FIRST COUNT : loads connections cFIRST..c(FIRST+COUNT-1),
# each with its own /32 inner address from sw_addrs (kernel-libipsec wants
# a local address inside the local selector).
sw_initiator() {
  local d=$1 first=$2 n=$3 i last
  last=$((first + n - 1))
  {
    echo "connections {"
    for i in $(seq "$first" "$last"); do
      echo "c$i { version = 2
  local_addrs = $IKE_ADDR_A
  remote_addrs = $IKE_ADDR_B
  proposals = $IKE_PROP
  encap = yes
  mobike = no
  local { auth = psk
          id = c$i.ikebench }
  remote { auth = psk
           id = gw.ikebench }
  children { c$i { local_ts = 10.$((76 + i / 62500)).$((i / 250 % 250)).$((i % 250 + 1))/32
                   remote_ts = 10.75.0.1/32
                   esp_proposals = $ESP_PROP } } }"
    done
    echo "}"
    echo "secrets { ike-any { secret = \"$IKE_PSK\" } }"
  } > "$d/swanctl.conf"
  swanctl_d "$d" --load-all --file "$d/swanctl.conf" >"$d/load.out" 2>&1
}

# --- mifsec ----------------------------------------------------------------

# MF_FLAGS: ikebench flags for every mifsec process (e.g. MF_FLAGS="-memory-trim 0").
# mf_responder DIR [ikebench flags] : starts the responder; sets MF_PID.
mf_responder() {
  local d=$1; shift
  mkdir -p "$d"
  rm -f "$d/ready"
  ip netns exec "$IKE_B" $(pin) "$BIN/ikebench" -role responder -state "$d/state" -ready "$d/ready" \
    -stats "$d/heap.json" -ike "$IKE_PROP" -esp "$ESP_PROP" -psk "$IKE_PSK" ${MF_FLAGS:-} "$@" >"$d/out" 2>"$d/log" &
  MF_PID=$!
  waitfor 20 test -s "$d/ready" || { echo "ikebench responder did not start" >&2; tail -5 "$d/log" >&2; return 1; }
}

# mf_initiator DIR [ikebench flags] : runs an initiator against the
# responder MF_PID, in the foreground; its result line goes to stdout.
mf_initiator() {
  local d=$1; shift
  mkdir -p "$d"
  ip netns exec "$IKE_A" $(pin) "$BIN/ikebench" -role initiator -state "$d/state" -peer "$IKE_ADDR_B" \
    -peer-pid "$MF_PID" -stats "$RESP_DIR/heap.json" -ike "$IKE_PROP" -esp "$ESP_PROP" -psk "$IKE_PSK" ${MF_FLAGS:-} "$@" 2>"$d/log"
}
