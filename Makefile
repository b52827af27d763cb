# sluice build.  GNU make: nothing to install beyond the compiler, and the whole
# project is one binary plus a test binary and fuzz targets.
#
#   make              build/sluice
#   make test         unit + integration tests (tests/run)
#   make asan         build-asan/sluice and build-asan/sluice-test with ASan+UBSan
#   make fuzz         clang libFuzzer targets in build-fuzz/
#   make tsan         build-tsan/ with ThreadSanitizer, then the runner's tests under it
#                     (scripts/tsan: fails on any report)
#   make lint         scripts/lint (banned libc calls) and clang-format check
#   make man          man pages in $(BUILD)/man, generated from the --help text
#   make install      PREFIX=/usr/local DESTDIR=: binary, systemd unit, man pages,
#                     documentation and an example configuration

CC      ?= cc
BUILD   ?= build
VERSION := $(shell cat VERSION)
PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
MANDIR  ?= $(PREFIX)/share/man
DOCDIR  ?= $(PREFIX)/share/doc/sluice
UNITDIR ?= $(PREFIX)/lib/systemd/system
PKGS    := sqlite3 libpq libcrypto jansson libmicrohttpd libzstd liblzma libcurl
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   := $(shell pkg-config --libs $(PKGS))
OPT     ?= -O2
WARN    := -Wall -Wextra -Werror -Wno-unused-parameter -Wshadow -Wstrict-prototypes -Wvla -Wno-format-truncation
CFLAGS  += -std=c17 $(OPT) -g $(WARN) -D_GNU_SOURCE -DSLUICE_VERSION='"$(VERSION)"' -Isrc $(PKG_CFLAGS) -pthread $(EXTRA_CFLAGS)
LDLIBS  += $(PKG_LIBS) -lbz2 -pthread -lm

LIB_SRC  := $(sort $(filter-out src/cli/main.c,$(wildcard src/*/*.c)))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
# The dashboard's files (src/http/static/), built into the binary as byte arrays.
HTTP_STATIC := $(sort $(wildcard src/http/static/*))
LIB_OBJ  += $(BUILD)/gen/http_static.o
MAIN_OBJ := $(BUILD)/src/cli/main.o
TEST_SRC := $(sort $(wildcard tests/*/*.c) tests/test.c)
TEST_SRC := $(filter-out tests/fuzz/%,$(TEST_SRC))
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/%.o)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)

all: $(BUILD)/sluice $(BUILD)/sluice-test

$(BUILD)/sluice: $(MAIN_OBJ) $(LIB_OBJ)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS) $(EXTRA_LDFLAGS)

$(BUILD)/sluice-test: $(TEST_OBJ) $(LIB_OBJ)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS) $(EXTRA_LDFLAGS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests -MMD -MP -c -o $@ $<

$(BUILD)/gen/http_static.c: scripts/embed.sh $(HTTP_STATIC) src/http/static
	@mkdir -p $(dir $@)
	sh scripts/embed.sh $@ $(HTTP_STATIC)

$(BUILD)/gen/http_static.o: $(BUILD)/gen/http_static.c
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

-include $(LIB_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(MAIN_OBJ:.o=.d)

asan:
	$(MAKE) BUILD=build-asan OPT=-O1 \
	  EXTRA_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	  EXTRA_LDFLAGS="-fsanitize=address,undefined"

tsan:
	scripts/tsan

# libFuzzer targets (clang); each also replays tests/fuzz/corpus/<name>/ in the test suite.
fuzz:
	@mkdir -p build-fuzz
	for f in $(FUZZ_SRC); do n=$$(basename $$f .c); \
	  clang -std=c17 -O1 -g -D_GNU_SOURCE -Isrc $(PKG_CFLAGS) -fsanitize=fuzzer,address,undefined \
	    -o build-fuzz/$$n $$f $(LIB_SRC) $(LDLIBS) || exit 1; done

# Man pages: `sluice --man-page NAME` prints one (NAME from `sluice --man-page`).
man: $(BUILD)/sluice
	@mkdir -p $(BUILD)/man
	for p in $$($(BUILD)/sluice --man-page); do \
	  $(BUILD)/sluice --man-page $$p >$(BUILD)/man/$$p.$$(case $$p in *.conf) echo 5;; *) echo 1;; esac) || exit 1; done

install: $(BUILD)/sluice man
	install -D -m 0755 $(BUILD)/sluice $(DESTDIR)$(BINDIR)/sluice
	install -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5
	install -m 0644 $(BUILD)/man/*.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 $(BUILD)/man/*.5 $(DESTDIR)$(MANDIR)/man5/
	install -d $(DESTDIR)$(UNITDIR)
	sed 's|/usr/local/bin/sluice|$(BINDIR)/sluice|g' contrib/sluice.service \
	  >$(DESTDIR)$(UNITDIR)/sluice.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/sluice.service
	install -D -m 0644 contrib/sluice.sysusers.conf $(DESTDIR)$(PREFIX)/lib/sysusers.d/sluice.conf
	install -D -m 0644 contrib/sluice.conf $(DESTDIR)$(DOCDIR)/sluice.conf.example
	install -m 0644 docs/OPERATING.md README.md LICENSE $(DESTDIR)$(DOCDIR)/

test: all
	BUILD=$(BUILD) tests/run

lint:
	scripts/lint

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan build-fuzz build-tsan

.PHONY: all asan fuzz tsan test lint format clean man install
