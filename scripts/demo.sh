#!/usr/bin/env bash
# The demo pipeline: tap-jsonl -> target-salesforce-crm -> the bundled Salesforce emulator.
# Creates its own virtual environment (.venv-demo), starts the emulator on a free loopback port,
# runs `meltano run`, prints the run summary and a few updated records, then stops the emulator.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if [ ! -x .venv-demo/bin/python ]; then
  "$PYTHON" -m venv .venv-demo
fi
.venv-demo/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip 2> >(grep -v "^WARNING: Location" >&2)
.venv-demo/bin/python -m pip install --quiet --disable-pip-version-check "meltano>=4.4,<4.5" -e . \
  2> >(grep -v "^WARNING: Location" >&2)
export PATH="$PWD/.venv-demo/bin:$PATH"
export MELTANO_CLI_DISABLE_VERSION_CHECK=true MELTANO_SEND_ANONYMOUS_USAGE_STATS=false

workdir=$(mktemp -d)
emulator_pid=""
cleanup() {
  if [ -n "$emulator_pid" ]; then kill "$emulator_pid" 2>/dev/null || true; wait "$emulator_pid" 2>/dev/null || true; fi
  rm -rf "$workdir"
}
trap cleanup EXIT

echo "== starting the Salesforce emulator"
python -m target_salesforce_crm.emulator --port 0 --ready-file "$workdir/url" \
  --segment-field Seg_Loyal_Customers__c --segment-field Seg_Cart_Abandoners__c \
  --segment-field Seg_Newsletter__c \
  --seed Contact=sample_data/org_contacts.jsonl --seed Lead=sample_data/org_leads.jsonl \
  --latency-ms 20 > "$workdir/emulator.log" 2>&1 &
emulator_pid=$!
for _ in $(seq 1 100); do [ -s "$workdir/url" ] && break; sleep 0.1; done
[ -s "$workdir/url" ] || { echo "emulator did not start:"; cat "$workdir/emulator.log"; exit 1; }
url=$(cat "$workdir/url")
echo "   listening on $url"

# The emulator's demo credentials; for a real org put yours in .env (see README).
export TARGET_SALESFORCE_CRM_LOGIN_URL="$url"
export TARGET_SALESFORCE_CRM_USERNAME="integration@example.com"
export TARGET_SALESFORCE_CRM_PASSWORD="emulator-password"
export TARGET_SALESFORCE_CRM_SECURITY_TOKEN="EMULATORTOKEN"
export TARGET_SALESFORCE_CRM_CLIENT_ID="emulator-consumer-key"
export TARGET_SALESFORCE_CRM_CLIENT_SECRET="emulator-consumer-secret"

rm -rf output && mkdir -p output
echo "== meltano install"
meltano install > "$workdir/install.log" 2>&1 || { cat "$workdir/install.log"; exit 1; }
echo "== meltano run tap-jsonl target-salesforce-crm tap-jsonl-leads target-salesforce-crm"
meltano run --full-refresh tap-jsonl target-salesforce-crm tap-jsonl-leads target-salesforce-crm \
  > output/meltano.log 2>&1 || { echo "meltano run failed; see output/meltano.log"; tail -20 output/meltano.log; exit 1; }
grep -oE "(pre-flight of|summary for stream|segment field|rejected (Contact|Lead)|Run completed).*" \
  output/meltano.log | sed 's/^/   /' 

python - "$url" <<'PY'
import json, sys, urllib.request
url = sys.argv[1]
def get(path):
    with urllib.request.urlopen(url + path) as r:
        return json.load(r)
report = json.load(open("output/run_report.json"))
print("== run report (output/run_report.json, last run)")
print(json.dumps({k: report[k] for k in ("status", "totals", "segments")}, indent=2))
print("== dead-letter file output/rejected_records.jsonl")
for line in open("output/rejected_records.jsonl"):
    row = json.loads(line)
    print(f"   {row['stream']:9} {str(row['id']):20} {row['error_code']:24} {row['message']}")
print("== a few Contacts read back from the emulator")
for rec in get("/__emulator__/records/Contact")[:4]:
    keep = ("Id", "FirstName", "LastName", "Email", "Seg_Loyal_Customers__c",
            "Seg_Cart_Abandoners__c", "Seg_Newsletter__c")
    print("  ", json.dumps({k: rec.get(k) for k in keep}, ensure_ascii=False))
stats = get("/__emulator__/stats")
print(f"== emulator: {stats['collections_calls']} collections calls, "
      f"{stats['token_requests']} token requests, describe calls {stats['describe_calls']}")
PY
