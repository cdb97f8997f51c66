# One-off generator for benchmarks/data/seed_grep_60.json (kept beside the data for review).
import json
people = ["alice", "bob", "carol", "dave", "erin", "frank"]
todos = [
    "add rate limiting", "validate the payload schema", "retry on 503 from the payment gateway",
    "cache the user lookup", "paginate the results", "log the request id", "handle the empty cart case",
    "move the secret to the vault", "use a transaction here", "check the ownership of the order",
    "remove the legacy v1 fallback", "emit a metric for slow queries",
]
files = ["src/api/orders.js", "src/api/users.js", "src/api/cart.js", "src/api/auth.js", "src/api/payments.js",
         "src/api/search.js", "src/services/inventory.js", "src/services/mailer.js", "src/middleware/session.js",
         "src/middleware/errors.js"]
before = ["router.post('/:id', async (req, res, next) => {", "  try {", "    const user = await requireUser(req);",
          "router.get('/', async (req, res, next) => {", "    const { id } = req.params;"]
after = ["    const result = await service.handle(req.body, user);", "    res.json(result);", "  } catch (err) {",
         "    return next(err);", "  }", "});"]
items = []
for i in range(60):
    f = files[(i * 7) % len(files)]
    line = 12 + (i * 37) % 240
    who = people[(i * 5) % len(people)]
    what = todos[(i * 11) % len(todos)]
    if i == 41:                     # the needle: exactly one rate-limiting TODO for carol
        who, what = "carol", "add rate limiting"
    elif who == "carol" and what == "add rate limiting":
        what = "add rate limiting per tenant"
    match = f"    // TODO({who}): {what}"
    b = [before[(i + k) % len(before)] for k in range(2)]
    a = [after[(i + k) % len(after)] for k in range(2)]
    context = "\n".join(b + [match] + a)
    items.append({"file": f, "line": line, "match": match.strip(), "context": context})
items.sort(key=lambda r: (r["file"], r["line"]))
json.dump(items, open("benchmarks/data/seed_grep_60.json", "w"), indent=2)
print(sum(1 for r in items if "carol" in r["match"] and "rate limiting" in r["match"]))
