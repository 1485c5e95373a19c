# Two commands for a fresh clone: `make preview` and `make test`. Both install what they need.
STACK ?= home
# first-preview (nothing built yet) or update-preview (the stack as the last `pulumi up` left it)
SHAPE ?= first-preview
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
REQUIREMENTS := requirements.txt requirements-dev.txt policies/requirements.txt
# Tools that come as wheels (shellcheck, zizmor, ...) live in the venv's bin.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: preview test lint typecheck unit tools bench clean hashes restore

$(BIN)/.installed: $(REQUIREMENTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check $(addprefix -r ,$(REQUIREMENTS))
	touch $@

# Validators that are not on PyPI, from Debian: cloud-init's own user-data schema check, and
# corosync's own config parser (`corosync -t`), run in network namespaces made with iproute2's
# `ip` and util-linux's `unshare`, udev's and systemd's parsers for the USB4 port files, and a
# throwaway Ceph cluster on 127.0.0.1 (tests/ceph_cluster.py: ceph-mon brings `monmaptool`, ceph-common
# `ceph`, `rbd`, `rados`, `ceph-conf`, `ceph-authtool`), restic, and NUT (`upsd`, `upsmon`, `upssched`,
# the `dummy-ups` driver). Each is installed when its command is missing.
DEBIAN_TOOLS := cloud-init:cloud-init corosync:corosync ip:iproute2 unshare:util-linux udevadm:udev \
  systemd-analyze:systemd ceph-mon:ceph-mon ceph-mgr:ceph-mgr ceph-osd:ceph-osd ceph:ceph-common \
  restic:restic openssl:openssl upsd:nut-server upsmon:nut-client promtool:prometheus \
  amtool:prometheus-alertmanager prometheus-node-exporter:prometheus-node-exporter
tools:
	@missing=""; for pair in $(DEBIAN_TOOLS); do \
	  command -v "$${pair%%:*}" >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing from Debian:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

## The offline plan of a stack (STACK=home by default): no Proxmox, no Pulumi CLI, no secrets.
preview: $(BIN)/.installed
	$(BIN)/python -m offline.preview --stack $(STACK) --shape $(SHAPE)

## A volume's restore, as YAML for `kubectl apply -f -` (README, "Restore a volume").
restore: $(BIN)/.installed
	@$(BIN)/python -m offline.restore --stack $(STACK) --volume $(VOLUME) --as-of "$(AS_OF)"

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/yamllint --strict -c .yamllint.yaml .
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(BIN)/check-jsonschema --builtin-schema vendor.github-actions .github/actions/*/action.yml
	$(BIN)/check-jsonschema --builtin-schema vendor.renovate renovate.json
	$(BIN)/zizmor --offline --no-progress --persona=auditor .github

typecheck: $(BIN)/.installed
	$(BIN)/mypy __main__.py components spec plan offline policies tests benchmarks tools

unit: $(BIN)/.installed tools
	$(BIN)/pytest

## Everything CI runs.
test: lint typecheck unit

## The hashed lock files CI's deploy and preview jobs install from (`pip install --require-hashes`):
## run after changing requirements.txt or policies/requirements.txt (a test checks they agree).
PIP_COMPILE = $(abspath $(BIN))/pip-compile --quiet --generate-hashes --no-emit-index-url --no-emit-find-links --allow-unsafe --strip-extras
hashes: $(BIN)/.installed
	$(PIP_COMPILE) -o requirements.hashes.txt requirements.txt
	cd policies && $(PIP_COMPILE) -o requirements.hashes.txt requirements.txt

bench: $(BIN)/.installed
	$(BIN)/python -m benchmarks.preview_speed

clean:
	rm -rf $(VENV) .preview .pytest_cache .mypy_cache .ruff_cache
