"""Grep-like search results of three shapes, for `benchmarks/savings.py` (crush on field names it
was not written for). Written after lynkr/savings/crush.py's column rules, with field names and
nesting of three real kinds of search output; `python benchmarks/data/make_grep_shapes.py` rewrites
grep_shapes.json. Each shape lists, per row, the facts that must survive crushing verbatim."""
import hashlib
import json
import random
from pathlib import Path

rng = random.Random(7)
PEOPLE = ["ana", "bo", "chen", "dara", "eli", "fay", "gus"]
TASKS = ["drop the deprecated flag", "batch these writes", "guard against a nil pointer", "close the file handle",
         "use the shared http client", "index this column", "stream instead of buffering", "check the exit code",
         "escape the user input", "make the timeout configurable", "dedupe the retries", "add a span for tracing"]
FILES = ["internal/store/orders.go", "internal/store/users.go", "internal/http/router.go", "internal/http/auth.go",
         "cmd/server/main.go", "internal/queue/worker.go", "internal/queue/retry.go", "pkg/config/load.go",
         "pkg/metrics/metrics.go"]
BEFORE = ["func (s *Store) Get(ctx context.Context, id string) (*Order, error) {", "\tif err != nil {",
          "\tdefer rows.Close()", "\tctx, cancel := context.WithTimeout(ctx, 5*time.Second)"]
AFTER = ["\t\treturn nil, err", "\t}", "\treturn out, nil", "}", "\tdefer cancel()"]


def hits(n=64):
    out = []
    for i in range(n):
        f = FILES[(i * 5) % len(FILES)]
        line = 20 + (i * 29) % 400
        text = f"// TODO({PEOPLE[(i * 3) % len(PEOPLE)]}): {TASKS[(i * 7) % len(TASKS)]}"
        out.append((f, line, 1 + (i % 3), text, [BEFORE[(i + k) % 4] for k in range(2)], [AFTER[(i + k) % 5] for k in range(2)]))
    return sorted(out)


def rg_context():
    rows = [{"path": f"/home/dev/orders-svc/{f}", "lineNumber": ln, "column": col, "text": t, "before": b, "after": a,
             "repo": "orders-svc", "branch": "main"} for f, ln, col, t, b, a in hits()]
    return rows, [[r["path"], str(r["lineNumber"]), r["text"]] for r in rows]


def ide_search():
    rows = [{"uri": f"file:///home/dev/orders-svc/{f}", "relativePath": f,
             "range": {"startLine": ln, "startCharacter": col, "endLine": ln, "endCharacter": col + len(t)},
             "preview": "\n".join(b + [t] + a), "kind": "comment", "workspace": "orders-svc"}
            for f, ln, col, t, b, a in hits()]
    return {"query": "TODO", "results": rows}, [[r["relativePath"], str(r["range"]["startLine"]),
                                                  r["preview"].split("\n")[2]] for r in rows]


def code_search():
    rows = [{"repository": {"name": "orders-svc", "owner": "acme"},
             "file": {"path": f, "url": f"https://git.example.com/acme/orders-svc/blob/main/{f}",
                      "sha": hashlib.sha1(f.encode()).hexdigest()[:12]},
             "lineno": ln, "hit": t, "fragment": "\n".join(b + [t] + a)} for f, ln, col, t, b, a in hits()]
    return {"total": len(rows), "items": rows}, [[r["file"]["path"], str(r["lineno"]), r["hit"], r["file"]["sha"]]
                                                 for r in rows]


if __name__ == "__main__":
    shapes = {}
    for name, make in (("ripgrep with context", rg_context), ("IDE search (LSP-like ranges)", ide_search),
                       ("code-search API (nested repository/file)", code_search)):
        value, facts = make()
        shapes[name] = {"result": value, "facts": facts}
    (Path(__file__).resolve().parent / "grep_shapes.json").write_text(json.dumps(shapes, indent=1))
