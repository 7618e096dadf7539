# Helpers shared by bench.sh and idle.sh (sourced, not run).

# find_bin NAME: the path of NAME in PATH or in the sbin directories Debian uses.
find_bin() {
	command -v "$1" 2>/dev/null && return 0
	local d
	for d in /usr/sbin /sbin; do
		if [ -x "$d/$1" ]; then
			echo "$d/$1"
			return 0
		fi
	done
	return 1
}

# nginx_pkg: Debian 12 packages the small nginx build as nginx-light; later releases
# ship only nginx. Ask apt which one it knows.
nginx_pkg() {
	if apt-cache show nginx-light >/dev/null 2>&1; then echo nginx-light; else echo nginx; fi
}
