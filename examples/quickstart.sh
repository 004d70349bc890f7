#!/usr/bin/env bash
# The kagura-ops quick start, on local files only (no server, no network):
# create an identity, encrypt a secrets file, read it back, change one value
# and see that only that value's ciphertext changed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
export HOME="$work/home"   # keep the demo away from your real keys
mkdir -p "$HOME"

echo '$ kagura-ops keygen -o demo-key.txt'
kagura-ops keygen -o demo-key.txt 2>/dev/null
recipient=$(sed -n 's/^# public key: //p' demo-key.txt)
export SOPS_AGE_KEY_FILE="$work/demo-key.txt"

cat > secrets.yaml <<'YAML'
# API keys for the agents
openai:
  api_key: sk-demo-0123456789   # rotated monthly
  org: acme
anthropic:
  api_key: sk-ant-demo-9876543210
YAML

echo
echo '$ kagura-ops encrypt --age <recipient> secrets.yaml > secrets.enc.yaml'
kagura-ops encrypt --age "$recipient" secrets.yaml > secrets.enc.yaml
sed -e 's/\(data:[^,]\{12\}\)[^,]*/\1.../' -e '/BEGIN AGE/,/END AGE/c\              (armored age file of the data key)' secrets.enc.yaml | cut -c1-100

echo
echo '$ kagura-ops decrypt --extract '"'"'["anthropic"]["api_key"]'"'"' secrets.enc.yaml'
kagura-ops decrypt --extract '["anthropic"]["api_key"]' secrets.enc.yaml
echo

git init -q . && git add secrets.enc.yaml && git -c user.name=demo -c user.email=demo@example.invalid commit -qm "secrets"
echo
echo '$ kagura-ops set secrets.enc.yaml openai.org acme-research && git diff --stat'
kagura-ops set secrets.enc.yaml openai.org acme-research
git diff --stat | cat
git diff -U0 | grep '^[-+][^-+]' | cut -c1-60

# Part 2: the team repository in examples/team-repo — layers, encrypted secrets,
# a lockfile per environment. Compiling needs no private key at all.
cp -r "$here/team-repo" "$work/team-repo"
cd "$work/team-repo"
unset SOPS_AGE_KEY_FILE
echo
echo '$ cd examples/team-repo && kagura-ops compile --all-envs'
kagura-ops compile --all-envs 2>&1
echo
echo '$ kagura-ops config list --env production | grep llm'
kagura-ops config list --env production | grep '^llm\.'
echo
echo '$ kagura-ops config explain llm.temperature --env production'
kagura-ops config explain llm.temperature --env production
echo
echo '$ kagura-ops compile --check --all-envs && echo "lockfiles are fresh"'
kagura-ops compile --check --all-envs 2>/dev/null && echo "lockfiles are fresh"
