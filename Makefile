# Postern: one executable (posternd), its control tool (posternctl),
# the tests and the demo server.  GNU make on Linux; see README.

PREFIX?=	/usr/local
SBINDIR?=	$(PREFIX)/sbin
MANDIR?=	$(PREFIX)/share/man

CC?=		cc
PKGS=		libbsd-overlay libmd libevent libtls sqlite3 jansson libargon2
PKG_CFLAGS:=	$(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS:=	$(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS?=	-O2 -g
CFLAGS+=	-std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter \
		-D_GNU_SOURCE -Ilib $(PKG_CFLAGS) $(SANFLAGS)
LDLIBS+=	$(PKG_LIBS) -lpthread
LDFLAGS+=	$(SANFLAGS)
YACC?=		byacc

BUILD?=		build
ROLE_DIRS=	parent smtpd queue imapd jmapd davd storaged
LIB_SRCS=	$(wildcard lib/*.c)
ROLE_SRCS=	$(foreach d,$(ROLE_DIRS),$(wildcard $(d)/*.c)) \
		$(BUILD)/parent/parse.c
CTL_SRCS=	$(wildcard ctl/*.c)

LIB_OBJS=	$(LIB_SRCS:%.c=$(BUILD)/%.o)
ROLE_OBJS=	$(patsubst $(BUILD)/%,%,$(ROLE_SRCS))
ROLE_OBJS:=	$(ROLE_OBJS:%.c=$(BUILD)/%.o)
CTL_OBJS=	$(CTL_SRCS:%.c=$(BUILD)/%.o)

MANS=		man/posternd.8 man/posternctl.8 man/postern.conf.5

.PHONY: all deps run test unit unit-bins fuzz fuzz-bins proto asan \
		lint-man bench clean install

all: $(BUILD)/posternd $(BUILD)/posternctl

$(BUILD)/posternd: $(LIB_OBJS) $(ROLE_OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/posternctl: $(CTL_OBJS) $(LIB_OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/parent/parse.c: parent/parse.y
	@mkdir -p $(dir $@)
	$(YACC) -o $@ $<

$(BUILD)/parent/parse.o: $(BUILD)/parent/parse.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Iparent -Wno-sign-compare -Wno-unused-but-set-variable -c -o $@ $<

$(BUILD)/%.o: %.c $(wildcard lib/*.h) $(wildcard */*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

# Installs what is missing from Debian's packages (as root).
deps:
	@sh mk/deps.sh

run: deps
	@$(MAKE) all
	@sh mk/run.sh

# Tests: see regress/README.md.  `make test` runs them all and ends
# with one "N passed, N failed" line.
UNIT_SRCS=	$(wildcard regress/unit/test_*.c)
UNIT_BINS=	$(UNIT_SRCS:regress/unit/%.c=$(BUILD)/regress/unit/%)
FUZZ_SRCS=	$(wildcard regress/fuzz/fuzz_*.c)
FUZZ_BINS=	$(FUZZ_SRCS:regress/fuzz/%.c=$(BUILD)/regress/fuzz/%)
FUZZ_CC?=	clang
FUZZ_CFLAGS=	-g -O1 -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter \
		-D_GNU_SOURCE -Ilib $(PKG_CFLAGS)
FUZZ_SAN=	address,undefined -fno-sanitize-recover=all
FUZZ_LIB_OBJS=	$(LIB_SRCS:%.c=$(BUILD)/fuzzobj/%.o)
# What a fuzz target links besides lib/: fuzz_config needs the parser.
FUZZ_EXTRA_fuzz_config=	$(BUILD)/parent/parse.c
FUZZ_EXTRA_fuzz_smtp=	smtpd/smtp_parse.c
FUZZ_EXTRA_fuzz_imap=	imapd/imap_parse.c imapd/imap_parse_search.c
FUZZ_EXTRA_fuzz_imap_render=	imapd/imap_render.c
FUZZ_TIME?=	15

test: deps
	@$(MAKE) all
	@BUILD=$(BUILD) sh mk/test.sh

unit-bins: $(UNIT_BINS)

unit: unit-bins
	@BUILD=$(BUILD) sh mk/test.sh unit

# What a unit test links besides lib/, as FUZZ_EXTRA_ for fuzz targets.
UNIT_EXTRA_test_imap_render=	$(BUILD)/imapd/imap_render.o
UNIT_EXTRA_test_smtp_parse=	$(BUILD)/smtpd/smtp_parse.o

.SECONDEXPANSION:
$(BUILD)/regress/unit/%: regress/unit/%.c regress/unit/unit.h $(LIB_OBJS) \
	    $$(UNIT_EXTRA_$$*)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Iregress/unit $(LDFLAGS) -o $@ $< \
	    $(UNIT_EXTRA_$*) $(LIB_OBJS) $(LDLIBS)

fuzz-bins: $(FUZZ_BINS)

fuzz: fuzz-bins
	@sh regress/fuzz/run.sh $(BUILD)/regress/fuzz $(FUZZ_TIME)

$(BUILD)/fuzzobj/%.o: %.c $(wildcard lib/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link,$(FUZZ_SAN) \
	    -c -o $@ $<

$(BUILD)/regress/fuzz/%: regress/fuzz/%.c $(FUZZ_LIB_OBJS) $$(FUZZ_EXTRA_$$*)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Iparent -Wno-sign-compare \
	    -Wno-unused-but-set-variable -fsanitize=fuzzer,$(FUZZ_SAN) \
	    -o $@ $< $(FUZZ_EXTRA_$*) $(FUZZ_LIB_OBJS) $(LDLIBS)

proto: all
	POSTERN_BUILD=$(abspath $(BUILD)) /usr/bin/python3 -m pytest -q \
	    -p no:cacheprovider regress/proto

# AddressSanitizer and UBSan build of the daemon and unit tests.
asan:
	$(MAKE) BUILD=build-asan \
	    SANFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer" \
	    all unit-bins

bench: deps
	@$(MAKE) all
	@sh mk/bench.sh

lint-man:
	mandoc -Tlint -Wwarning $(MANS)

install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man5 \
	    $(DESTDIR)$(MANDIR)/man8
	install -m 0755 $(BUILD)/posternd $(BUILD)/posternctl \
	    $(DESTDIR)$(SBINDIR)
	install -m 0644 man/postern.conf.5 $(DESTDIR)$(MANDIR)/man5
	install -m 0644 man/posternd.8 man/posternctl.8 \
	    $(DESTDIR)$(MANDIR)/man8

clean:
	rm -rf $(BUILD) build-asan
