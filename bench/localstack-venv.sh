#!/usr/bin/env bash
# Installs LocalStack 4.9.2 (the newest that runs on Python 3.11, without Docker) into its own
# virtualenv, with the dependency pins it needs against today's PyPI:
#   cbor2<5.7          (4.9.2 imports cbor2._decoder, gone in 5.7)
#   pyopenssl<24.3     (twisted's TLS layer calls X509.add_extensions, removed in 24.3)
#   cryptography<43    (what pyopenssl 24.2 works with)
#   service_identity   (twisted imports it; localstack-core[runtime] does not pull it in)
# and without localstack-ext (the Pro plugins, which do not load without a licence).
# Then: LOCALSTACK_PYTHON=<venv>/bin/python bench/sfn-bench.sh -t both
#   bench/localstack-venv.sh [venv dir, default /tmp/localstack-venv]
set -euo pipefail
venv=${1:-/tmp/localstack-venv}
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check \
    "localstack-core[runtime]==4.9.2" "cbor2<5.7" "pyopenssl<24.3" "cryptography<43" service_identity
"$venv/bin/python" -c 'import localstack.version as v; print("LocalStack", v.__version__, "in '"$venv"'")'
