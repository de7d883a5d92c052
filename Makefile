# pgbr - one entry point: make, make check, make check-asan, make demo,
# make demo-stop, make bench, make bench-proxy,
# make bench-backup, make bench-incremental.
#
# `make` builds bin/pgbr. Generated grammar sources go to $(BUILD)/grammar and
# are never committed. `make check` and `make demo` first run
# contrib/install-deps.sh, which installs any missing Debian package.

BUILD    ?= build
BIN      ?= bin
SANITIZE ?=
CC       ?= cc
BISON    ?= bison
FLEX     ?= flex

PKGS     := libpq libevent libevent_openssl libevent_pthreads openssl jansson libzstd
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

OPT      ?= -O2
CFLAGS_COMMON = $(CFLAGS_EXTRA) -std=c11 -D_GNU_SOURCE -g $(OPT) -Wall -Wextra -Werror -Wno-missing-field-initializers \
           -Iinclude -I$(BUILD)/grammar $(PKG_CFLAGS)
ifneq ($(SANITIZE),)
CFLAGS_COMMON += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS  += -fsanitize=address,undefined
OPT      := -O1
endif
LIBS     = $(PKG_LIBS) -lpthread

GRAM_C   := $(BUILD)/grammar/gram.c
GRAM_H   := $(BUILD)/grammar/gram.h
SCAN_C   := $(BUILD)/grammar/scan.c
SCAN_H   := $(BUILD)/grammar/scan.h

SRCS     := $(shell find src -name '*.c' | sort)
MAIN_SRC := src/main.c
LIB_SRCS := $(filter-out $(MAIN_SRC),$(SRCS))
LIB_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(LIB_SRCS)) $(BUILD)/grammar/gram.o $(BUILD)/grammar/scan.o
MAIN_OBJ := $(BUILD)/src/main.o

UNIT_SRCS := $(wildcard regress/unit/test_*.c)
UNIT_BINS := $(patsubst regress/unit/%.c,$(BUILD)/unit/%,$(UNIT_SRCS))
# Helper programs the Perl tests drive (built by `make unit`, not run as tests).
UNIT_BINS += $(BUILD)/unit/cdc_decode_tool
UNIT_BINS += $(BUILD)/unit/cdc_apply_tool
UNIT_BINS += $(BUILD)/unit/jobs_retention_tool

PGBR     := $(BIN)/pgbr
ifneq ($(SANITIZE),)
PGBR     := $(BUILD)/bin/pgbr
endif

.PHONY: all deps check check-asan unit demo demo-stop bench bench-proxy bench-backup bench-incremental clean

all: $(PGBR)

deps:
	@contrib/install-deps.sh

$(PGBR): $(MAIN_OBJ) $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(GRAM_C) $(GRAM_H): grammar/gram.y
	@mkdir -p $(BUILD)/grammar
	$(BISON) -Wall -Werror -d -o $(GRAM_C) $<

$(SCAN_C) $(SCAN_H): grammar/scan.l $(GRAM_H)
	@mkdir -p $(BUILD)/grammar
	$(FLEX) --header-file=$(SCAN_H) -o $(SCAN_C) $<

# Generated code is compiled without the warnings flex/bison output trips.
$(BUILD)/grammar/%.o: $(BUILD)/grammar/%.c $(GRAM_H) $(SCAN_H)
	$(CC) $(CFLAGS_COMMON) -Wno-unused-parameter -Wno-sign-compare -Wno-unused-function -Wno-unused-but-set-variable -c -o $@ $<

$(BUILD)/%.o: %.c $(GRAM_H) $(SCAN_H) $(wildcard include/pgbr/*.h) $(wildcard src/*/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) -c -o $@ $<

$(BUILD)/unit/%: regress/unit/%.c regress/unit/tap.h regress/unit/testutil.h $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) -Iregress/unit $(LDFLAGS) -o $@ $< $(LIB_OBJS) $(LIBS)

unit: $(UNIT_BINS)

# The whole suite: C unit tests, Perl TAP tests and pg_regress, in one prove run.
check: deps
	@$(MAKE) --no-print-directory all unit
	PGBR_BIN=$(abspath $(PGBR)) PGBR_UNIT_DIR=$(abspath $(BUILD)/unit) regress/run-tests.sh

check-asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan SANITIZE=1 all unit
	PGBR_BIN=$(abspath build-asan/bin/pgbr) PGBR_UNIT_DIR=$(abspath build-asan/unit) PGBR_ASAN=1 regress/run-tests.sh

demo: deps
	@$(MAKE) --no-print-directory all
	@contrib/demo.sh start

demo-stop:
	@contrib/demo.sh stop

# bench-backup runs after bench-proxy, never alongside it (also under make -j).
bench: bench-proxy
	@$(MAKE) --no-print-directory bench-backup
	@$(MAKE) --no-print-directory bench-incremental

bench-proxy: deps
	@$(MAKE) --no-print-directory all
	contrib/bench/bench-proxy.sh

bench-backup: deps
	@$(MAKE) --no-print-directory all
	PGBR_BIN=$(abspath $(PGBR)) contrib/bench/bench-backup.sh

bench-incremental: deps
	@$(MAKE) --no-print-directory all
	PGBR_BIN=$(abspath $(PGBR)) contrib/bench/bench-incremental.sh

clean:
	rm -rf build build-asan build-fuzz bin

# libFuzzer targets for the parsers of untrusted bytes (clang). Each runs for
# FUZZ_SECONDS; crashers land in regress/fuzz/crashers/ and become regression inputs.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := fuzz_sql fuzz_proto fuzz_datafile fuzz_manifest
.PHONY: fuzz
fuzz:
	@contrib/install-deps.sh fuzz
	@$(MAKE) --no-print-directory BUILD=build-fuzz CC=clang SANITIZE=1 \
	    CFLAGS_EXTRA=-fsanitize=fuzzer-no-link $(patsubst %,build-fuzz/fuzz/%,$(FUZZ_TARGETS))
	@for t in $(FUZZ_TARGETS); do \
	    mkdir -p build-fuzz/corpus/$$t regress/fuzz/crashers/$$t; \
	    echo "== $$t ($(FUZZ_SECONDS) s)"; \
	    build-fuzz/fuzz/$$t -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=regress/fuzz/crashers/$$t/ \
	        build-fuzz/corpus/$$t regress/fuzz/crashers/$$t || exit 1; \
	done

$(BUILD)/fuzz/%: regress/fuzz/%.c $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) -fsanitize=fuzzer $(LDFLAGS) -o $@ $< $(LIB_OBJS) $(LIBS)
