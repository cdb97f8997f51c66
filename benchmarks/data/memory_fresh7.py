"""Project A is a Go payments-ledger microservice (ledger-svc) at a fintech called Kestrel Pay: Postgres/sqlc, goose migrations, NATS, zerolog, Buildkite. Project B is the Helm/Kubernetes deploy repo for the same service (Argo CD, EKS). Facts are told the way a developer briefs a coding agent: plain statements, rules and preferences, decisions with reasons, owners, hosts, ports and limits, some lowercase and some tucked inside a larger request."""
A, B = "/home/marta/src/ledger-svc", "/home/marta/src/ledger-deploy"

FACTS_A = [
    "We're on Go 1.22 for this service, so please don't use anything that needs 1.23 (no range-over-func iterators).",
    "the service listens on port 8443 internally, health checks are on 9090 at /healthz",
    "Postgres 15 is the main store and we generate the query code with sqlc. Don't hand-write SQL strings in Go files.",
    "Hey! quick thing before you start: migrations live in db/migrations and we use goose, not golang-migrate.",
    "Please don't add new dependencies to go.mod without asking me first, security has to review every new module.",
    "Can you fix the flaky TestTransferIdempotency? fyi the integration tests expect Redis on localhost:6380, not the default port.",
    "we use zerolog for logging. no fmt.Println or log.Printf in prod code pls",
    "Dmitri Volkov owns the payments-gateway client in internal/gateway, ping him before you change its interface.",
    "Our main branch is called trunk, and PRs need two approvals before they can be merged.",
    "We went with NATS JetStream instead of Kafka for the event bus because ops didn't want to run ZooKeeper.",
    "idempotency keys expire after 36 hours, that's configured in config/idempotency.yaml",
    "Error convention: always wrap with fmt.Errorf and %w, and prefix the message with the package name, e.g. \"ledger: posting entry: %w\".",
    "The public API is rate limited to 250 requests per second per tenant.",
    "btw staging is at ledger.stg.kestrelpay.internal if you need to curl something",
    "Mocks are generated with mockery v2 (config in .mockery.yaml), just run `make mocks` after you change an interface.",
    "Amounts are ALWAYS int64 minor units (cents). Never float64 for money, that's a hard rule.",
    "CI is Buildkite, the pipeline definition is .buildkite/pipeline.yml",
    "our golangci-lint config caps functions at 80 lines, so split things up if you hit that",
    "The on-call rotation for this service is the 'Ledger Core' schedule in PagerDuty.",
    "Feature flags come from LaunchDarkly; the SDK key is read from the LD_SDK_KEY env var, never hardcode it.",
]

NEEDS_FACT = [
    ("Can I use the new range-over-func iterator syntax in the ledger code?", 0),
    ("what port does the service listen on inside the cluster?", 1),
    ("I need to add a column to the accounts table, which migration tool do we use and where do the files go?", 3),
    ("The integration tests fail with connection refused on redis, what address are they supposed to hit?", 5),
    ("Who should I talk to before I change the interface in internal/gateway?", 7),
    ("How long do we keep idempotency keys before they expire?", 10),
    ("what's the per-tenant request limit on the public API?", 12),
    ("what's the hostname of the staging environment again?", 13),
    ("I just changed the Store interface, how do I regenerate the mocks?", 14),
    ("Should the new fee field be a float64 or something else?", 15),
]

NO_FACT = [
    "How do goroutines get scheduled onto OS threads?",
    "What's the difference between a buffered and an unbuffered channel in Go?",
    "Can you explain what context.WithCancel does and when I have to call the cancel function?",
    "how do I write a table-driven test in Go?",
    "What does errors.As do differently from errors.Is?",
    "Is it safe to read a Go map from multiple goroutines if nobody writes to it?",
    "give me a shell one-liner to find the 10 largest files in a directory",
    "What's the difference between an index scan and a bitmap heap scan in Postgres EXPLAIN output?",
    "how does sync.Once work under the hood?",
    "When should I use git rebase instead of git merge?",
]

FACTS_B = [
    "This repo deploys through Argo CD, the Application manifests are under argocd/apps/.",
    "default branch here is main, not trunk like the service repo",
    "In the ledger chart the container port is 7000 and the Service exposes it on port 80.",
    "Production runs on the EKS cluster prod-eu-west-1, Kubernetes 1.29.",
    "Priya Raman from the platform team owns the Helm charts and reviews every chart change.",
    "for preview environments we use the Bitnami postgresql chart 13.2.24, which gives us Postgres 14",
]

QUESTIONS_B = [
    "Which Kubernetes version is the prod cluster on?",
    "who needs to review changes to the helm charts?",
    "What port does the container listen on according to the chart?",
]
