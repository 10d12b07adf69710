# Postern build. Sources are discovered, so a new file needs no Makefile edit:
#   common/*.c                -> $(BUILD)/libpostern.a
#   DIR/*.c except DIR/main.c -> $(BUILD)/DIR/libDIR.a   (so tests and fuzzers can link a daemon's logic)
#   DIR/main.c                -> $(BUILD)/bin/DIR        (cli/ builds "postern"; sendmail/mailq/newaliases link to it)
#   tests/unit/test_*.c       -> $(BUILD)/tests/test_*   (cmocka)
#   tests/fuzz/fuzz_*.c       -> build-fuzz/fuzz_*       (libFuzzer, clang)

BUILD    ?= build
PREFIX   ?= /usr/local
DESTDIR  ?=
CC       ?= cc
PKGS     := openssl libcares lmdb libevent libidn2
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -levent_openssl -lcrypt -lz

WARN     := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-format-nonliteral -Wvla
HARDEN   := -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE
OPT      ?= -O2 -g
SAN      ?=
CPPFLAGS += -D_GNU_SOURCE -Icommon -MMD -MP
CFLAGS   += -std=c11 $(OPT) $(WARN) $(HARDEN) $(SAN) $(PKG_CFLAGS)
LDFLAGS  += -pie -Wl,-z,relro,-z,now $(SAN)
LDLIBS   += $(PKG_LIBS)

DAEMONS  := master smtpd qmgr smtp local pop3d imapd auth
PROGDIRS := $(DAEMONS) cli
progname  = $(if $(filter cli,$(1)),postern,$(1))

COMMON_SRC := $(wildcard common/*.c)
COMMON_OBJ := $(COMMON_SRC:%.c=$(BUILD)/%.o)
LIBCOMMON  := $(BUILD)/libpostern.a

# Directories that have a main.c become programs; the rest of their .c files form lib<dir>.a.
PROGS    := $(foreach d,$(PROGDIRS),$(if $(wildcard $(d)/main.c),$(BUILD)/bin/$(call progname,$(d))))
DIRLIBS  := $(foreach d,$(PROGDIRS),$(if $(filter-out $(d)/main.c,$(wildcard $(d)/*.c)),$(BUILD)/$(d)/lib$(d).a))
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNITS    := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)

.PHONY: all asan test unit integration fuzz fuzz-build fuzz-targets deps run install uninstall clean check-deps
.DEFAULT_GOAL := all

all: check-deps $(PROGS) $(UNITS)

check-deps:
	@pkg-config --exists $(PKGS) cmocka || { echo "missing build dependencies: run 'make deps' (as root) first" >&2; exit 1; }

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(LIBCOMMON): $(COMMON_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

define dirlib_rule
$(BUILD)/$(1)/lib$(1).a: $(patsubst %.c,$(BUILD)/%.o,$(filter-out $(1)/main.c,$(wildcard $(1)/*.c)))
	@mkdir -p $$(@D)
	rm -f $$@ && ar rcs $$@ $$^
endef
$(foreach d,$(PROGDIRS),$(eval $(call dirlib_rule,$(d))))

define prog_rule
$(BUILD)/bin/$(call progname,$(1)): $(BUILD)/$(1)/main.o $(filter $(BUILD)/$(1)/lib$(1).a,$(DIRLIBS)) $(LIBCOMMON)
	@mkdir -p $$(@D)
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach d,$(PROGDIRS),$(if $(wildcard $(d)/main.c),$(eval $(call prog_rule,$(d)))))

# sendmail-compatible personalities of the CLI binary
ifneq ($(wildcard cli/main.c),)
all: $(BUILD)/bin/sendmail $(BUILD)/bin/mailq $(BUILD)/bin/newaliases
$(BUILD)/bin/sendmail $(BUILD)/bin/mailq $(BUILD)/bin/newaliases: $(BUILD)/bin/postern
	ln -sf postern $@
endif

# postern.conf(5): the written page with the parameter list of common/params.c put in, so it cannot drift.
MANGEN := $(BUILD)/man/postern.conf.5
all: $(MANGEN)
$(MANGEN): docs/man/postern.conf.5.in docs/man/params.awk $(BUILD)/bin/postern
	@mkdir -p $(@D)
	$(BUILD)/bin/postern config params | awk -f docs/man/params.awk > $@.list
	sed -e '/^\.\\" @PARAMETERS@/r $@.list' -e '/^\.\\" @PARAMETERS@/d' docs/man/postern.conf.5.in > $@
	rm -f $@.list

# Unit tests link every daemon library (static: only what a test uses is pulled in) and cmocka.
$(BUILD)/tests/test_%: $(BUILD)/tests/unit/test_%.o $(DIRLIBS) $(LIBCOMMON)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $< $(DIRLIBS) $(LIBCOMMON) $(LDLIBS) -lcmocka

# ASan+UBSan: the same tree into its own directory.
asan:
	$(MAKE) BUILD=build-asan OPT="-O1 -g" HARDEN="-fPIE" \
		SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" all

# libFuzzer targets, built with clang into build-fuzz/ (the whole tree is instrumented, not only the target).
FUZZ_BINS := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)
fuzz-build:
	$(MAKE) BUILD=build-fuzz CC=clang OPT="-O1 -g" HARDEN="-fPIE" \
		SAN="-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer" fuzz-targets

fuzz-targets: $(FUZZ_BINS)

$(BUILD)/fuzz/fuzz_%: $(BUILD)/tests/fuzz/fuzz_%.o $(DIRLIBS) $(LIBCOMMON)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $< $(DIRLIBS) $(LIBCOMMON) $(LDLIBS)

# Micro-benchmarks of the MIME parser and the IMAP index, never built by "all" (bench/micro runs them for
# docs/PERFORMANCE.md).
MICRO_BINS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/micro_*.c))
.PHONY: bench-micro
bench-micro: check-deps $(MICRO_BINS)

$(BUILD)/bench/micro_%: $(BUILD)/bench/micro_%.o $(LIBCOMMON)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

FUZZ_SECONDS ?= 60
fuzz: fuzz-build
	tests/fuzz/run build-fuzz/fuzz $(FUZZ_SECONDS)

test: all
	tests/run

unit: all
	tests/run unit

deps:
	tests/deps

# As root, the daemons of ./run run as nobody when nobody can reach this directory, else as root (with a warning).
run: all
	@test -d run || { \
		if [ "$$(id -u)" = 0 ] && runuser -u nobody -- test -x $(CURDIR) 2>/dev/null; then \
			$(BUILD)/bin/postern init $(CURDIR)/run --dev --user nobody; \
		else $(BUILD)/bin/postern init $(CURDIR)/run; fi; }
	$(BUILD)/bin/postern start -c $(CURDIR)/run --foreground

# make install: programs, man pages, the systemd unit, reference copies of conf/ in share/postern, and the
# sendmail/mailq/newaliases links where other programs look for them (/usr/sbin, /usr/bin) unless another mail
# system's files are there. As root on the real system (no DESTDIR) it then does what a package's postinst does:
# creates user postern and runs `postern init --system`, which makes whatever of /etc/postern and
# /var/spool/postern is missing and never rewrites an existing file. A package (DESTDIR) leaves that to the
# systemd unit, which runs the same command before every start. INIT_FLAGS go to that first init (e.g.
# INIT_FLAGS="--hostname mail.example.org").
SYSLINKS := /usr/sbin/sendmail /usr/sbin/mailq /usr/sbin/newaliases /usr/bin/mailq /usr/bin/newaliases
SHAREDIR := $(PREFIX)/share/postern
UNITDIR  ?= /lib/systemd/system
INIT_FLAGS ?=

install: all
	install -d $(DESTDIR)$(PREFIX)/libexec/postern $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(SHAREDIR) \
		$(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/share/man/man8 \
		$(DESTDIR)$(UNITDIR) $(DESTDIR)/usr/sbin $(DESTDIR)/usr/bin
	for p in $(filter-out $(BUILD)/bin/postern,$(PROGS)); do install -m 0755 $$p $(DESTDIR)$(PREFIX)/libexec/postern/; done
	install -m 0755 $(BUILD)/bin/postern $(DESTDIR)$(PREFIX)/sbin/postern
	for l in sendmail mailq newaliases; do ln -sf postern $(DESTDIR)$(PREFIX)/sbin/$$l; done
	@for l in $(SYSLINKS); do t=$(DESTDIR)$$l; \
		if [ ! -e $$t ] && [ ! -L $$t ] || [ "$$(readlink $$t)" = postern ] || \
		   [ "$$(readlink $$t)" = $(PREFIX)/sbin/postern ]; then \
			echo "ln -sf $(PREFIX)/sbin/postern $$t"; ln -sf $(PREFIX)/sbin/postern $$t; \
		else echo "warning: $$t belongs to another mail system: left alone (remove that package, or" \
			"ln -sf $(PREFIX)/sbin/postern $$l)" >&2; fi; done
	for f in conf/*.cf; do install -m 0644 $$f $(DESTDIR)$(SHAREDIR)/; done
	for m in docs/man/*.[158] $(MANGEN); do [ -f "$$m" ] && install -m 0644 $$m $(DESTDIR)$(PREFIX)/share/man/man$${m##*.}/ || true; done
	sed 's|@PREFIX@|$(PREFIX)|g' conf/postern.service.in > $(DESTDIR)$(UNITDIR)/postern.service
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then \
		if ! getent passwd postern >/dev/null; then \
			echo "useradd --system postern"; \
			useradd --system --user-group --home-dir /var/spool/postern --no-create-home \
				--shell /usr/sbin/nologin postern || exit 1; fi; \
		$(PREFIX)/sbin/postern init --system $(INIT_FLAGS) || exit 1; \
	else echo "not root or DESTDIR set: run 'postern init --system' as root on the target (the systemd unit does)"; fi

# Removes what install made; never the configuration, the queue, mail or the postern user.
uninstall:
	rm -rf $(DESTDIR)$(PREFIX)/libexec/postern $(DESTDIR)$(SHAREDIR)
	rm -f $(DESTDIR)$(PREFIX)/sbin/postern $(DESTDIR)$(PREFIX)/sbin/sendmail $(DESTDIR)$(PREFIX)/sbin/mailq \
		$(DESTDIR)$(PREFIX)/sbin/newaliases $(DESTDIR)$(UNITDIR)/postern.service
	@for l in $(SYSLINKS); do t=$(DESTDIR)$$l; \
		if [ "$$(readlink $$t)" = $(PREFIX)/sbin/postern ]; then echo "rm -f $$t"; rm -f $$t; fi; done
	rm -f $(patsubst docs/man/%,$(DESTDIR)$(PREFIX)/share/man/man1/%,$(wildcard docs/man/*.1)) \
		$(patsubst docs/man/%,$(DESTDIR)$(PREFIX)/share/man/man5/%,$(wildcard docs/man/*.5)) \
		$(patsubst docs/man/%,$(DESTDIR)$(PREFIX)/share/man/man8/%,$(wildcard docs/man/*.8)) \
		$(DESTDIR)$(PREFIX)/share/man/man5/postern.conf.5
	@echo "kept: /etc/postern, /var/spool/postern (queue and mail), the postern user"

clean:
	rm -rf build build-asan build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
