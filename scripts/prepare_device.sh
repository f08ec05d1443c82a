#!/usr/bin/env bash
# Fills .device/ (git-ignored) with what bench/gpu/run.sh needs on the GPU
# machine, which has no Debian packages and no network: the headers of
# doctest, Google Benchmark and nlohmann-json, Debian's libbenchmark (under
# its link name and its soname), pkg-config files for the three (prefix
# relative to the .pc file, so the folder works wherever it is carried),
# a minimal pkg-config stand-in for machines without one, and the reference
# pipeline shared/bench/anchor_ops.py. Run on this (CPU) machine, then pass
# ".device" in the device tool's carry list.
set -euo pipefail
cd "$(dirname "$0")/.."
D=.device
rm -rf "$D/include" "$D/lib" "$D/pkgconfig" "$D/bin"
mkdir -p "$D/include" "$D/lib" "$D/pkgconfig" "$D/bin"
cp -r /usr/include/doctest /usr/include/benchmark /usr/include/nlohmann "$D/include/"
[ -f /usr/include/nlohmann/json.hpp ] || { echo "prepare_device: nlohmann-json3-dev missing" >&2; exit 1; }
lib=$(readlink -f /usr/lib/x86_64-linux-gnu/libbenchmark.so)
soname=$(objdump -p "$lib" | awk '/SONAME/ {print $2}')
cp "$lib" "$D/lib/libbenchmark.so"
cp "$lib" "$D/lib/$soname"
for pc in doctest:2.4.9:: benchmark:1.7.1:"-L\${prefix}/lib -lbenchmark -lpthread": nlohmann_json:3.11.2::; do
  IFS=: read -r name ver libs _ <<<"$pc"
  cat >"$D/pkgconfig/$name.pc" <<PC
prefix=\${pcfiledir}/..
includedir=\${prefix}/include

Name: $name
Description: copied from this machine's Debian package for the GPU check
Version: $ver
Cflags: -I\${includedir}
Libs: $libs
PC
done
# The reference pipeline, for a checkout that has no shared/ beside it.
for src in shared/bench/anchor_ops.py ../shared/bench/anchor_ops.py /work/shared/bench/anchor_ops.py; do
  if [ -f "$src" ]; then cp "$src" "$D/anchor_ops.py"; break; fi
done
[ -f "$D/anchor_ops.py" ] || { echo "prepare_device: anchor_ops.py not found" >&2; exit 1; }
# pkg-config stand-in (used by run.sh only when the machine has none):
# answers Meson's queries from the .pc files above.
cat >"$D/bin/pkg-config" <<'PY'
#!/usr/bin/env python3
import os, re, sys
dirs = [d for d in os.environ.get("PKG_CONFIG_PATH", "").split(":") if d]
def load(name):
    for d in dirs:
        p = os.path.join(d, name + ".pc")
        if os.path.isfile(p):
            v = {"pcfiledir": os.path.dirname(os.path.abspath(p))}
            f = {}
            for line in open(p):
                line = line.strip()
                m = re.match(r"^([A-Za-z_.]+)\s*=\s*(.*)$", line)
                k = re.match(r"^([A-Za-z.]+):\s*(.*)$", line)
                sub = lambda s: re.sub(r"\$\{(\w+)\}", lambda g: v.get(g.group(1), ""), s)
                if m: v[m.group(1)] = sub(m.group(2))
                elif k: f[k.group(1)] = sub(k.group(2))
            return v, f
    return None
args = [a for a in sys.argv[1:]]
if "--version" in args: print("0.29.2"); sys.exit(0)
names = [a for a in args if not a.startswith("-")]
out = []
for n in names:
    r = load(n)
    if r is None: sys.exit(1)
    v, f = r
    for a in args:
        if a == "--modversion": out.append(f.get("Version", ""))
        elif a == "--cflags": out.append(f.get("Cflags", ""))
        elif a == "--libs": out.append(f.get("Libs", ""))
        elif a.startswith("--variable="): out.append(v.get(a.split("=", 1)[1], ""))
print(" ".join(x for x in out if x) if out else "")
PY
chmod +x "$D/bin/pkg-config"
du -sh "$D"
