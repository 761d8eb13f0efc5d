#!/usr/bin/env bash
# Starts (or stops) a libvirtd with its qemu driver for the libvirt host
# driver's tests, as root, without systemd and without KVM (domains of type
# qemu run under TCG).
#
#   eval "$(.ci/libvirt/libvirtd.sh start)"   # prints export ASR_LIBVIRT_URI=...
#   .ci/libvirt/libvirtd.sh stop              # ends only the daemons it started
#
# It installs Debian's libvirt-daemon, its qemu driver and virsh when
# missing. Debian's qemu driver runs guests as the user libvirt-qemu, which
# only libvirt-daemon-system (systemd units, polkit, ...) would create, and
# the driver refuses to start without it even when told otherwise: the
# script creates that user and group, and writes a qemu.conf (only when
# none exists) that runs guests as root with no security driver, since no
# AppArmor or SELinux runs here. virtlogd, which libvirtd asks to write console logs, is started
# too. PIDs go to $ASR_LIBVIRT_DIR (default /tmp/asr-libvirt).
set -euo pipefail
dir=${ASR_LIBVIRT_DIR:-/tmp/asr-libvirt}
uri=qemu:///system

stop() {
	for d in libvirtd virtlogd; do
		[ -f "$dir/$d.pid" ] || continue
		pid=$(<"$dir/$d.pid")
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		rm -f "$dir/$d.pid"
	done
}

case ${1:-} in
stop) stop; exit 0 ;;
start) ;;
*) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac

if ! command -v libvirtd >/dev/null || ! command -v virsh >/dev/null || [ ! -e /usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so ]; then
	echo "libvirtd.sh: installing libvirt" >&2
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients >/dev/null
fi
getent group libvirt-qemu >/dev/null || groupadd -r libvirt-qemu
getent passwd libvirt-qemu >/dev/null || useradd -r -M -g libvirt-qemu -s /usr/sbin/nologin libvirt-qemu
[ -e /etc/libvirt/qemu.conf ] || printf 'user = "root"\ngroup = "root"\nsecurity_driver = "none"\nremember_owner = 0\n' >/etc/libvirt/qemu.conf
mkdir -p "$dir" /var/log/libvirt /var/run/libvirt /var/lib/libvirt/qemu /var/cache/libvirt

if ! timeout 5 virsh -q -c "$uri" version >/dev/null 2>&1; then
	virtlogd -d -p "$dir/virtlogd.pid"
	libvirtd -d -p "$dir/libvirtd.pid"
	for _ in $(seq 100); do
		timeout 5 virsh -q -c "$uri" version >/dev/null 2>&1 && break
		sleep 0.2
	done
	if ! timeout 5 virsh -q -c "$uri" version >/dev/null 2>&1; then
		echo "libvirtd.sh: libvirtd does not answer on $uri; see /var/log/libvirt/libvirtd.log" >&2
		tail -5 /var/log/libvirt/libvirtd.log >&2 || true
		stop
		exit 1
	fi
fi
echo "libvirtd.sh: libvirtd answers on $uri" >&2
echo "export ASR_LIBVIRT_URI=$uri"
