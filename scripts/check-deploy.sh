#!/usr/bin/env bash
# Validates the deployment and monitoring files under deploy/ on a machine
# without Docker or a cluster, with the real tools where they exist:
#
#   1. promtool check config / check rules / test rules (installs Debian's `prometheus`, which ships
#                                             promtool, if missing and apt-get is usable)
#   2. YAML parse of every deploy/**/*.yml|yaml, JSON parse of the Grafana dashboard
#   3. kubectl kustomize / kustomize build deploy/k8s, plus a resource check in python
#   4. docker compose config (only if it works), plus a reference check in python
#   5. metrics cross-check: every paygate_* name used by alerts.yml and the dashboard
#      is emitted by the code (metrics::counter!/gauge!/histogram! in */src) and, given
#      scrapes, is present in them (histograms: _bucket/_sum/_count); promtool check metrics.
#
# Usage: scripts/check-deploy.sh [SCRAPE_FILE ...]
#   SCRAPE_FILE: the text of a live /metrics scrape (API, worker, or `paygate serve`),
#   several are merged. Exits non-zero on any failure; prints what ran and what was skipped.
#   CHECK_DEPLOY_NO_INSTALL=1 disables installing promtool / PyYAML.
#   CHECK_DEPLOY_ALLOW_ABSENT=a,b tolerates those names missing from the scrapes (metrics
#   the code only registers on their first event, e.g. paygate_job_dispatch_failures_total).
#   CHECK_DEPLOY_STRICT_LINT=1 makes `promtool check metrics` lint findings fail.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEPLOY=deploy

declare -a RAN=() SKIPPED=() FAILED=()
ran()  { RAN+=("$1"); echo "  ok: $1"; }
skip() { SKIPPED+=("$1"); echo "  skipped: $1"; }
fail() { FAILED+=("$1"); echo "  FAILED: $1"; }
step() { echo; echo "== $1"; }

SCRAPES=()
for f in "$@"; do
  if [ ! -r "$f" ]; then
    echo "check-deploy: cannot read scrape file $f" >&2
    exit 2
  fi
  SCRAPES+=("$(cd "$(dirname "$f")" && pwd)/$(basename "$f")")
done

can_install() {
  [ "${CHECK_DEPLOY_NO_INSTALL:-0}" != 1 ] || return 1
  command -v apt-get >/dev/null 2>&1 || return 1
  [ "$(id -u)" = 0 ] || { command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; } || return 1
}
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }

# ---------------------------------------------------------------- python
PY=""
if command -v python3 >/dev/null 2>&1; then PY=python3; fi
HAVE_YAML=0
if [ -n "$PY" ]; then
  if $PY -c 'import yaml' 2>/dev/null; then
    HAVE_YAML=1
  elif [ "${CHECK_DEPLOY_NO_INSTALL:-0}" != 1 ]; then
    echo "check-deploy: PyYAML missing; pip install pyyaml"
    $PY -m pip install --quiet pyyaml >/dev/null 2>&1 \
      || $PY -m pip install --quiet --user pyyaml >/dev/null 2>&1 \
      || $PY -m pip install --quiet --break-system-packages pyyaml >/dev/null 2>&1 || true
    $PY -c 'import yaml' 2>/dev/null && HAVE_YAML=1
  fi
fi

# ---------------------------------------------------------------- 1. promtool
step "1. promtool"
PROMTOOL=$(command -v promtool || true)
if [ -z "$PROMTOOL" ] && can_install; then
  # (grep without -q: with pipefail, -q's early exit would fail the pipeline by SIGPIPE)
  if ! apt-cache policy prometheus 2>/dev/null | grep 'Candidate: [0-9]' >/dev/null; then
    as_root apt-get update -qq >/dev/null 2>&1 || true
  fi
  if apt-cache policy prometheus 2>/dev/null | grep 'Candidate: [0-9]' >/dev/null; then
    echo "check-deploy: installing Debian's prometheus package for promtool"
    # The daemon it also ships is not started in containers without an init system.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus \
      >/tmp/check-deploy-apt.log 2>&1 || echo "check-deploy: apt-get install failed (see /tmp/check-deploy-apt.log)"
    PROMTOOL=$(command -v promtool || true)
  fi
fi
if [ -n "$PROMTOOL" ]; then
  echo "  $($PROMTOOL --version 2>&1 | head -n1)"
  if out=$($PROMTOOL check config "$DEPLOY/prometheus/prometheus.yml" 2>&1); then
    ran "promtool check config $DEPLOY/prometheus/prometheus.yml (and its rule_files)"
  else
    echo "$out"; fail "promtool check config $DEPLOY/prometheus/prometheus.yml"
  fi
  if out=$($PROMTOOL check rules "$DEPLOY/prometheus/alerts.yml" 2>&1); then
    ran "promtool check rules $DEPLOY/prometheus/alerts.yml ($(echo "$out" | grep -o 'SUCCESS: [0-9]* rules' | head -n1))"
  else
    echo "$out"; fail "promtool check rules $DEPLOY/prometheus/alerts.yml"
  fi
  if [ -f "$DEPLOY/prometheus/alerts_test.yml" ]; then
    if out=$(cd "$DEPLOY/prometheus" && $PROMTOOL test rules alerts_test.yml 2>&1); then
      ran "promtool test rules $DEPLOY/prometheus/alerts_test.yml (every alert fires on synthetic series)"
    else
      echo "$out"; fail "promtool test rules $DEPLOY/prometheus/alerts_test.yml"
    fi
  fi
else
  skip "promtool check config/rules (no promtool; installing Debian's prometheus was not possible or disabled)"
fi

# Dashboard and KEDA queries are PromQL too: check them as recording rules.
if [ -n "$PROMTOOL" ] && [ -n "$PY" ] && [ "$HAVE_YAML" = 1 ]; then
  if $PY - "$DEPLOY" >/tmp/check-deploy-queries.yml <<'PY'
import json, pathlib, sys, yaml
root = pathlib.Path(sys.argv[1])
d = json.loads((root / "grafana" / "paygate.json").read_text())
rules = []
for p in d.get("panels", []):
    for t in p.get("targets", []):
        expr = t.get("expr", "").replace("$__rate_interval", "5m").replace("$__interval", "1m").replace("$__range", "1h")
        rules.append({"record": f"dashboard:panel_{p.get('id')}:{t.get('refId')}", "expr": expr})
so = yaml.safe_load((root / "k8s" / "worker-scaledobject.yaml").read_text())
for i, t in enumerate(so["spec"]["triggers"]):
    if t.get("type") == "prometheus":
        rules.append({"record": f"keda:trigger_{i}", "expr": t["metadata"]["query"]})
print(yaml.safe_dump({"groups": [{"name": "dashboard-and-keda-queries", "rules": rules}]}))
PY
  then
    if out=$($PROMTOOL check rules /tmp/check-deploy-queries.yml 2>&1); then
      ran "promtool: every dashboard and KEDA query parses as PromQL ($(echo "$out" | grep -o '[0-9]* rules' | head -n1))"
    else
      echo "$out"; fail "promtool: dashboard/KEDA queries"
    fi
  else
    fail "extracting dashboard queries"
  fi
fi

# ---------------------------------------------------------------- 2. YAML / JSON
step "2. YAML and JSON parse"
if [ -z "$PY" ]; then
  skip "YAML/JSON parse (no python3)"
elif [ "$HAVE_YAML" != 1 ]; then
  skip "YAML parse (no PyYAML and pip could not install it)"
  if $PY -c 'import json,sys; json.load(open(sys.argv[1]))' "$DEPLOY/grafana/paygate.json"; then
    ran "JSON parse $DEPLOY/grafana/paygate.json"
  else
    fail "JSON parse $DEPLOY/grafana/paygate.json"
  fi
else
  if out=$($PY - "$DEPLOY" <<'PY' 2>&1
import json, pathlib, sys, yaml
root = pathlib.Path(sys.argv[1])
bad = 0
files = sorted(p for p in root.rglob("*") if p.suffix in (".yml", ".yaml"))
for p in files:
    try:
        docs = [d for d in yaml.safe_load_all(p.read_text()) if d is not None]
        if not docs:
            raise ValueError("empty document")
    except Exception as e:
        print(f"  {p}: {e}"); bad += 1
print(f"  parsed {len(files) - bad}/{len(files)} YAML files")
dash = root / "grafana" / "paygate.json"
try:
    d = json.loads(dash.read_text())
    problems = []
    if not isinstance(d.get("schemaVersion"), int) or d["schemaVersion"] < 30:
        problems.append("schemaVersion missing or < 30")
    for k in ("uid", "title", "panels"):
        if k not in d:
            problems.append(f"no {k}")
    ids = [p.get("id") for p in d.get("panels", [])]
    if len(ids) != len(set(ids)):
        problems.append("duplicate panel ids")
    n_targets = 0
    for p in d.get("panels", []):
        if p.get("type") == "row":
            continue
        if "gridPos" not in p:
            problems.append(f"panel {p.get('id')} has no gridPos")
        ts = p.get("targets") or []
        if not ts:
            problems.append(f"panel {p.get('title')!r} has no targets")
        for t in ts:
            n_targets += 1
            if not t.get("expr"):
                problems.append(f"panel {p.get('title')!r} target {t.get('refId')} has no expr")
            if t.get("expr", "").count("(") != t.get("expr", "").count(")"):
                problems.append(f"panel {p.get('title')!r}: unbalanced parentheses")
    for pr in problems:
        print(f"  {dash}: {pr}")
    bad += len(problems)
    print(f"  dashboard: {len(ids)} panels, {n_targets} queries, schemaVersion {d.get('schemaVersion')}")
except Exception as e:
    print(f"  {dash}: {e}"); bad += 1
sys.exit(1 if bad else 0)
PY
  ); then
    echo "$out"; ran "YAML parse of every $DEPLOY/**/*.y*ml; JSON parse + structure of the dashboard"
  else
    echo "$out"; fail "YAML/JSON parse"
  fi
fi

# ---------------------------------------------------------------- 3. kustomize
step "3. Kubernetes (kustomize)"
K8S_RENDER=/tmp/check-deploy-k8s.yaml
rendered=0
if command -v kubectl >/dev/null 2>&1 && kubectl kustomize --help >/dev/null 2>&1; then
  if kubectl kustomize "$DEPLOY/k8s" >"$K8S_RENDER" 2>/tmp/check-deploy-kustomize.err; then
    ran "kubectl kustomize $DEPLOY/k8s ($(grep -c '^kind:' "$K8S_RENDER") resources)"; rendered=1
  else
    cat /tmp/check-deploy-kustomize.err; fail "kubectl kustomize $DEPLOY/k8s"
  fi
elif command -v kustomize >/dev/null 2>&1; then
  if kustomize build "$DEPLOY/k8s" >"$K8S_RENDER" 2>/tmp/check-deploy-kustomize.err; then
    ran "kustomize build $DEPLOY/k8s"; rendered=1
  else
    cat /tmp/check-deploy-kustomize.err; fail "kustomize build $DEPLOY/k8s"
  fi
else
  skip "kubectl kustomize / kustomize build (neither installed); the python check below stands in"
fi
if command -v kubeconform >/dev/null 2>&1 && [ "$rendered" = 1 ]; then
  if kubeconform -strict -ignore-missing-schemas -summary "$K8S_RENDER"; then
    ran "kubeconform on the rendered manifests"
  else
    fail "kubeconform"
  fi
else
  skip "kubeconform schema validation (not installed)"
fi
if [ -n "$PY" ] && [ "$HAVE_YAML" = 1 ]; then
  if out=$($PY - "$DEPLOY/k8s" <<'PY' 2>&1
import pathlib, re, sys, yaml
root = pathlib.Path(sys.argv[1])
bad = []
k = yaml.safe_load((root / "kustomization.yaml").read_text())
docs = []
for r in k.get("resources", []):
    p = root / r
    if not p.exists():
        bad.append(f"resource {r} listed in kustomization.yaml does not exist"); continue
    for d in yaml.safe_load_all(p.read_text()):
        if d is None:
            continue
        for f in ("apiVersion", "kind"):
            if f not in d:
                bad.append(f"{r}: no {f}")
        if not (d.get("metadata") or {}).get("name"):
            bad.append(f"{r}: no metadata.name")
        docs.append((r, d))
listed = set(k.get("resources", []))
for p in root.glob("*.y*ml"):
    if p.name != "kustomization.yaml" and p.name not in listed:
        bad.append(f"{p.name} is not listed in kustomization.yaml")
by_kind = {}
for r, d in docs:
    by_kind.setdefault(d.get("kind"), []).append(d)
names = {(d.get("kind"), d["metadata"]["name"]) for _, d in docs if d.get("metadata")}
def containers(d):
    spec = d.get("spec", {})
    tpl = spec.get("template", {}).get("spec", {}) if d["kind"] in ("Deployment", "Job") else {}
    return tpl, tpl.get("containers", [])
cm = next((d for d in by_kind.get("ConfigMap", [])), {}).get("data", {})
for d in by_kind.get("Deployment", []) + by_kind.get("Job", []):
    tpl, cs = containers(d)
    n = d["metadata"]["name"]
    if not cs:
        bad.append(f"{n}: no containers")
    if not (tpl.get("securityContext") or {}).get("runAsNonRoot"):
        bad.append(f"{n}: pod securityContext.runAsNonRoot is not true")
    for c in cs:
        sc = c.get("securityContext") or {}
        if not sc.get("readOnlyRootFilesystem"):
            bad.append(f"{n}/{c['name']}: readOnlyRootFilesystem is not true")
        if "resources" not in c:
            bad.append(f"{n}/{c['name']}: no resources")
        for ef in c.get("envFrom", []):
            ref = ef.get("configMapRef") or ef.get("secretRef")
            kind = "ConfigMap" if "configMapRef" in ef else "Secret"
            if (kind, ref["name"]) not in names:
                bad.append(f"{n}: envFrom {kind} {ref['name']} is not defined")
        if d["kind"] == "Deployment":
            for probe in ("livenessProbe", "readinessProbe"):
                if probe not in c:
                    bad.append(f"{n}/{c['name']}: no {probe}")
    if n == "paygate-worker":
        env = {e["name"]: e.get("value") for c in cs for e in c.get("env", [])}
        if env.get("PAYGATE_METRICS_LISTEN") != "0.0.0.0:9090":
            bad.append("paygate-worker: PAYGATE_METRICS_LISTEN is not 0.0.0.0:9090")
        grace_ms = int(cm.get("PAYGATE_SHUTDOWN_GRACE_MS", "20000"))
        tgps = tpl.get("terminationGracePeriodSeconds", 30)
        if tgps * 1000 <= grace_ms:
            bad.append(f"paygate-worker: terminationGracePeriodSeconds {tgps}s does not exceed PAYGATE_SHUTDOWN_GRACE_MS {grace_ms}")
for d in by_kind.get("HorizontalPodAutoscaler", []) + by_kind.get("ScaledObject", []):
    t = d["spec"]["scaleTargetRef"]
    if ("Deployment", t["name"]) not in names:
        bad.append(f"{d['kind']} {d['metadata']['name']}: target Deployment {t['name']} is not defined")
for d in by_kind.get("PodDisruptionBudget", []) + by_kind.get("Service", []):
    sel = (d["spec"].get("selector") or {})
    sel = sel.get("matchLabels", sel)
    if not any(all(((dd.get("spec", {}).get("template", {}).get("metadata", {}).get("labels") or {}).get(a) == b)
                   for a, b in sel.items()) for dd in by_kind.get("Deployment", [])):
        bad.append(f"{d['kind']} {d['metadata']['name']}: selector {sel} matches no Deployment's pods")
for b in bad:
    print("  " + b)
print(f"  {len(docs)} resources from {len(k.get('resources', []))} files")
sys.exit(1 if bad else 0)
PY
  ); then
    echo "$out"; ran "python k8s check (resources exist and parse, refs, probes, securityContext, grace period)"
  else
    echo "$out"; fail "python k8s check"
  fi
else
  skip "python k8s check (no python3/PyYAML)"
fi

# ---------------------------------------------------------------- 4. compose
step "4. docker compose"
COMPOSE=""
if command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
  COMPOSE="docker compose"
elif command -v docker-compose >/dev/null 2>&1 && docker-compose version >/dev/null 2>&1; then
  COMPOSE="docker-compose"
fi
if [ -n "$COMPOSE" ]; then
  if $COMPOSE -f "$DEPLOY/docker-compose.yml" config -q; then
    ran "$COMPOSE -f $DEPLOY/docker-compose.yml config"
  else
    fail "$COMPOSE config"
  fi
else
  skip "docker compose config (docker compose is not available)"
fi
if [ -n "$PY" ] && [ "$HAVE_YAML" = 1 ]; then
  if out=$($PY - "$DEPLOY/docker-compose.yml" <<'PY' 2>&1
import pathlib, sys, yaml
path = pathlib.Path(sys.argv[1])
base = path.parent
c = yaml.safe_load(path.read_text())
bad = []
services = c.get("services", {})
for name, s in services.items():
    if "image" not in s and "build" not in s:
        bad.append(f"{name}: neither image nor build")
    b = s.get("build")
    if b:
        ctx = base / (b if isinstance(b, str) else b.get("context", "."))
        if not ctx.is_dir():
            bad.append(f"{name}: build context {ctx} is not a directory")
        if isinstance(b, dict) and b.get("dockerfile") and not (ctx / b["dockerfile"]).is_file():
            bad.append(f"{name}: dockerfile {ctx / b['dockerfile']} does not exist")
    for v in s.get("volumes", []):
        src = v.split(":")[0] if isinstance(v, str) else v.get("source", "")
        if src.startswith((".", "/")) and not (base / src).exists():
            bad.append(f"{name}: volume source {src} does not exist")
        elif not src.startswith((".", "/")) and src not in (c.get("volumes") or {}):
            bad.append(f"{name}: named volume {src} is not declared")
    deps = s.get("depends_on", [])
    for d in (deps if isinstance(deps, list) else deps.keys()):
        if d not in services:
            bad.append(f"{name}: depends_on unknown service {d}")
env = lambda s: services.get(s, {}).get("environment") or {}
for s in ("api", "worker", "migrate"):
    for var in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL", "PAYGATE_PUBLIC_URL"):
        if var not in env(s):
            bad.append(f"{s}: {var} is not set")
    if not str(env(s).get("DATABASE_URL", "")).startswith("postgres://"):
        bad.append(f"{s}: DATABASE_URL is not postgres://")
if env("worker").get("PAYGATE_METRICS_LISTEN") != "0.0.0.0:9090":
    bad.append("worker: PAYGATE_METRICS_LISTEN is not 0.0.0.0:9090")
if env("api").get("PAYMENT_API_KEY") != env("sandbox").get("PAYGATE_SANDBOX_MEDOGRAM_API_KEY"):
    bad.append("sandbox: PAYGATE_SANDBOX_MEDOGRAM_API_KEY does not match PAYMENT_API_KEY")
if env("api").get("ATMOS_API_KEY") != env("sandbox").get("PAYGATE_SANDBOX_ATMOS_API_KEY"):
    bad.append("sandbox: PAYGATE_SANDBOX_ATMOS_API_KEY does not match ATMOS_API_KEY")
for s in ("api", "worker", "postgres", "redis"):
    if "healthcheck" not in services.get(s, {}):
        bad.append(f"{s}: no healthcheck")
for b in bad:
    print("  " + b)
print(f"  {len(services)} services: {', '.join(services)}")
sys.exit(1 if bad else 0)
PY
  ); then
    echo "$out"; ran "python compose check (files, volumes, depends_on, required env, healthchecks)"
  else
    echo "$out"; fail "python compose check"
  fi
else
  skip "python compose check (no python3/PyYAML)"
fi

# ---------------------------------------------------------------- 5. metrics
step "5. metrics cross-check"
if [ -n "$PY" ] && [ "$HAVE_YAML" = 1 ]; then
  if out=$($PY - "$ROOT" "$DEPLOY" "${SCRAPES[@]+"${SCRAPES[@]}"}" <<'PY' 2>&1
import json, os, pathlib, re, sys, yaml
root, deploy = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
scrapes = [pathlib.Path(p) for p in sys.argv[3:]]
NAME = re.compile(r"\bpaygate_[a-zA-Z0-9_]+\b")
SUFFIXES = ("_bucket", "_sum", "_count")

used = {}  # name -> where
alerts = yaml.safe_load((deploy / "prometheus" / "alerts.yml").read_text())
for g in alerts.get("groups", []):
    for r in g.get("rules", []):
        for n in NAME.findall(str(r.get("expr", ""))):
            used.setdefault(n, set()).add(f"alert {r.get('alert') or r.get('record')}")
dash = json.loads((deploy / "grafana" / "paygate.json").read_text())
def walk(panels):
    for p in panels:
        yield p
        yield from walk(p.get("panels", []))
for p in walk(dash.get("panels", [])):
    for t in p.get("targets", []):
        for n in NAME.findall(t.get("expr", "")):
            used.setdefault(n, set()).add(f"panel {p.get('title')!r}")
for d in (yaml.safe_load((deploy / "k8s" / "worker-scaledobject.yaml").read_text()) or {}).get("spec", {}).get("triggers", []):
    for n in NAME.findall(str((d.get("metadata") or {}).get("query", ""))):
        used.setdefault(n, set()).add("KEDA ScaledObject")

def resolve(name, present, types):
    """The name as exposed, accepting histogram/summary series suffixes."""
    if name in present:
        return True
    for s in SUFFIXES:
        if name.endswith(s) and types.get(name[: -len(s)]) in ("histogram", "summary"):
            return True
    return False

bad = []
# (a) against the code: metrics::counter!/gauge!/histogram!("name" ...) in */src
MACRO = re.compile(r"metrics::(counter|gauge|histogram)!\s*\(\s*\"([a-zA-Z0-9_:]+)\"")
code_types = {}
for f in root.glob("*/src/**/*.rs"):
    for kind, n in MACRO.findall(f.read_text(errors="replace")):
        code_types[n] = {"counter": "counter", "gauge": "gauge", "histogram": "histogram"}[kind]
code_present = set(code_types)
missing_code = sorted(n for n in used if not resolve(n, code_present, code_types))
for n in missing_code:
    bad.append(f"{n} (used by {', '.join(sorted(used[n]))}) is emitted nowhere in */src")
for n in sorted(used):
    base = n
    for s in SUFFIXES:
        if n.endswith(s) and n[: -len(s)] in code_types:
            base = n[: -len(s)]
    if code_types.get(base) == "histogram" and base == n:
        bad.append(f"{n} is a histogram: query {n}_bucket/_sum/_count, not the bare name")
print(f"  {len(used)} metric names used by alerts/dashboard/KEDA; {len(code_present)} emitted by the code")
unused = sorted(n for n in code_present if not any(u == n or u.startswith(n + "_") for u in used))
if unused:
    print(f"  emitted but not shown anywhere (info): {', '.join(unused)}")

# (b) against live scrapes
if scrapes:
    present, types = set(), {}
    for s in scrapes:
        for line in s.read_text(errors="replace").splitlines():
            line = line.strip()
            if line.startswith("# TYPE "):
                parts = line.split()
                if len(parts) >= 4:
                    types[parts[2]] = parts[3]
            elif line and not line.startswith("#"):
                m = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line)
                if m:
                    present.add(m.group(0))
    present |= set(types)
    missing = sorted(n for n in used if not resolve(n, present, types))
    allowed = {a.strip() for a in os.environ.get("CHECK_DEPLOY_ALLOW_ABSENT", "").split(",") if a.strip()}
    for n in missing:
        if n in allowed:
            print(f"  {n} is not in the scrape (allowed by CHECK_DEPLOY_ALLOW_ABSENT)")
        else:
            bad.append(f"{n} (used by {', '.join(sorted(used[n]))}) is not in the scrape")
    print(f"  scrape: {len(present)} names ({sum(1 for n in present if n.startswith('paygate_'))} paygate_*) "
          f"from {len(scrapes)} file(s); {len(used) - len(missing)}/{len(used)} used names found")
for b in bad:
    print("  " + b)
sys.exit(1 if bad else 0)
PY
  ); then
    echo "$out"
    ran "metric names in alerts/dashboard/KEDA vs the code$([ ${#SCRAPES[@]} -gt 0 ] && echo " and ${#SCRAPES[@]} scrape file(s)")"
  else
    echo "$out"; fail "metrics cross-check"
  fi
  [ ${#SCRAPES[@]} -gt 0 ] || skip "metrics vs a live scrape (no scrape file given: scripts/check-deploy.sh SCRAPE_FILE ...)"
else
  skip "metrics cross-check (no python3/PyYAML)"
fi
if [ ${#SCRAPES[@]} -gt 0 ]; then
  if [ -n "$PROMTOOL" ]; then
    for s in "${SCRAPES[@]}"; do
      out=$($PROMTOOL check metrics <"$s" 2>&1); rc=$?
      if [ $rc = 0 ]; then
        ran "promtool check metrics < $s"
      elif [ $rc = 3 ] && [ "${CHECK_DEPLOY_STRICT_LINT:-0}" != 1 ]; then
        # Exit 3: the exposition parsed, with lint findings (e.g. no HELP text).
        echo "$out" | sed 's/^/    /' | head -n 40
        ran "promtool check metrics < $s (parsed; $(echo "$out" | grep -c .) lint finding(s), warnings only)"
      else
        echo "$out" | sed 's/^/    /' | head -n 40
        fail "promtool check metrics < $s"
      fi
    done
  else
    skip "promtool check metrics (no promtool)"
  fi
fi

# ---------------------------------------------------------------- summary
echo
echo "== summary: ${#RAN[@]} ran, ${#SKIPPED[@]} skipped, ${#FAILED[@]} failed"
for r in "${RAN[@]+"${RAN[@]}"}"; do echo "  ran:     $r"; done
for s in "${SKIPPED[@]+"${SKIPPED[@]}"}"; do echo "  skipped: $s"; done
for f in "${FAILED[@]+"${FAILED[@]}"}"; do echo "  FAILED:  $f"; done
[ ${#FAILED[@]} -eq 0 ]
