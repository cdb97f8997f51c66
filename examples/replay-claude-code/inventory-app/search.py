"""search.py PATTERN DIR: regex matches in .py files, as JSON."""
import json, os, re, sys
pat, root = re.compile(sys.argv[1]), sys.argv[2]
out = []
for dp, _, fs in os.walk(root):
    for f in sorted(fs):
        if f.endswith(".py"):
            for i, line in enumerate(open(os.path.join(dp, f), errors="replace"), 1):
                if pat.search(line):
                    out.append({"file": f, "line": i, "match": line.strip()[:80]})
print(json.dumps(out[:20], indent=2))
