#!/usr/bin/env bash
# A throw-away Samba AD domain controller on its own loopback address, for the AD tests and
# for trying the AD path of the demo by hand. Debian only; needs root (Samba binds 389/636).
#
#   samba-dc.sh install   install Debian's samba packages when missing (non-interactive)
#   samba-dc.sh start     install, provision once, start, wait until an LDAPS bind works,
#                         then write the connection details to $SAMBA_DC_ENV_FILE
#   samba-dc.sh stop      stop the DC (its whole process group); the domain is kept
#   samba-dc.sh status    exit 0 when the DC runs
#   samba-dc.sh purge     stop and delete the domain (the next start provisions a new one)
#   samba-dc.sh replicate (a joined DC only) pull the domain partition both ways between this DC
#                         and the one it joined, now; see "Replication" below
#
# Settings (environment, all optional):
#   SAMBA_DC_IP        loopback address to listen on (default 127.0.0.77; anything in
#                      127.0.0.0/8 works without touching lo, so several DCs can coexist)
#   SAMBA_DC_DIR       domain + runtime state (default /var/tmp/jitadmin-samba-dc-$SAMBA_DC_IP)
#   SAMBA_DC_ENV_FILE  where to write the connection details (default <repo>/.run/samba-dc.env)
#   SAMBA_DC_REALM     DNS domain / Kerberos realm (default PEDROAVIARY.LOCAL)
#   SAMBA_DC_DOMAIN    NetBIOS domain (default PEDROAVIARY)
#   SAMBA_DC_TIMEOUT   seconds to wait for LDAPS after starting (default 60)
#   SAMBA_DC_HOST      NetBIOS name of this DC (default DC1)
#   SAMBA_DC_JOIN_DIR  state directory of a running DC of the domain: instead of provisioning a new
#                      domain, join that one as another writable DC (samba-tool domain join ... DC),
#                      with a certificate from the same test CA. A join is redone when the first DC
#                      was provisioned anew.
#
# Replication: Samba replicates between DCs on its own only with Kerberos and DNS (its drepl
# service binds with krb5 to <NTDS GUID>._msdcs.<forest>); these DCs have neither (no DNS
# backend, no KDC), so a joined DC receives changes only when "replicate" is run. Tests use that to
# play the replication schedule: a DC that has not replicated yet is exactly a remote site's DC.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IP=${SAMBA_DC_IP:-127.0.0.77}
DIR=${SAMBA_DC_DIR:-/var/tmp/jitadmin-samba-dc-$IP}
ENV_FILE=${SAMBA_DC_ENV_FILE:-$ROOT/.run/samba-dc.env}
REALM=${SAMBA_DC_REALM:-PEDROAVIARY.LOCAL}
DOMAIN=${SAMBA_DC_DOMAIN:-PEDROAVIARY}
TIMEOUT=${SAMBA_DC_TIMEOUT:-60}
HOST=${SAMBA_DC_HOST:-DC1}
JOIN_DIR=${SAMBA_DC_JOIN_DIR:-}
# Bump when the provisioning below changes, so an older kept domain is provisioned anew.
LAYOUT=1

CONF=$DIR/etc/smb.conf
PIDFILE=$DIR/run/samba.pid
LOG=$DIR/log/samba.log
PY=/usr/bin/python3 # Debian's, which samba-tool needs too; never a venv's
PACKAGES=(samba samba-dsdb-modules samba-vfs-modules samba-ad-provision openssl python3)
realm_lc=${REALM,,}
FQDN="${HOST,,}.$realm_lc"
BASE_DN="DC=${realm_lc//./,DC=}"
ADMIN_UPN="Administrator@$realm_lc"
# cldap and rpc let another DC join this one and pull changes from it (DRS over RPC); they are
# given at start, so a domain provisioned with "ldap" alone gets them at its next start.
SERVICES="ldap, cldap, rpc"

log() { printf '[samba-dc %s] %s\n' "$(date +%T)" "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

need_root() { [ "$(id -u)" = 0 ] || die "needs root (Samba binds ports 389 and 636)"; }

install_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  need_root
  local t0 alog=/tmp/jitadmin-samba-dc.apt.log
  t0=$(now)
  log "installing ${missing[*]}"
  # Debian's maintainer scripts would start smbd/nmbd: forbid that unless the image already does.
  local added_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    added_policy=1
  fi
  local opts=(-y -q --no-install-recommends -o DPkg::Lock::Timeout=600)
  export DEBIAN_FRONTEND=noninteractive
  local ok=0
  # A fresh machine has no (or stale) package lists: update, then try once more.
  if apt-get install "${opts[@]}" "${missing[@]}" >"$alog" 2>&1; then
    ok=1
  elif apt-get update -q -o DPkg::Lock::Timeout=600 >>"$alog" 2>&1 &&
    apt-get install "${opts[@]}" "${missing[@]}" >>"$alog" 2>&1; then
    ok=1
  fi
  [ "$added_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
  [ "$ok" = 1 ] || {
    tail -20 "$alog" >&2
    die "apt-get install failed (log: $alog)"
  }
  log "packages installed in $(since "$t0") s"
}

make_certificates() {
  # Our own CA and a server certificate naming the DC's FQDN and IP: clients verify it like a
  # customer's DC certificate, and Samba skips generating a 4096-bit RSA key at first start.
  local d=$DIR/tls
  mkdir -p "$d"
  if [ -n "$JOIN_DIR" ]; then
    # One CA for the domain, as with AD CS: a client trusting it verifies every DC.
    cp "$JOIN_DIR/tls/ca.pem" "$JOIN_DIR/tls/ca.key" "$d/"
  else
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
    -subj "/CN=jitadmin test CA $REALM" -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
  fi
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$FQDN" \
    -keyout "$d/key.pem" -out "$d/server.csr" 2>/dev/null
  printf '%s\n' "subjectAltName=DNS:$FQDN,IP:$IP" "basicConstraints=CA:FALSE" \
    "keyUsage=digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" >"$d/ext.cnf"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
    -days 3650 -extfile "$d/ext.cnf" -out "$d/cert.pem" 2>/dev/null
  chmod 600 "$d/key.pem" "$d/ca.key" # Samba refuses a key others can read
}

# What a kept state directory must match to be reused: a joined DC also names the domain it
# joined (the first DC's password file is new with every provision of that domain).
marker() {
  if [ -n "$JOIN_DIR" ]; then
    echo "$LAYOUT $IP $REALM joined $(sha256sum <"$JOIN_DIR/admin.pass" | cut -c1-16)"
  else
    echo "$LAYOUT $IP $REALM"
  fi
}

join_domain() {
  [ -s "$JOIN_DIR/admin.pass" ] && [ -s "$JOIN_DIR/etc/smb.conf" ] ||
    die "SAMBA_DC_JOIN_DIR=$JOIN_DIR is not the state directory of a provisioned DC"
  local first_ip
  first_ip=$(sed -n 's/^\s*interfaces = \([0-9.]*\)\/.*/\1/p' "$JOIN_DIR/etc/smb.conf")
  [ -n "$first_ip" ] || die "no interfaces line in $JOIN_DIR/etc/smb.conf"
  # A join needs the first DC's RPC endpoint mapper (DRS); a DC started by an older version of
  # this script runs LDAP alone.
  (exec 3<>"/dev/tcp/$first_ip/135") 2>/dev/null ||
    die "the DC at $first_ip does not answer RPC on port 135: restart it with this script (stop, then start) so it runs '$SERVICES', then start this DC again"
  stop_dc
  rm -rf "$DIR"
  mkdir -p "$DIR"/{etc,run,log}
  chmod 700 "$DIR"
  (
    umask 077
    cp "$JOIN_DIR/admin.pass" "$DIR/admin.pass"
    echo "$first_ip" >"$DIR/joined.ip"
    echo "$JOIN_DIR" >"$DIR/joined.dir"
  )
  make_certificates
  local t0 attempt
  t0=$(now)
  # The first DC may have been started a moment ago; a refused connection is worth a retry.
  for attempt in 1 2 3; do
    log "joining $REALM at $first_ip as $HOST (attempt $attempt)"
    rm -rf "$DIR/private" "$DIR/state" "$DIR/cache" "$DIR/etc/smb.conf"
    # The workgroup must be the domain's: NTLM for another workgroup goes to winbind, which a
    # DC without it answers with NO_LOGON_SERVERS.
    if samba-tool domain join "$realm_lc" DC -s /dev/null --targetdir="$DIR" \
      --server="$first_ip" -U "$DOMAIN\\Administrator%$(cat "$DIR/admin.pass")" \
      --use-kerberos=off --dns-backend=NONE \
      --option="workgroup=$DOMAIN" --option="realm=$REALM" --option="netbios name=$HOST" \
      --option="interfaces=$IP/8" --option="bind interfaces only=yes" \
      --option="server services=ldap" \
      --option="pid directory=$DIR/run" --option="ncalrpc dir=$DIR/run/ncalrpc" \
      --option="winbindd socket directory=$DIR/run/winbindd" \
      --option="ntp signd socket directory=$DIR/run/ntp_signd" \
      --option="log file=$LOG" --option="max log size=10000" \
      >"$DIR/log/join.log" 2>&1; then
      break
    fi
    [ "$attempt" = 3 ] && {
      grep -v '^\s' "$DIR/log/join.log" | tail -15 >&2
      die "samba-tool domain join failed 3 times (log: $DIR/log/join.log)"
    }
    sleep 2
  done
  # What provision takes as --option, written after the join (which writes smb.conf itself).
  sed -i "/^\[global\]/a\\\ttls enabled = yes\n\ttls keyfile = $DIR/tls/key.pem\n\ttls certfile = $DIR/tls/cert.pem\n\ttls cafile = $DIR/tls/ca.pem\n\tldap server require strong auth = yes" "$CONF"
  log "joined in $(since "$t0") s"
}

provision() {
  if [ "$(cat "$DIR/.provisioned" 2>/dev/null)" = "$(marker)" ]; then return 0; fi
  if [ -n "$JOIN_DIR" ]; then
    join_domain
    finish_setup
    return 0
  fi
  stop_dc
  rm -rf "$DIR"
  mkdir -p "$DIR"/{etc,run,log}
  chmod 700 "$DIR"
  # Random, and meets AD complexity (upper, lower, digit, symbol).
  local pass
  pass="Jit1-$(head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24)"
  (
    umask 077
    printf '%s' "$pass" >"$DIR/admin.pass"
  )
  make_certificates
  local t0
  t0=$(now)
  log "provisioning $REALM in $DIR"
  # -s /dev/null: ignore Debian's /etc/samba/smb.conf. Every path below $DIR, so this DC never
  # collides with another one (or with a system Samba) except through its address.
  if ! samba-tool domain provision -s /dev/null --targetdir="$DIR" \
    --realm="$REALM" --domain="$DOMAIN" --host-name="$HOST" --host-ip="$IP" \
    --server-role=dc --dns-backend=NONE --adminpass="$pass" \
    --option="interfaces=$IP/8" --option="bind interfaces only=yes" \
    --option="server services=ldap" \
    --option="pid directory=$DIR/run" --option="ncalrpc dir=$DIR/run/ncalrpc" \
    --option="winbindd socket directory=$DIR/run/winbindd" \
    --option="ntp signd socket directory=$DIR/run/ntp_signd" \
    --option="log file=$LOG" --option="max log size=10000" \
    --option="tls enabled=yes" --option="tls keyfile=$DIR/tls/key.pem" \
    --option="tls certfile=$DIR/tls/cert.pem" --option="tls cafile=$DIR/tls/ca.pem" \
    --option="ldap server require strong auth=yes" \
    >"$DIR/log/provision.log" 2>&1; then
    tail -25 "$DIR/log/provision.log" >&2
    die "provision failed (log: $DIR/log/provision.log)"
  fi
  finish_setup
  log "provisioned in $(since "$t0") s"
}

finish_setup() {
  # Samba accepts the previous password for 60 minutes after a reset by default; a revocation
  # test must see it fail at once. (Given to provision as --option, a 0 is silently dropped.)
  sed -i '/^\[global\]/a\\told password allowed period = 0' "$CONF"
  [ "$(samba-tool testparm -s "$CONF" --suppress-prompt \
    --parameter-name='old password allowed period' 2>/dev/null | tail -1)" = 0 ] ||
    die "could not set 'old password allowed period = 0' in $CONF"
  # The default policy expires passwords after 42 days; a kept domain would lock us out.
  samba-tool user setexpiry Administrator --noexpiry -s "$CONF" >>"$DIR/log/provision.log" 2>&1 ||
    die "could not make the Administrator password non-expiring"
  marker >"$DIR/.provisioned"
}

running_pid() {
  [ -s "$PIDFILE" ] || return 1
  local pid
  pid=$(tr -dc 0-9 <"$PIDFILE")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -q samba "/proc/$pid/comm" 2>/dev/null ||
    return 1
  echo "$pid"
}

stop_dc() {
  [ -s "$PIDFILE" ] || return 0
  local pid i
  pid=$(tr -dc 0-9 <"$PIDFILE")
  # samba is a session leader (pgid == pid): signal the whole group, or pre-fork children of a
  # failed start stay behind holding the ports.
  if [ -n "$pid" ] && pgrep -g "$pid" >/dev/null 2>&1; then
    kill -TERM -- "-$pid" 2>/dev/null || true
    for i in $(seq 1 100); do
      pgrep -g "$pid" >/dev/null 2>&1 || break
      sleep 0.1
    done
    if pgrep -g "$pid" >/dev/null 2>&1; then
      log "still running after 10 s: SIGKILL"
      kill -KILL -- "-$pid" 2>/dev/null || true
      for i in $(seq 1 50); do
        pgrep -g "$pid" >/dev/null 2>&1 || break
        sleep 0.1
      done
    fi
    log "stopped (pid $pid)"
  fi
  rm -f "$PIDFILE"
}

port_taken() { (exec 3<>"/dev/tcp/$IP/$1") 2>/dev/null; }

probe() {
  # A verified TLS handshake (our CA, the IP in the certificate) and an Administrator simple
  # bind, in Debian's python3 standard library: no ldap client package needed.
  DC_IP=$IP DC_CA=$DIR/tls/ca.pem DC_USER=$ADMIN_UPN DC_PASS_FILE=$DIR/admin.pass "$PY" - <<'EOF'
import os, socket, ssl, sys

def tlv(tag: int, value: bytes) -> bytes:
    n = len(value)
    size = bytes([n]) if n < 128 else bytes([0x82]) + n.to_bytes(2, "big")
    return bytes([tag]) + size + value

password = open(os.environ["DC_PASS_FILE"], "rb").read()
bind = tlv(0x60, tlv(0x02, b"\x03") + tlv(0x04, os.environ["DC_USER"].encode()) + tlv(0x80, password))
context = ssl.create_default_context(cafile=os.environ["DC_CA"])
try:
    with socket.create_connection((os.environ["DC_IP"], 636), timeout=3) as raw:
        with context.wrap_socket(raw, server_hostname=os.environ["DC_IP"]) as tls:
            tls.sendall(tlv(0x30, tlv(0x02, b"\x01") + bind))
            reply = tls.recv(4096)
except OSError as error:
    sys.exit(f"{type(error).__name__}: {error}")
def read(buf: bytes, at: int) -> tuple[int, int]:
    """Skip one tag + length; return (start of the value, end of the value)."""
    size, at = buf[at + 1], at + 2
    if size & 0x80:
        count = size & 0x7F
        size, at = int.from_bytes(buf[at:at + count], "big"), at + count
    return at, at + size

try:  # LDAPMessage { messageID, BindResponse { resultCode, ... } }
    body, _ = read(reply, 0)
    _, after_id = read(reply, body)
    response, _ = read(reply, after_id)
    code_at, _ = read(reply, response)
    code = reply[code_at]
except IndexError:
    code = -1
sys.exit(0 if code == 0 else f"bind result {code}")
EOF
}

start_dc() {
  if running_pid >/dev/null; then return 0; fi
  stop_dc # clears a stale pid file and the orphans of a failed start
  if port_taken 636 || port_taken 389; then
    die "$IP:389/636 is taken by another server; choose another SAMBA_DC_IP"
  fi
  local t0 i err=""
  t0=$(now)
  samba -s "$CONF" --option="server services=$SERVICES" # daemonizes; exits 0 even when the
  # daemon dies right after, so poll
  for i in $(seq 1 $((TIMEOUT * 10))); do
    if err=$(probe 2>&1); then
      log "LDAPS bind works $(since "$t0") s after start (pid $(cat "$PIDFILE"))"
      return 0
    fi
    if [ "$i" -gt 20 ] && ! running_pid >/dev/null; then
      tail -20 "$LOG" >&2
      stop_dc
      die "samba exited (log: $LOG)"
    fi
    sleep 0.1
  done
  tail -20 "$LOG" >&2
  stop_dc
  die "no LDAPS bind after ${TIMEOUT} s: $err"
}

replicate() {
  # Pull the domain partition with DRS (NTLM, no Kerberos needed), each way written straight into
  # the receiving DC's database by samba-tool --local: what Samba's drepl would do on its schedule.
  [ -s "$DIR/joined.ip" ] || die "replicate: $DIR is not a joined DC (see SAMBA_DC_JOIN_DIR)"
  local first_ip first_dir direction=${1:-both} creds
  first_ip=$(cat "$DIR/joined.ip")
  first_dir=$(cat "$DIR/joined.dir")
  creds="$DOMAIN\\Administrator%$(cat "$DIR/admin.pass")"
  pull() { # into the DC whose smb.conf is $1, from $3
    local out
    out=$(samba-tool drs replicate "$2" "$3" "$BASE_DN" --local -s "$1" -U "$creds" \
      --use-kerberos=off 2>&1) || {
      printf '%s\n' "$out" | grep -v '^\s' | tail -5 >&2
      die "replication from $3 to $2 failed"
    }
  }
  case "$direction" in
  both | here) pull "$CONF" "$IP" "$first_ip" ;;&
  both | first) pull "$first_dir/etc/smb.conf" "$first_ip" "$IP" ;;
  here) ;;
  *) die "replicate: both, here (from the first DC to this one) or first (the other way)" ;;
  esac
}

write_env() {
  mkdir -p "$(dirname "$ENV_FILE")"
  (
    umask 077
    cat >"$ENV_FILE" <<EOF
# Written by scripts/samba-dc.sh; the tests read it. Test-only credentials.
SAMBA_DC_IP=$IP
SAMBA_DC_DIR=$DIR
SAMBA_DC_URL=ldaps://$IP:636
SAMBA_DC_FQDN=$FQDN
SAMBA_DC_REALM=$REALM
SAMBA_DC_BASE_DN=$BASE_DN
SAMBA_DC_ADMIN_UPN=$ADMIN_UPN
SAMBA_DC_ADMIN_PASSWORD_FILE=$DIR/admin.pass
SAMBA_DC_CA_FILE=$DIR/tls/ca.pem
SAMBA_DC_SMB_CONF=$CONF
SAMBA_DC_JOINED_IP=$(cat "$DIR/joined.ip" 2>/dev/null || true)
EOF
  )
}

case "${1:-}" in
install) install_packages ;;
start)
  need_root
  T0=$(now)
  install_packages
  provision
  start_dc
  write_env
  log "ready in $(since "$T0") s at ldaps://$IP:636 ($REALM); details in $ENV_FILE"
  ;;
stop)
  stop_dc
  rm -f "$ENV_FILE"
  ;;
status)
  if pid=$(running_pid); then echo "running (pid $pid) at ldaps://$IP:636"; else
    echo "not running"
    exit 1
  fi
  ;;
replicate)
  need_root
  replicate "${2:-both}"
  ;;
purge)
  stop_dc
  rm -rf "$DIR"
  rm -f "$ENV_FILE"
  ;;
*)
  echo "usage: $0 install|start|stop|status|purge|replicate [both|here|first]" >&2
  exit 2
  ;;
esac
