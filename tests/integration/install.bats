#!/usr/bin/env bats
# make install into a staging directory, then a program built only from the
# installed header and pkg-config file talks to a running suite.

load helpers

setup_file() {
	suite_setup
	STAGE=$(mktemp -d /tmp/bt-inst.XXXXXX)
	export STAGE
	make -C "$REPO" -s install DESTDIR="$STAGE" PREFIX=/usr >/dev/null
}

teardown_file() {
	rm -rf "$STAGE"
	suite_teardown
}

@test "make install lays out binaries, library, header, pkg-config file and units" {
	for f in usr/bin/berth usr/bin/berth-contentd usr/bin/berth-gatewayd usr/bin/berth-content usr/bin/berth-dev \
		usr/lib/libberth.so.0 usr/lib/libberth.a usr/include/berth/berth.h usr/lib/pkgconfig/berth.pc \
		usr/lib/systemd/system/berth.target usr/lib/systemd/system/berth-contentd.service; do
		[ -e "$STAGE/$f" ] || { echo "missing $f"; false; }
	done
	run grep -h '^ExecStart=' "$STAGE"/usr/lib/systemd/system/*.service
	assert_output --partial "ExecStart=/usr/bin/berth-"
	run grep '^prefix=' "$STAGE/usr/lib/pkgconfig/berth.pc"
	assert_output "prefix=/usr"
}

@test "make install puts a man page for every binary, and bash and zsh completion, under DESTDIR" {
	local b
	for b in "$STAGE"/usr/bin/berth*; do
		b=$(basename "$b")
		ls "$STAGE/usr/share/man/man1/$b.1" "$STAGE/usr/share/man/man8/$b.8" 2>/dev/null | grep -q . ||
			{ echo "no man page for $b"; false; }
	done
	[ -f "$STAGE/usr/share/man/man1/berth.1" ]
	[ -f "$STAGE/usr/share/man/man8/berth-gatewayd.8" ]
	run man -l "$STAGE/usr/share/man/man1/berth.1"
	assert_success
	assert_output --partial "BERTH_NAMESPACE"
	# bash-completion loads a command's file by its name: the debug CLIs share berth's
	for b in berth berth-content berth-snapshot berth-image berth-task; do
		[ -e "$STAGE/usr/share/bash-completion/completions/$b" ] || { echo "no bash completion for $b"; false; }
	done
	run bash -c "source '$STAGE/usr/share/bash-completion/completions/berth' && complete -p berth"
	assert_success
	assert_output --partial "_berth"
	run head -1 "$STAGE/usr/share/zsh/vendor-completions/_berth"
	assert_output --partial "#compdef berth"
}

@test "a program built from the installed header and pkg-config file works against the suite" {
	export PKG_CONFIG_SYSROOT_DIR=$STAGE PKG_CONFIG_PATH=$STAGE/usr/lib/pkgconfig
	flags=$(pkg-config --cflags --libs berth)
	# a sanitizer build's library (make asan) wants its runtime in the program too
	local san=""
	if readelf -d "$STAGE/usr/lib/libberth.so.0" | grep -q 'libasan'; then san="-fsanitize=address,undefined"; fi
	cc -std=c99 -Wall -Werror $san -o "$STAGE/hello" "$BATS_TEST_DIRNAME/install/hello_libberth.c" $flags \
		-Wl,-rpath,"$STAGE/usr/lib"
	run env BERTH_NAMESPACE=inst "$STAGE/hello"
	assert_success
	assert_output --partial "hello from libberth"
	assert_output --partial "sha256:"
	# the header is C++-clean too
	echo '#include <berth/berth.h>
int main() { berth_error e; return berth_client_new(nullptr, &e) ? 0 : 0; }' >"$STAGE/t.cc"
	g++ -std=c++17 -Wall -Werror -fsyntax-only -I"$STAGE/usr/include" "$STAGE/t.cc"
	# the static library needs nothing but its (shared) dependencies
	cc -std=c99 $san -o "$STAGE/hello-static" "$BATS_TEST_DIRNAME/install/hello_libberth.c" -I"$STAGE/usr/include" \
		"$STAGE/usr/lib/libberth.a" $(pkg-config --libs libzmq libprotobuf-c openssl libsystemd) -lpthread
	run env BERTH_NAMESPACE=inst2 "$STAGE/hello-static"
	assert_success
	assert_output --partial "hello from libberth"
}
