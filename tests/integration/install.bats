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

@test "a program built from the installed header and pkg-config file works against the suite" {
	export PKG_CONFIG_SYSROOT_DIR=$STAGE PKG_CONFIG_PATH=$STAGE/usr/lib/pkgconfig
	flags=$(pkg-config --cflags --libs berth)
	cc -std=c99 -Wall -Werror -o "$STAGE/hello" "$BATS_TEST_DIRNAME/install/hello_libberth.c" $flags \
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
	cc -std=c99 -o "$STAGE/hello-static" "$BATS_TEST_DIRNAME/install/hello_libberth.c" -I"$STAGE/usr/include" \
		"$STAGE/usr/lib/libberth.a" $(pkg-config --libs libzmq libprotobuf-c openssl libsystemd) -lpthread
	run env BERTH_NAMESPACE=inst2 "$STAGE/hello-static"
	assert_success
	assert_output --partial "hello from libberth"
}
