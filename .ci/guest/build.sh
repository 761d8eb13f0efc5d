#!/usr/bin/env bash
# Builds the guest that TestRealGuest (guest_test.go) boots under qemu: a
# Debian cloud kernel and a busybox initramfs whose /init, by the kernel
# parameter asr.mode, then powers off:
#
#   asr.mode=write   formats /dev/vda (ext2) and writes a.bin, b.bin and
#                    dir/c.bin, their checksums in SHA256SUMS
#   asr.mode=more    mounts that file system and writes d.bin and dir/e.bin
#                    too, appending their checksums to SHA256SUMS (the
#                    recovered VM's own writes, TestRoundTripGuest)
#   asr.mode=check   mounts it read-only and checks every file in SHA256SUMS
#                    (sha256sum -c: a line "FILE: OK" each)
#
# Each prints the checksums of its files (check: of the three write made)
# as ASR-SUM lines and ends with
# ASR-GUEST-<MODE>-OK (or -FAIL). With asr.hold=1 it stays up, idle, until
# qemu is stopped (TestFailoverGuest's planned failover shuts it down
# through the host driver). Everything lands in CACHE_DIR, outside the
# repository; what exists already is kept, so a second run downloads
# nothing. The initramfs is named after a hash of its /init, modules,
# kernel and busybox, so an edited /init gets a new one, and runs of
# different versions of this script can share CACHE_DIR.
#
#   .ci/guest/build.sh [CACHE_DIR]   # default ${XDG_CACHE_HOME:-$HOME/.cache}/asr-guest
#
# Prints the kernel and initramfs paths as KERNEL=... and INITRD=... lines.
set -euo pipefail

cache=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/asr-guest}
mkdir -p "$cache/debs"
cache=$(cd "$cache" && pwd)

# The virtio drivers are modules in the cloud kernel (ext4, which also
# mounts ext2, is built in); these are loaded by /init with their
# dependencies first.
modules="virtio_pci virtio_blk"

need() { # TOOL:PACKAGE... installs the packages of missing tools
	local missing=
	for t in "$@"; do command -v "${t%%:*}" >/dev/null || missing="$missing ${t#*:}"; done
	if [ -n "$missing" ]; then
		echo "build.sh: installing$missing" >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
	fi
}

download() { # PACKAGE: the .deb of PACKAGE in $cache/debs, fetched once
	local deb
	deb=$(ls "$cache/debs/${1}_"*.deb 2>/dev/null | head -n1 || true)
	if [ -z "$deb" ]; then
		apt-cache show "$1" >/dev/null 2>&1 || apt-get update -qq
		(cd "$cache/debs" && apt-get download -q "$1" >&2)
		deb=$(ls "$cache/debs/${1}_"*.deb | head -n1)
	fi
	echo "$deb"
}

# The kernel: linux-image-cloud-amd64 is a metapackage; take the image it
# depends on.
if [ ! -s "$cache/vmlinuz" ] || [ ! -d "$cache/kernel/lib/modules" ]; then
	apt-cache show linux-image-cloud-amd64 >/dev/null 2>&1 || apt-get update -qq
	pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '$1 == "Depends:" && $2 ~ /^linux-image-.*-cloud-amd64$/ {print $2; exit}')
	[ -n "$pkg" ] || { echo "build.sh: no linux-image-*-cloud-amd64 behind linux-image-cloud-amd64" >&2; exit 1; }
	rm -rf "$cache/kernel"
	dpkg -x "$(download "$pkg")" "$cache/kernel"
	cp "$(ls "$cache"/kernel/boot/vmlinuz-* | head -n1)" "$cache/vmlinuz.tmp"
	mv "$cache/vmlinuz.tmp" "$cache/vmlinuz"
fi

if [ ! -x "$cache/busybox/bin/busybox" ]; then
	rm -rf "$cache/busybox"
	dpkg -x "$(download busybox-static)" "$cache/busybox"
fi

init_script() { # the initramfs's /init
	cat <<'INIT'
#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
exec </dev/console >/dev/console 2>&1
for m in $(cat /lib/modules/order); do insmod /lib/modules/$m.ko || echo "init: insmod $m failed"; done
mode= hold=
for a in $(cat /proc/cmdline); do
	case $a in
	asr.mode=*) mode=${a#asr.mode=} ;;
	asr.hold=1) hold=1 ;;
	esac
done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 200 ]; do usleep 50000; i=$((i + 1)); done

fail() { echo "init: $*"; echo "ASR-GUEST-$1-FAIL"; sync; poweroff -f; }
files="a.bin b.bin dir/c.bin"
more="d.bin dir/e.bin"

case $mode in
write)
	[ -b /dev/vda ] || fail WRITE "no /dev/vda"
	mke2fs -q /dev/vda >/dev/null || fail WRITE mke2fs
	mount -t ext2 /dev/vda /mnt || fail WRITE mount
	mkdir /mnt/dir
	dd if=/dev/urandom of=/mnt/a.bin bs=1M count=4 2>/dev/null || fail WRITE dd
	dd if=/dev/urandom of=/mnt/b.bin bs=4k count=777 2>/dev/null || fail WRITE dd
	dd if=/dev/urandom of=/mnt/dir/c.bin bs=1M count=3 2>/dev/null || fail WRITE dd
	(cd /mnt && sha256sum $files >SHA256SUMS) || fail WRITE sha256sum
	sed 's/^/ASR-SUM /' /mnt/SHA256SUMS
	sync
	umount /mnt || fail WRITE umount
	blockdev --flushbufs /dev/vda
	echo ASR-GUEST-WRITE-OK
	;;
more)
	[ -b /dev/vda ] || fail MORE "no /dev/vda"
	mount -t ext2 /dev/vda /mnt || fail MORE mount
	[ -s /mnt/SHA256SUMS ] || fail MORE "no SHA256SUMS: not a disk asr.mode=write made"
	dd if=/dev/urandom of=/mnt/d.bin bs=1M count=2 2>/dev/null || fail MORE dd
	dd if=/dev/urandom of=/mnt/dir/e.bin bs=1k count=300 2>/dev/null || fail MORE dd
	sums=$(cd /mnt && sha256sum $more) || fail MORE sha256sum
	echo "$sums" >>/mnt/SHA256SUMS || fail MORE SHA256SUMS
	echo "$sums" | sed 's/^/ASR-SUM /'
	sync
	umount /mnt || fail MORE umount
	blockdev --flushbufs /dev/vda
	echo ASR-GUEST-MORE-OK
	;;
check)
	[ -b /dev/vda ] || fail CHECK "no /dev/vda"
	mount -t ext2 -o ro /dev/vda /mnt || fail CHECK mount
	(cd /mnt && sha256sum $files) | sed 's/^/ASR-SUM /'
	if (cd /mnt && sha256sum -c SHA256SUMS); then
		echo ASR-GUEST-CHECK-OK
	else
		echo ASR-GUEST-CHECK-FAIL
	fi
	umount /mnt
	;;
*)
	echo "init: asr.mode=write, asr.mode=more or asr.mode=check, not '$mode'"
	;;
esac
sync
if [ -n "$hold" ]; then
	echo ASR-GUEST-HOLDING
	while :; do sleep 1; done
fi
poweroff -f
INIT
}

# The initramfs, named after a hash of its /init, its modules and the
# kernel and busybox it is made of (a kernel fetched anew needs its own
# modules): built once per version, in a folder and a file of this run's
# own (another run may be building the same one).
key=$( (init_script; echo "$modules"; ls "$cache"/kernel/lib/modules; sha256sum <"$cache/busybox/bin/busybox") | sha256sum | cut -c1-16)
initrd=$cache/initramfs-$key.cpio.gz
if [ ! -s "$initrd" ]; then
	need cpio:cpio gzip:gzip
	root=$cache/initramfs.$$
	rm -rf "$root"
	trap 'rm -rf "$root" "$initrd.$$.tmp"' EXIT
	mkdir -p "$root"/{bin,dev,proc,sys,mnt,lib/modules}
	cp "$cache/busybox/bin/busybox" "$root/bin/busybox"
	for a in $("$root/bin/busybox" --list); do
		[ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"
	done

	# Modules in load order: each after the modules its .modinfo names in
	# depends=.
	moddir=$(ls -d "$cache"/kernel/lib/modules/* | head -n1)
	order=
	add() {
		local m=$1 f d
		case " $order " in *" $m "*) return ;; esac
		f=$(find "$moddir" -name "$m.ko" | head -n1)
		[ -n "$f" ] || { echo "build.sh: module $m not in $moddir" >&2; exit 1; }
		for d in $(tr '\0' '\n' <"$f" | sed -n 's/^depends=//p' | tr ',' ' '); do add "$d"; done
		cp "$f" "$root/lib/modules/$m.ko"
		order="$order $m"
	}
	config=$(ls "$cache"/kernel/boot/config-* | head -n1)
	for m in $modules; do
		opt=CONFIG_$(echo "$m" | tr a-z A-Z)
		if grep -q "^$opt=m" "$config"; then add "$m"; fi
	done
	echo "$order" >"$root/lib/modules/order"

	init_script >"$root/init"
	chmod 755 "$root/init"
	(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -9 >"$initrd.$$.tmp")
	mv "$initrd.$$.tmp" "$initrd"
	rm -rf "$root"
fi

echo "KERNEL=$cache/vmlinuz"
echo "INITRD=$initrd"
