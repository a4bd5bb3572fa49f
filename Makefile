# berth — build, test, install.
#
#   make deps      install the Debian packages building and testing need
#   make           build everything into build/ (binaries in build/bin/)
#   make test      unit + integration tests; ends with "N passed, N failed"
#   make asan      the tests again under AddressSanitizer + UBSan (build-asan/)
#   make install   PREFIX (/usr/local) and DESTDIR honoured
#   make bench     benchmarks (bench/), results printed for docs/benchmarks.md
#   make fuzz      short libFuzzer runs of every decoder of untrusted bytes

VERSION    := 0.1.0
PREFIX     ?= /usr/local
DESTDIR    ?=
BUILD      ?= build
CC         ?= cc
SANITIZE   ?=

PKGS := libzmq libprotobuf-c libsodium openssl sqlite3 libsystemd jansson libarchive libcurl libzstd libisal libseccomp

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN    := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-format-nonliteral -Wstrict-prototypes -Wmissing-prototypes -Wvla
ifeq ($(findstring clang,$(shell $(CC) --version 2>/dev/null)),)
WARN    += -Wno-format-truncation
endif
CFLAGS  ?= -O2 -g
ALL_CFLAGS := -std=gnu11 $(WARN) $(CFLAGS) -fPIC -DBERTH_VERSION='"$(VERSION)"' \
	-I$(BUILD)/gen -Icommon -Iclient/include -Iclient -Icli $(PKG_CFLAGS) $(SANITIZE)
ALL_LDFLAGS := $(LDFLAGS) $(SANITIZE) -pthread
LIBS := $(PKG_LIBS) -lpthread -lm

GEN := $(BUILD)/gen
OBJ := $(BUILD)/obj
BIN := $(BUILD)/bin
LIB := $(BUILD)/lib

# --- generated protobuf code -------------------------------------------------
PROTOS     := $(shell find proto -name '*.proto' | sort)
PROTO_C    := $(patsubst proto/%.proto,$(GEN)/%.pb-c.c,$(PROTOS))
PROTO_H    := $(PROTO_C:.c=.h)
PROTO_OBJ  := $(patsubst $(GEN)/%.c,$(OBJ)/gen/%.o,$(PROTO_C))

$(GEN)/%.pb-c.c $(GEN)/%.pb-c.h: proto/%.proto
	@mkdir -p $(GEN)
	protoc-c -Iproto --c_out=$(GEN) $<
# Nothing built is ever deleted as an "intermediate" file: make would
# otherwise remove generated protobuf files and test objects it reached only
# through pattern rules, and the next make (`make install` after `make asan`)
# would rebuild them without the flags they were built with.
.SECONDARY:

# --- objects ----------------------------------------------------------------
$(OBJ)/gen/%.o: $(GEN)/%.c $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Wno-missing-prototypes -MMD -MP -c $< -o $@

$(OBJ)/%.o: %.c $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

COMMON_SRC := $(sort $(wildcard common/*.c))
COMMON_OBJ := $(patsubst %.c,$(OBJ)/%.o,$(COMMON_SRC)) $(PROTO_OBJ)
LIBCOMMON  := $(LIB)/libbtcommon.a

$(LIBCOMMON): $(COMMON_OBJ)
	@mkdir -p $(LIB)
	rm -f $@ && ar rcs $@ $^

# libberth: the client library (static and shared; the shared one carries common/ inside).
CLIENT_SRC := $(sort $(wildcard client/*.c))
CLIENT_OBJ := $(patsubst %.c,$(OBJ)/%.o,$(CLIENT_SRC))
LIBBERTH_A := $(LIB)/libberth.a
LIBBERTH_SO := $(LIB)/libberth.so.0

# The static library carries common/ too, so `-lberth` is all a user links.
$(LIBBERTH_A): $(CLIENT_OBJ) $(COMMON_OBJ)
	@mkdir -p $(LIB)
	rm -f $@ && ar rcs $@ $^

$(LIBBERTH_SO): $(CLIENT_OBJ) $(LIBCOMMON)
	@mkdir -p $(LIB)
	$(CC) -shared -Wl,-soname,libberth.so.0 -o $@ $(CLIENT_OBJ) $(LIBCOMMON) $(ALL_LDFLAGS) $(LIBS)
	ln -sf libberth.so.0 $(LIB)/libberth.so

# The CLI's commands, shared by `berth` and the per-service debug CLIs.
CLI_SRC := $(filter-out cli/main.c,$(sort $(wildcard cli/*.c)))
CLI_OBJ := $(patsubst %.c,$(OBJ)/%.o,$(CLI_SRC))
LIBCLI  := $(LIB)/libbtcli.a

$(LIBCLI): $(CLI_OBJ)
	@mkdir -p $(LIB)
	rm -f $@ && ar rcs $@ $^

# --- daemons and CLIs -----------------------------------------------------------
# A daemon directory holds <prefix>_*.c, main.c and <prefix>_debug.c (its debug CLI).
# svclib: the directory's logic as a library (unit tests link it);
# daemon: that library plus main.c (and $(4), further libraries it needs).
define svclib
$(1)_LIB_SRC := $$(filter-out $(2)/main.c $(2)/%_debug.c,$$(sort $$(wildcard $(2)/*.c)))
$(1)_LIB_OBJ := $$(patsubst %.c,$(OBJ)/%.o,$$($(1)_LIB_SRC))
$(LIB)/lib$(1).a: $$($(1)_LIB_OBJ)
	@mkdir -p $(LIB)
	rm -f $$@ && ar rcs $$@ $$^
DAEMON_LIBS += $(LIB)/lib$(1).a
endef

define daemon
$(call svclib,$(1),$(2))
$(BIN)/$(3): $(OBJ)/$(2)/main.o $(LIB)/lib$(1).a $(4) $(LIBCOMMON)
	@mkdir -p $(BIN)
	$(CC) -o $$@ $$^ $(ALL_LDFLAGS) $(LIBS)
DAEMON_BINS += $(BIN)/$(3)
endef

$(eval $(call daemon,content,content-svc,berth-contentd))
$(eval $(call daemon,snapshot,snapshot-svc,berth-snapshotd))
# the gateway's collector asks the services through libberth
$(eval $(call daemon,gateway,gateway,berth-gatewayd,$(LIBBERTH_A)))
# the image service talks to content and snapshots as a client of libberth
$(eval $(call daemon,image,image-svc,berth-imaged,$(LIBBERTH_A)))
# the task service asks the snapshotters for mounts through libberth
$(eval $(call daemon,task,task-svc,berth-taskd,$(LIBBERTH_A)))

# berth-shim runs once per container: it links libc, protobuf-c and the few
# common/ objects it uses, never libzmq, sqlite or openssl (see docs/tasks.md).
$(eval $(call svclib,shim,shim))
SHIM_COMMON := $(addprefix $(OBJ)/common/,bt_err.o bt_util.o bt_ident.o bt_seqrpc.o bt_shimstate.o) \
	$(OBJ)/gen/berth/rpc/v1/rpc.pb-c.o $(OBJ)/gen/berth/shim/v1/shim.pb-c.o
SHIM_LIBS := $(LDFLAGS) $(SANITIZE) -Wl,--as-needed $(shell pkg-config --libs libprotobuf-c 2>/dev/null || echo -lprotobuf-c)

$(BIN)/berth-shim: $(OBJ)/shim/main.o $(LIB)/libshim.a $(SHIM_COMMON)
	@mkdir -p $(BIN)
	$(CC) -o $@ $^ $(SHIM_LIBS)

$(BIN)/berth-shim-ctl: $(OBJ)/shim/shim_debug.o $(SHIM_COMMON)
	@mkdir -p $(BIN)
	$(CC) -o $@ $^ $(SHIM_LIBS)

$(BIN)/berth: $(OBJ)/cli/main.o $(LIBCLI) $(LIBBERTH_A) $(LIBCOMMON)
	@mkdir -p $(BIN)
	$(CC) -o $@ $^ $(ALL_LDFLAGS) $(LIBS)

$(BIN)/berth-image: $(OBJ)/image-svc/image_debug.o $(LIBCLI) $(LIBBERTH_A) $(LIBCOMMON)
	@mkdir -p $(BIN)
	$(CC) -o $@ $^ $(ALL_LDFLAGS) $(LIBS)

$(BIN)/berth-task: $(OBJ)/task-svc/task_debug.o $(LIBCLI) $(LIBBERTH_A) $(LIBCOMMON)
	@mkdir -p $(BIN)
	$(CC) -o $@ $^ $(ALL_LDFLAGS) $(LIBS)

$(BIN)/berth-content: $(OBJ)/content-svc/content_debug.o $(LIBCLI) $(LIBBERTH_A) $(LIBCOMMON)
	@mkdir -p $(BIN)
	$(CC) -o $@ $^ $(ALL_LDFLAGS) $(LIBS)

$(BIN)/berth-snapshot: $(OBJ)/snapshot-svc/snap_debug.o $(LIBCLI) $(LIBBERTH_A) $(LIBCOMMON)
	@mkdir -p $(BIN)
	$(CC) -o $@ $^ $(ALL_LDFLAGS) $(LIBS)

$(BIN)/berth-dev: deploy/dev/berth-dev
	@mkdir -p $(BIN)
	install -m 0755 $< $@

BINS := $(DAEMON_BINS) $(BIN)/berth $(BIN)/berth-content $(BIN)/berth-snapshot $(BIN)/berth-image $(BIN)/berth-dev $(BIN)/berth-task
BINS += $(BIN)/berth-shim $(BIN)/berth-shim-ctl

all: $(BINS) $(LIBBERTH_SO) $(LIBBERTH_A) tests-build
.DEFAULT_GOAL := all

# --- tests -------------------------------------------------------------------
UNIT_SRC  := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))

# Unit tests may include a service's own headers to test its logic.
TEST_CFLAGS := $(addprefix -I,content-svc snapshot-svc image-svc task-svc gateway shim)
$(OBJ)/tests/%.o: tests/%.c $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(TEST_CFLAGS) -Wno-missing-prototypes -MMD -MP -c $< -o $@

$(BUILD)/tests/%: $(OBJ)/tests/unit/%.o $(DAEMON_LIBS) $(LIBBERTH_A) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $< -Wl,--start-group $(DAEMON_LIBS) $(LIBBERTH_A) $(LIBCOMMON) -Wl,--end-group $(ALL_LDFLAGS) $(LIBS) -lcmocka

TOOL_SRC  := $(sort $(wildcard tests/tools/*.c))
TOOL_BINS := $(patsubst tests/tools/%.c,$(BUILD)/tests/tools/%,$(TOOL_SRC))

$(BUILD)/tests/tools/%: $(OBJ)/tests/tools/%.o $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $< $(LIBCOMMON) $(ALL_LDFLAGS) $(LIBS)

BENCH_SRC  := $(sort $(wildcard bench/*.c))
BENCH_BINS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))

$(BUILD)/bench/%: $(OBJ)/bench/%.o $(LIBBERTH_A) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $< $(LIBBERTH_A) $(LIBCOMMON) $(ALL_LDFLAGS) $(LIBS)

tests-build: $(UNIT_BINS) $(TOOL_BINS) $(BENCH_BINS)

test: all image
	BUILD=$(BUILD) tests/run.sh

# Sanitizer tier: a separate tree, same tests.
asan:
	$(MAKE) BUILD=build-asan SANITIZE="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" CFLAGS="-O1 -g" all image
	BUILD=build-asan ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 tests/run.sh

# The demo's image, made from busybox-static.
image: $(BUILD)/images/busybox.tar
$(BUILD)/images/busybox.tar: deploy/dev/busybox-image.sh tests/images/fixtures.sh
	deploy/dev/busybox-image.sh $@

# The README's main job.
demo: all image
	BUILD=$(BUILD) deploy/dev/demo.sh

bench: all
	BUILD=$(BUILD) bench/run.sh

FUZZ_TIME ?= 60
fuzz:
	BUILD=$(BUILD) FUZZ_TIME=$(FUZZ_TIME) tests/fuzz/run.sh

# --- install -----------------------------------------------------------------
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include/berth \
		$(DESTDIR)$(PREFIX)/lib/systemd/system
	install -m 0755 $(filter-out $(BIN)/berth-dev,$(BINS)) $(DESTDIR)$(PREFIX)/bin/
	install -m 0755 $(BIN)/berth-dev $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 $(LIBBERTH_A) $(DESTDIR)$(PREFIX)/lib/
	install -m 0755 $(LIBBERTH_SO) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libberth.so.0 $(DESTDIR)$(PREFIX)/lib/libberth.so
	install -m 0644 client/include/berth/*.h $(DESTDIR)$(PREFIX)/include/berth/
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' client/berth.pc.in \
		> $(DESTDIR)$(PREFIX)/lib/pkgconfig/berth.pc
	install -d $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man8 \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions $(DESTDIR)$(PREFIX)/share/zsh/vendor-completions
	install -m 0644 $(wildcard docs/man/*.1) $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 0644 $(wildcard docs/man/*.8) $(DESTDIR)$(PREFIX)/share/man/man8/
	install -m 0644 deploy/completion/berth.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/berth
	for c in berth-content berth-snapshot berth-image berth-task; do \
		ln -sf berth $(DESTDIR)$(PREFIX)/share/bash-completion/completions/$$c; done
	install -m 0644 deploy/completion/_berth $(DESTDIR)$(PREFIX)/share/zsh/vendor-completions/_berth
	for u in deploy/systemd/*.service deploy/systemd/*.target deploy/systemd/*.socket; do \
		[ -e "$$u" ] || continue; \
		sed 's|@BINDIR@|$(PREFIX)/bin|g' $$u > $(DESTDIR)$(PREFIX)/lib/systemd/system/$$(basename $$u); \
	done

# --- set-up --------------------------------------------------------------------
# Everything building, testing and benchmarking need, from Debian 12.
DEB_BUILD := build-essential clang pkg-config protobuf-c-compiler libprotobuf-c-dev libzmq3-dev \
	libsodium-dev libarchive-dev libcurl4-openssl-dev libssl-dev libsqlite3-dev libseccomp-dev \
	libsystemd-dev libjansson-dev libisal-dev libzstd-dev libcmocka-dev libclang-rt-14-dev
DEB_TEST  := bats bats-assert bats-support runc crun containerd docker-registry skopeo umoci \
	busybox-static iproute2 util-linux procps psmisc tmux bsdextrautils debootstrap systemd \
	hyperfine curl sqlite3 jq python3 apache2-utils isal groff-base man-db zsh
deps:
	@missing=$$(dpkg-query -W -f='$${db:Status-Abbrev} $${Package}\n' $(DEB_BUILD) $(DEB_TEST) 2>/dev/null \
		| awk '$$1 != "ii" {print $$2}'; \
		for p in $(DEB_BUILD) $(DEB_TEST); do dpkg-query -W $$p >/dev/null 2>&1 || echo $$p; done); \
	missing=$$(echo $$missing | tr ' ' '\n' | sort -u | tr '\n' ' '); \
	if [ -n "$$(echo $$missing | tr -d ' ')" ]; then \
		echo "installing: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "deps: all present"; fi

clean:
	rm -rf build build-asan

.PHONY: all deps test asan bench fuzz install clean tests-build demo image

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
