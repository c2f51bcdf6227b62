#!/bin/sh
# The demo server behind `make run`: makes a state under ./run/ if there
# is none (config, self-signed certificate, domain example.test, account
# demo@example.test with a generated password), then runs posternd in
# the foreground until Ctrl-C or SIGTERM.  Run as root from the top of
# the tree, after the build.  A second run reuses the state and password.
#
# Knobs, for tests: POSTERN_RUN_DIR (instead of ./run), POSTERN_BUILD
# (instead of ./build), and POSTERN_RUN_SMTP_PORT,
# POSTERN_RUN_SUBMISSION_PORT, POSTERN_RUN_SUBMISSIONS_PORT,
# POSTERN_RUN_IMAP_PORT, POSTERN_RUN_IMAPS_PORT, used only
# when the config is first written.
set -eu

ROOT=$(pwd -P)
BUILD=${POSTERN_BUILD:-${BUILD:-build}}
case $BUILD in
/*)	;;
*)	BUILD=$ROOT/$BUILD ;;
esac
POSTERND=$BUILD/posternd
POSTERNCTL=$BUILD/posternctl

RUN=${POSTERN_RUN_DIR:-$ROOT/run}
mkdir -p "$RUN"
RUN=$(cd "$RUN" && pwd -P)
CONF=$RUN/postern.conf
SOCK=$RUN/postern.sock
SECRET=$RUN/demo.secret
DEMO=demo@example.test
START_TIMEOUT=${POSTERN_START_TIMEOUT:-30}

SMTP_PORT=${POSTERN_RUN_SMTP_PORT:-2525}
SUBMISSION_PORT=${POSTERN_RUN_SUBMISSION_PORT:-2587}
SUBMISSIONS_PORT=${POSTERN_RUN_SUBMISSIONS_PORT:-2465}
IMAP_PORT=${POSTERN_RUN_IMAP_PORT:-2143}
IMAPS_PORT=${POSTERN_RUN_IMAPS_PORT:-2993}

say() {
	echo "run: $*" >&2
}

die() {
	say "$*"
	exit 1
}

[ "$(id -u)" = 0 ] || die "must run as root (posternd binds, chroots and drops privileges)"
[ -x "$POSTERND" ] || die "$POSTERND missing: run make first"
[ -x "$POSTERNCTL" ] || die "$POSTERNCTL missing: run make first"

for user in _postern _posterns; do
	if ! getent passwd "$user" >/dev/null; then
		say "creating system user $user"
		useradd --system --no-create-home --home-dir /nonexistent \
		    --shell /usr/sbin/nologin "$user"
	fi
done

if [ ! -f "$RUN/server.crt" ] || [ ! -f "$RUN/server.key" ]; then
	say "making a self-signed certificate for mail.example.test"
	(umask 077 && openssl req -x509 -newkey rsa:2048 -nodes \
	    -keyout "$RUN/server.key" -out "$RUN/server.crt" -days 3650 \
	    -subj "/CN=mail.example.test" \
	    -addext "subjectAltName=DNS:mail.example.test,DNS:localhost,IP:127.0.0.1" \
	    2>/dev/null) || die "openssl failed to make a certificate"
	chmod 0644 "$RUN/server.crt"
fi

# The empty chroot must be root's and writable by root only.
mkdir -p "$RUN/empty"
chown root:root "$RUN/empty"
chmod 0755 "$RUN/empty"

if [ ! -f "$CONF" ]; then
	say "writing $CONF"
	cat >"$CONF" <<EOF
# Postern demo configuration, written by mk/run.sh.  See postern.conf(5).
hostname "mail.example.test"
state directory "$RUN/state"
empty directory "$RUN/empty"
control socket "$SOCK"
user "_postern"
storage user "_posterns"
certificate "$RUN/server.crt"
key "$RUN/server.key"

domain "example.test"

listen on 127.0.0.1 port $SMTP_PORT smtp
listen on 127.0.0.1 port $SUBMISSION_PORT submission
listen on 127.0.0.1 port $SUBMISSIONS_PORT submissions
listen on 127.0.0.1 port $IMAP_PORT imap
listen on 127.0.0.1 port $IMAPS_PORT imaps
EOF
	# The other protocols get their listener here once their role
	# is built: jmap on 8080 and dav on 8008 (the fixed demo ports),
	# e.g.
	#	listen on 127.0.0.1 port 8080 jmap
	# and the "how to connect" text below gains a line for each.
fi

"$POSTERND" -n -f "$CONF" || die "$CONF is not valid"

ctl() {
	"$POSTERNCTL" -s "$SOCK" "$@"
}

pid=
# Stops posternd, if it runs, and waits for it; sets rc to its status.
stop_posternd() {
	rc=0
	[ -n "$pid" ] || return 0
	say "stopping posternd"
	kill -TERM "$pid" 2>/dev/null || true
	wait "$pid" || rc=$?
	pid=
}
# Ctrl-C, SIGTERM or a hangup: stop posternd and exit with its status.
on_signal() {
	trap - INT TERM HUP
	stop_posternd
	exit "$rc"
}
# A step that failed after the start must not leave posternd behind.
on_exit() {
	status=$?
	trap - EXIT
	stop_posternd
	exit "$status"
}
trap on_exit EXIT
trap on_signal INT TERM HUP

# posternd gets its own session, so a Ctrl-C reaches only this script,
# which asks the parent to stop, rather than every role at once.
setsid "$POSTERND" -d -f "$CONF" &
pid=$!

waited=0
until ctl show status >/dev/null 2>&1; do
	kill -0 "$pid" 2>/dev/null || {
		rc=0
		wait "$pid" || rc=$?
		pid=
		die "posternd exited with status $rc while starting"
	}
	[ "$waited" -lt $((START_TIMEOUT * 10)) ] ||
	    die "posternd did not answer on $SOCK"
	sleep 0.1
	waited=$((waited + 1))
done

new_password() {
	head -c 48 /dev/urandom | base64 | tr -d '+/=\n' | cut -c 1-16
}

save_secret() {
	(umask 077 && printf '%s\n' "$1" >"$SECRET.tmp")
	mv "$SECRET.tmp" "$SECRET"
}

accounts=$(ctl account list) || die "posternctl account list failed"
if ! printf '%s\n' "$accounts" | grep -qx "$DEMO"; then
	# A kept secret outlives a state that was removed.
	if [ -s "$SECRET" ]; then
		password=$(cat "$SECRET")
	else
		password=$(new_password)
	fi
	printf '%s\n' "$password" | ctl account add "$DEMO" >/dev/null ||
	    die "could not create $DEMO"
	save_secret "$password"
	say "created account $DEMO"
elif [ ! -s "$SECRET" ]; then
	password=$(new_password)
	printf '%s\n' "$password" | ctl account passwd "$DEMO" >/dev/null ||
	    die "could not set a new password for $DEMO"
	save_secret "$password"
	say "$SECRET was missing: gave $DEMO a new password"
fi
chmod 0600 "$SECRET"
password=$(cat "$SECRET")

# What listens, as the config says: "listen on ADDR port N KIND".
listeners=$(awk '$1 == "listen" && $2 == "on" && $4 == "port" {
	how = ""
	if ($6 == "submission") how = " (STARTTLS)"
	if ($6 == "submissions") how = " (TLS)"
	if ($6 == "imap") how = " (STARTTLS)"
	if ($6 == "imaps") how = " (TLS)"
	printf "  %-12s %s port %s%s\n", $6, $3, $5, how
}' "$CONF")
SUBMISSION_PORT=$(awk '$1 == "listen" && $6 == "submission" {
	print $5; exit }' "$CONF")
IMAPS_PORT=$(awk '$1 == "listen" && $6 == "imaps" { print $5; exit }' \
    "$CONF")
# A config written by an older run.sh may have no imaps listener.
imap_hint=
if [ -n "$IMAPS_PORT" ]; then
	imap_hint="  Read it over IMAP with TLS (any client; or OpenSSL's):
    openssl s_client -quiet -connect 127.0.0.1:$IMAPS_PORT
    a LOGIN $DEMO $password
"
fi

cat <<EOF

Postern demo is running (posternd pid $pid).  Ctrl-C stops it.

  domain       example.test
  account      $DEMO
  password     $password
               (kept in $SECRET)

$listeners
  certificate  $RUN/server.crt (self-signed)

  Send yourself a message:
    swaks --server 127.0.0.1:$SUBMISSION_PORT --tls \\
        --auth-user $DEMO --auth-password '$password' \\
        --from $DEMO --to $DEMO
${imap_hint}  Control it from another terminal:
    $POSTERNCTL -s $SOCK show status

EOF

rc=0
wait "$pid" || rc=$?
# Back from wait without a signal (on_signal exits): posternd stopped
# by itself, through posternctl stop or because a role died.
pid=
say "posternd exited with status $rc"
exit "$rc"
