#!/usr/bin/env bash
# The package a user installs: builds the sdist and the wheel (from the sdist), checks their
# metadata and contents, installs the wheel into a fresh virtual environment outside the source
# tree and from that install runs the CLI (--version, --about), one end-to-end run against the
# installed emulator, and the README's "Without Meltano" example exactly as written, inside the
# unpacked sdist (a clone without the VCS), so that the example cannot rot.
# Usage: bash scripts/check_wheel.sh   (CI runs it from .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
EXAMPLE_PORT=8787  # the port sample_config.json names

WORK=$(mktemp -d)
emulator_pid=""
example_pid=""
cleanup() {
  for pid in "$emulator_pid" "$example_pid"; do
    [ -n "$pid" ] || continue
    kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "check_wheel: $*" >&2; exit 1; }
step() { echo "== $* (${SECONDS}s)"; }
pip_install() {
  "$1" -m pip install --quiet --disable-pip-version-check "${@:2}" \
    2> >(grep -v "^WARNING: Location" >&2)
}
wait_for_file() {
  for _ in $(seq 1 150); do [ -s "$1" ] && return 0; sleep 0.1; done
  return 1
}

step "python -m build (sdist, then the wheel from the sdist)"
"$PYTHON" -m venv "$WORK/build-env"
# the build backend installed once here (build checks it meets [build-system] requires) instead
# of twice in isolated environments: 40 s less
pip_install "$WORK/build-env/bin/python" build hatchling
"$WORK/build-env/bin/python" -m build --no-isolation --outdir "$WORK/dist" "$ROOT" \
  > "$WORK/build.log" 2>&1 \
  || { cat "$WORK/build.log"; fail "python -m build failed"; }
wheel=$(ls "$WORK"/dist/*.whl)
sdist=$(ls "$WORK"/dist/*.tar.gz)
echo "   $(basename "$wheel") $(basename "$sdist")"

step "metadata and contents"
"$WORK/build-env/bin/python" - "$wheel" "$sdist" "$ROOT" <<'PY'
import email, pathlib, sys, tarfile, zipfile

wheel_path, sdist_path, root = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
problems = []
wheel = zipfile.ZipFile(wheel_path)
names = set(wheel.namelist())
dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
meta = email.message_from_bytes(wheel.read(f"{dist_info}/METADATA"))
for field in ("Name", "Version", "Summary", "License-Expression", "Requires-Python",
              "Description-Content-Type"):
    if not meta.get(field):
        problems.append(f"wheel METADATA lacks {field}")
if meta.get("License-Expression") != "Apache-2.0":
    problems.append(f"License-Expression is {meta.get('License-Expression')!r}")
for field in ("Classifier", "Project-URL", "Requires-Dist", "License-File"):
    if not meta.get_all(field):
        problems.append(f"wheel METADATA has no {field}")
if len(meta.get_payload() or "") < 1000:
    problems.append("wheel METADATA lacks the README as its description")
if f"{dist_info}/licenses/LICENSE" not in names:
    problems.append("the wheel does not carry LICENSE")
if "target-salesforce-crm = " not in wheel.read(f"{dist_info}/entry_points.txt").decode():
    problems.append("the wheel has no target-salesforce-crm console script")
# every file of the package (modules, the emulator, py.typed, data) is in the wheel
source = {p.relative_to(root).as_posix() for p in (root / "target_salesforce_crm").rglob("*")
          if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}
missing = sorted(source - names)
if missing:
    problems.append(f"missing from the wheel: {missing}")
for required in ("target_salesforce_crm/py.typed", "target_salesforce_crm/emulator/__main__.py"):
    if required not in names:
        problems.append(f"missing from the wheel: {required}")
# the sdist is a clone without the VCS: tests, samples, scripts and the README example's files
with tarfile.open(sdist_path) as sdist:
    members = {m.name.split("/", 1)[1] for m in sdist.getmembers() if "/" in m.name}
for required in ("PKG-INFO", "pyproject.toml", "LICENSE", "README.md", "sample_config.json",
                 "sample_tap_config.json", "meltano.yml", "scripts/jsonl_to_singer.py",
                 "scripts/test.sh", "tests/conftest.py", "sample_data/org_contacts.jsonl",
                 "sample_data/contacts.jsonl", "target_salesforce_crm/py.typed"):
    if required not in members:
        problems.append(f"missing from the sdist: {required}")
stray = sorted(m for m in members if m.startswith((".venv", ".git/", "output/")) or
               "__pycache__" in m)
if stray:
    problems.append(f"the sdist carries local files: {stray[:5]}")
if problems:
    sys.exit("\n".join(problems))
print(f"   {meta['Name']} {meta['Version']}: {meta['License-Expression']}, "
      f"{len(meta.get_all('Classifier'))} classifiers, {len(meta.get_all('Project-URL'))} URLs, "
      f"{len(names)} files in the wheel, {len(members)} in the sdist")
PY

step "install the wheel into a fresh virtual environment"
"$PYTHON" -m venv "$WORK/venv"
pip_install "$WORK/venv/bin/python" "$wheel"
mkdir -p "$WORK/run" "$WORK/clone"
tar -xzf "$sdist" -C "$WORK/clone" --strip-components=1
cd "$WORK/run"  # outside the source tree: nothing can be imported from a checkout
export PATH="$WORK/venv/bin:$PATH"
unset PYTHONPATH
installed=$(python -c "import target_salesforce_crm as p; print(p.__file__)")
case "$installed" in
  "$WORK/venv/"*) echo "   imports from $installed" ;;
  *) fail "target_salesforce_crm imports from $installed, not from the installed wheel" ;;
esac

step "target-salesforce-crm --version / --about"
version=$(python -c "import importlib.metadata as m; print(m.version('target-salesforce-crm'))")
target-salesforce-crm --version > version.txt 2>&1
grep -q "target-salesforce-crm v$version" version.txt || { cat version.txt; fail "--version"; }
target-salesforce-crm --about > about.txt
target-salesforce-crm --about --format json > about.json
python - <<'PY' || { cat about.txt; fail "--about"; }
import json
about = json.load(open("about.json"))
assert about["name"] == "target-salesforce-crm", about["name"]
assert "login_url" in about["settings"]["properties"]
assert "login_url" in open("about.txt").read()
PY
echo "   $(head -1 version.txt | sed 's/.*| //')"

step "end to end: the installed emulator and the installed target"
python -m target_salesforce_crm.emulator --port 0 --ready-file "$WORK/run/url" \
  --segment-field Seg_Loyal_Customers__c --segment-field Seg_Cart_Abandoners__c \
  --segment-field Seg_Newsletter__c --seed "Contact=$WORK/clone/sample_data/org_contacts.jsonl" \
  > emulator.log 2>&1 &
emulator_pid=$!
wait_for_file "$WORK/run/url" || { cat emulator.log; fail "the installed emulator did not start"; }
url=$(cat "$WORK/run/url")
python - "$url" "$WORK/clone/sample_config.json" <<'PY'
import json, sys
config = json.load(open(sys.argv[2]))
config.update(login_url=sys.argv[1], rejected_records_path="rejected.jsonl",
              run_report_path="report.json")
json.dump(config, open("config.json", "w"))
PY
python "$WORK/clone/scripts/jsonl_to_singer.py" contacts "$WORK/clone/sample_data/contacts.jsonl" \
  > input.jsonl
set +e
target-salesforce-crm --config config.json < input.jsonl > states.jsonl 2> target.log
rc=$?
set -e
[ "$rc" -eq 0 ] || { tail -20 target.log; fail "the installed target exited $rc"; }
python - "$url" <<'PY' || { tail -20 target.log; fail "records did not land"; }
import json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1] + "/__emulator__/records/Contact") as answer:
    contacts = json.load(answer)
# the seeded Contacts are all named "Old<n>"; a landed profile renames its Contact
updated = [c for c in contacts if not str(c.get("LastName", "")).startswith("Old")]
report = json.load(open("report.json"))
states = [json.loads(line) for line in open("states.jsonl") if line.strip()]
assert report["status"] == "succeeded", report["status"]
assert updated and len(updated) == report["totals"]["updated"], (
    len(updated), report["totals"])
assert any(c.get("Seg_Loyal_Customers__c") for c in updated)
assert states and states[-1] == {"contacts": {"records": report["totals"]["received"]}}, states
print(f"   {len(updated)} of {len(contacts)} Contacts updated, "
      f"{report['totals']['rejected']} profiles dead-lettered, final STATE {states[-1]}")
PY
kill "$emulator_pid"; wait "$emulator_pid" 2>/dev/null || true; emulator_pid=""

step "the README's \"Without Meltano\" example, as written, in the unpacked sdist"
cd "$WORK/clone"
example=$(awk '/<!-- without-meltano/ {found=1; next} found && /^```bash/ {inside=1; next}
               inside && /^```/ {exit} inside {print}' README.md)
[ -n "$example" ] || fail "README.md has no \"without-meltano\" example block"
python - "$EXAMPLE_PORT" <<'PY' || fail "port $EXAMPLE_PORT is taken: the README example needs it"
import socket, sys
with socket.socket() as probe:
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    probe.bind(("127.0.0.1", int(sys.argv[1])))
PY
setsid bash -e -o pipefail -c "$example" > "$WORK/example.log" 2>&1 &
example_pid=$!
set +e
wait "$example_pid"
rc=$?
set -e
example_pid=""
[ "$rc" -eq 0 ] || { tail -30 "$WORK/example.log"; fail "the README example exited $rc"; }
python - "$EXAMPLE_PORT" <<'PY' || { tail -30 "$WORK/example.log"; fail "README example"; }
import json, socket, sys
report = json.load(open("output/run_report.json"))
assert report["status"] == "succeeded" and report["totals"]["updated"] > 0, report["totals"]
rejected = open("output/rejected_records.jsonl").read().splitlines()
assert rejected, "the deliberately bad profiles were not dead-lettered"
try:  # `kill $!` stopped the emulator
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5).close()
    raise AssertionError("the example left the emulator running")
except ConnectionRefusedError:
    pass
print(f"   {report['totals']['updated']} updated, {len(rejected)} dead-lettered, emulator stopped")
PY
echo "check_wheel: OK (${SECONDS}s)"
