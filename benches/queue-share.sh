#!/usr/bin/env bash
# The event queue's share of a whole `sim run`'s instructions, robust to
# inlining: callgrind counts every instruction (`--dump-instr=yes`), and
# `addr2line -i` gives each instruction's whole chain of inlined functions.
# An instruction is the queue's when any function of its chain is in
# `sim/engine/queue.rs`, or when it lies in a `BinaryHeap` function called
# out of line (only the queue has one). So inlining `push` or `pop_until`
# into the model moves no instruction out of the queue's count, as counting
# callgrind's functions by name would.
#
#   cargo build --release && benches/queue-share.sh scenarios/thundering-herd-breaker.json
#
# Needs valgrind, binutils' addr2line and python3 (Debian: `apt-get install
# valgrind binutils python3`). SIM names another binary to measure.
set -euo pipefail
cd "$(dirname "$0")/.."
sim=$(realpath "${SIM:-target/release/sim}")
scenario=${1:?usage: benches/queue-share.sh SCENARIO.json [SEED]}
seed=${2:-42}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

valgrind --tool=callgrind --dump-instr=yes --callgrind-out-file="$dir/profile" \
    "$sim" run "$scenario" --seed "$seed" --no-charts --out "$dir/out" >/dev/null 2>&1
python3 - "$dir/profile" "$sim" <<'PY'
import re, subprocess, sys
from collections import defaultdict

profile, binary = sys.argv[1], sys.argv[2]

# Callgrind's format: `ob=`, `fl=`, `fn=` name the object, file and
# function of the cost lines that follow, compressed to `(id)` after their
# first use; a cost line is `address line Ir`, each position absolute,
# relative (`+n`, `-n`) or the same (`*`); the cost line after `calls=`
# is a call's inclusive cost, not the instruction's own.
names = {}
def name(kind, text):
    match = re.match(r'\((\d+)\)(?: (.*))?', text)
    if not match:
        return text
    key = (kind, match.group(1))
    if match.group(2) is not None:
        names[key] = match.group(2)
    return names.get(key, '?')

def position(token, last):
    if token == '*':
        return last
    if token[0] in '+-':
        return last + int(token, 0)
    return int(token, 0)

cost = defaultdict(int)
obj = function = None
address = line = total = 0
call_cost_next = False
with open(profile) as lines:
    for raw in lines:
        raw = raw.rstrip('\n')
        if not raw or raw[0] == '#':
            continue
        key, _, value = raw.partition('=')
        if key == 'ob':
            obj = name('ob', value)
        elif key in ('fl', 'fi', 'fe', 'cfi', 'cfl'):
            name('fl', value)
        elif key == 'fn':
            function = name('fn', value)
        elif key == 'cob':
            name('ob', value)
        elif key == 'cfn':
            name('fn', value)
        elif key == 'calls':
            call_cost_next = True
        elif raw[0].isdigit() or raw[0] in '+-*':
            tokens = raw.split()
            address = position(tokens[0], address)
            if len(tokens) > 1:
                line = position(tokens[1], line)
            if call_cost_next:
                call_cost_next = False
                continue
            instructions = int(tokens[2]) if len(tokens) > 2 else 0
            total += instructions
            cost[(obj, address, function)] += instructions

ours = {k: v for k, v in cost.items() if k[0] == binary}
addresses = sorted({address for (_, address, _) in ours})
resolved = subprocess.run(['addr2line', '-i', '-f', '-C', '-a', '-e', binary],
                          input='\n'.join(map(hex, addresses)),
                          capture_output=True, text=True, check=True).stdout
chains = {}
for entry in resolved.splitlines():
    if entry.startswith('0x'):
        current = chains.setdefault(int(entry, 16), [])
    else:
        current.append(entry)
queue = unresolved = 0
for (_, address, function), instructions in ours.items():
    chain = chains.get(address, [])
    if not chain or chain[0] == '??':
        unresolved += instructions
    if any('engine/queue.rs' in frame for frame in chain) or 'BinaryHeap' in (function or ''):
        queue += instructions
if total == 0 or not ours:
    sys.exit(f'error: no instructions of {binary} in the profile')
print(f'instructions {total:,}, event queue {queue:,}: {100 * queue / total:.1f}%'
      + (f' ({unresolved:,} of the binary unresolved)' if unresolved else ''))
PY
