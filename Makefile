# Postern: one executable (posternd), its control tool (posternctl),
# the tests and the demo server.  GNU make on Linux; see README.

PREFIX?=	/usr/local
SBINDIR?=	$(PREFIX)/sbin
MANDIR?=	$(PREFIX)/share/man

CC?=		cc
PKGS=		libbsd-overlay libevent libtls sqlite3 jansson libargon2
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

.PHONY: all deps run test unit fuzz proto lint-man bench clean install

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

test: deps
	@$(MAKE) all
	@sh mk/test.sh

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
