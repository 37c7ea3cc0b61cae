# Common functions of the kernel-matrix harness (tests/vm/*.sh source this).
# shellcheck shell=bash
#
# Kernels are Debian packages, downloaded with `apt-get download` from the
# mirror the host's apt already uses and unpacked with `dpkg -x` (never
# installed) into $VM_CACHE/kernels/PACKAGE. $VM_CACHE/NAME (5.10, 6.1, 6.12)
# is a symlink to the unpacked package the matrix uses for that name.

VM_CACHE=${VM_CACHE:-/var/cache/meshlens-vm}
VM_KERNELS=${VM_KERNELS:-"5.10 6.1 6.12"}
# shellcheck disable=SC2034  # used by the scripts that source this
VM_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

vm_log() { echo "vm: $*" >&2; }
vm_die() { echo "vm: error: $*" >&2; exit 1; }

# vm_matrix NAME: "DIST META SUFFIX" for a kernel name of the matrix.
# DIST is the Debian release, META the meta package whose dependency names
# the current kernel package, SUFFIX a variant of that name to prefer when
# the mirror has it.
vm_matrix() {
	case $1 in
	5.10) echo "bullseye linux-image-amd64 -" ;;
	6.1) echo "bookworm linux-image-amd64 -" ;;
	6.12) echo "bookworm linux-image-6.12-amd64 -unsigned" ;;
	*) return 1 ;;
	esac
}

# vm_mirrors: sets VM_MIRROR (Debian's archive) and VM_SECURITY_MIRROR (its
# security archive, may be empty) from the host's apt configuration, both
# one-line and deb822 sources, unless the caller set them.
vm_mirrors() {
	local codename targets
	[ -n "${VM_MIRROR:-}" ] && return 0
	codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
	# shellcheck disable=SC2016  # $(FIELD) is apt's syntax, not the shell's
	targets=$(apt-get indextargets --format '$(RELEASE) $(REPO_URI)' 2>/dev/null | sort -u)
	VM_MIRROR=$(awk -v r="$codename" '$1 == r { print $2; exit }' <<<"$targets")
	VM_SECURITY_MIRROR=${VM_SECURITY_MIRROR-$(awk -v r="$codename-security" '$1 == r { print $2; exit }' <<<"$targets")}
	[ -n "$VM_MIRROR" ] ||
		vm_die "no Debian mirror for '$codename' in the host's apt sources; set VM_MIRROR=http://HOST/debian"
	VM_MIRROR=${VM_MIRROR%/}
	VM_SECURITY_MIRROR=${VM_SECURITY_MIRROR%/}
}

# vm_apt DIST CMD ARGS...: apt-get/apt-cache CMD against DIST only, with a
# private sources list, lists and cache under $VM_CACHE/apt/DIST, so the
# host's apt configuration and state are neither used nor touched.
vm_apt() {
	local dist=$1 tool=$2 d=$VM_CACHE/apt/$1
	shift 2
	mkdir -p "$VM_CACHE/apt/none"
	"$tool" -q \
		-o Dir::Etc::sourcelist="$d/sources.list" -o Dir::Etc::sourceparts=- \
		-o Dir::State::Lists="$d/lists" -o Dir::Cache="$d/cache" \
		-o Dir::Etc::preferences=/dev/null -o Dir::Etc::preferencesparts="$VM_CACHE/apt/none" \
		-o APT::Sandbox::User=root "$@"
}

# vm_apt_setup DIST: write DIST's private sources list, update its lists once
# (again when VM_REFRESH=1 or the lists are older than a day).
vm_apt_setup() {
	local dist=$1 d=$VM_CACHE/apt/$1 key=/usr/share/keyrings/debian-archive-keyring.gpg opt=""
	vm_mirrors
	mkdir -p "$d/lists/partial" "$d/cache/archives/partial"
	[ -r "$key" ] && opt="[signed-by=$key] "
	{
		echo "deb $opt$VM_MIRROR $dist main"
		echo "deb $opt$VM_MIRROR $dist-updates main"
		[ -z "$VM_SECURITY_MIRROR" ] || echo "deb $opt$VM_SECURITY_MIRROR $dist-security main"
	} >"$d/sources.list.new"
	if ! cmp -s "$d/sources.list.new" "$d/sources.list" 2>/dev/null; then
		mv "$d/sources.list.new" "$d/sources.list"
		rm -f "$d/updated"
	else
		rm -f "$d/sources.list.new"
	fi
	if [ "${VM_REFRESH:-0}" = 1 ] || [ -z "$(find "$d/updated" -mmin -1440 2>/dev/null)" ]; then
		vm_log "apt-get update ($dist, private lists in $d)"
		vm_apt "$dist" apt-get update >&2 || vm_die "apt-get update for $dist failed"
		touch "$d/updated"
	fi
}

# vm_kernel_version DIR: the kernel release unpacked in DIR
vm_kernel_version() {
	local k
	for k in "$1"/boot/vmlinuz-*; do
		[ -e "$k" ] && { echo "${k##*/vmlinuz-}"; return 0; }
	done
	return 1
}

# vm_unpack PACKAGE DIST: download PACKAGE and unpack it into
# $VM_CACHE/kernels/PACKAGE, run depmod; skipped when already done.
vm_unpack() {
	local pkg=$1 dist=$2 dir=$VM_CACHE/kernels/$1 tmp
	[ -e "$dir/.unpacked" ] && return 0
	tmp=$(mktemp -d "$VM_CACHE/kernels/.tmp.XXXXXX")
	vm_log "downloading $pkg ($dist)"
	# a subshell, so that the temporary directory goes on every way out
	(
		trap 'rm -rf "$tmp"' EXIT
		cd "$tmp" || exit 1
		vm_apt "$dist" apt-get download "$pkg" >&2 || vm_die "apt-get download $pkg failed"
		deb=$(ls "$tmp"/*.deb) && mkdir root && dpkg -x "$deb" root || vm_die "dpkg -x $deb failed"
		# bookworm's packages put modules in /lib, later ones in /usr/lib
		if [ ! -d root/lib/modules ] && [ -d root/usr/lib/modules ]; then
			ln -s usr/lib root/lib
		fi
		ver=$(vm_kernel_version root) || vm_die "$pkg has no boot/vmlinuz-*"
		[ -d "root/lib/modules/$ver" ] || vm_die "$pkg has no lib/modules/$ver"
		depmod -b root "$ver" || vm_die "depmod -b $tmp/root $ver failed"
		dpkg-deb -f "$deb" Package Version >root/.package
		rm -rf "$dir" && mv root "$dir" && echo "$ver" >"$dir/.unpacked" || exit 1
		vm_log "unpacked $pkg: kernel $ver in $dir"
	) || exit 1
}

# vm_fetch NAME: make sure kernel NAME of the matrix is unpacked; prints its
# directory. Nothing is downloaded when $VM_CACHE/NAME is already there,
# unless VM_REFRESH=1 (then the current package is looked up again).
vm_fetch() {
	local name=$1 dist meta suffix pkg link=$VM_CACHE/$1
	read -r dist meta suffix <<<"$(vm_matrix "$name")" ||
		vm_die "unknown kernel '$name' (known: 5.10 6.1 6.12, or a directory)"
	if [ "${VM_REFRESH:-0}" != 1 ] && [ -e "$link/.unpacked" ]; then
		readlink -f "$link"
		return 0
	fi
	command -v depmod >/dev/null || vm_die "depmod missing (apt-get install kmod; see deploy/install-deps.sh)"
	mkdir -p "$VM_CACHE/kernels"
	exec {lockfd}>"$VM_CACHE/.lock"
	flock "$lockfd"
	vm_apt_setup "$dist"
	pkg=$(vm_apt "$dist" apt-cache depends "$meta" 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }')
	[ -n "$pkg" ] || vm_die "$meta in $dist names no linux-image package"
	if [ "$suffix" != - ] && vm_apt "$dist" apt-cache show "$pkg$suffix" >/dev/null 2>&1; then
		pkg=$pkg$suffix
	fi
	vm_unpack "$pkg" "$dist"
	ln -sfn "kernels/$pkg" "$link.new" && mv -T "$link.new" "$link"
	exec {lockfd}>&-
	readlink -f "$link"
}

# vm_kernel_dir NAME_OR_DIR: a directory as given, a name of the matrix fetched
vm_kernel_dir() {
	if [ -d "$1" ] && [ -e "$1/boot" ]; then
		(cd "$1" && pwd)
	else
		vm_fetch "$1"
	fi
}
