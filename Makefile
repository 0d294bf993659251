# pg_connguard, built with PGXS:  make && sudo make install
# The pure C++ core is also built by CMake for its unit tests (see CMakeLists.txt).
EXTENSION = pg_connguard
MODULE_big = pg_connguard
DATA = pg_connguard--1.0.sql pg_connguard--1.0--1.1.sql pg_connguard--1.1--1.2.sql
PGFILEDESC = "pg_connguard - connection caps and idle-session limits"

OBJS = $(patsubst %.cpp,%.o,$(sort $(wildcard src/core/*.cpp) $(wildcard src/pg/*.cpp) $(wildcard src/pg/*/*.cpp)))

PG_CONFIG ?= pg_config
PG_INCLUDEDIR_SERVER := $(shell $(PG_CONFIG) --includedir-server)
# Server headers as system headers: their own warnings are not ours to fix under -Werror.
PG_CPPFLAGS = -I$(CURDIR)/src -isystem $(PG_INCLUDEDIR_SERVER)
# -MMD -MP: objects are rebuilt when a header they include changes.
PG_CXXFLAGS = -std=c++17 -Wall -Wextra -Werror -Wno-register -Wno-missing-field-initializers -fno-strict-aliasing \
              -MMD -MP
SHLIB_LINK += -lstdc++ -Wl,--version-script=$(CURDIR)/src/pg/exports.map

REGRESS = rules_validation active_rules observability
REGRESS_OPTS = --temp-instance=./tmp_check --temp-config=$(CURDIR)/test/regress.conf --load-extension=pg_connguard --encoding=UTF8
TAP_TESTS = 1
PROVE_TESTS = test/t/*.pl

# Debian builds PostgreSQL with LLVM JIT; bitcode for C++ files is not needed.
override with_llvm = no

EXTRA_CLEAN = $(OBJS:.o=.d)

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

-include $(OBJS:.o=.d)

# The library is relinked when what it exports changes.
$(MODULE_big)$(DLSUFFIX): src/pg/exports.map

# The PGXN release archive: the committed tree (git archive, so nothing untracked slips in)
# under pg_connguard-VERSION/, VERSION from META.json.
DIST_VERSION = $(shell sed -n 's/^   "version": "\(.*\)",$$/\1/p' $(CURDIR)/META.json)
DIST_DIR ?= $(CURDIR)
dist:
	git -C $(CURDIR) archive --format zip --prefix=$(EXTENSION)-$(DIST_VERSION)/ \
		-o $(DIST_DIR)/$(EXTENSION)-$(DIST_VERSION).zip HEAD
	@echo "$(DIST_DIR)/$(EXTENSION)-$(DIST_VERSION).zip"
.PHONY: dist
