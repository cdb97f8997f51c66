"""A second memory scenario, written after the stage's defaults (min_relevance 0.3, retrieval_limit
5) were frozen and run once against them, not tuned on then (the current rule set was developed with it in view: it is in-sample now, docs/memory.md): other projects, other stacks, and facts
phrased the ways people say them in a chat (not only "Remember that …" / "We decided …"), so the
extractor's rules and the relevance threshold meet sentences they were not written from.

    python benchmarks/memory_eval.py --scenario fresh
"""

A, B = "/Users/sam/code/fleet-tracker", "/Users/sam/code/warehouse-ui"

FACTS_A = [   # sessions 1 and 2
    "Heads up: we're on Go 1.23 for every service in this repo.",
    "The team agreed to use gRPC between the tracker and the dispatcher.",
    "Keep in mind the dev cluster's kubeconfig context is called fleet-dev.",
    "Our message broker is NATS JetStream, not Kafka.",
    "I like table-driven tests, please write them that way.",
    "FYI the GPS ingest endpoint listens on port 7443.",
    "The vehicle positions table is partitioned by day.",
    "We always wrap errors with fmt.Errorf and %w, never pkg/errors.",
    "Just so you know, the on-call rotation is in PagerDuty under 'fleet-core'.",
    "Feature flags come from LaunchDarkly.",
    "Our Terraform lives in infra/terraform and uses the S3 backend.",
    "Please keep commit messages in the Conventional Commits format.",
    "The tech lead for this project is Priya Raman.",
    "Vehicle IDs are ULIDs prefixed with veh_.",
    "The geofence service is written in Rust and lives in services/geofence.",
    "Metrics go to Prometheus and dashboards are in Grafana folder Fleet.",
    "We deploy with Argo CD from the deploy branch.",
    "Don't use time.Now() directly; inject the clock interface from internal/clock.",
    "Secrets are stored in Vault at secret/fleet.",
    "The mobile driver app talks to the API through the /v2 routes only.",
]
NEEDS_FACT = [   # session 3: (question, the fact it needs, by its index in FACTS_A)
    ("Which Go version should the new service's go.mod declare?", 0),
    ("How should the tracker call the dispatcher?", 1),
    ("Which kube context do I switch to for the dev cluster?", 2),
    ("Which port does GPS ingest listen on?", 5),
    ("How do I wrap this error before returning it?", 7),
    ("Where do I add a new Terraform module?", 10),
    ("What format should this commit message use?", 11),
    ("What should a new vehicle ID look like?", 13),
    ("Where is the geofence code?", 14),
    ("How do I get the current time in this handler?", 17),
]
NO_FACT = [
    "What's the difference between a mutex and a semaphore?",
    "Write a SQL query that returns the second highest salary.",
    "How do I pretty-print JSON with jq?",
    "Explain what a closure is in JavaScript.",
    "How do I squash my last four commits into one?",
    "What does idempotent mean for an HTTP method?",
    "Give me a Python function that flattens a nested list.",
    "How do I find which process is using a port on macOS?",
    "Is quicksort stable?",
    "What is the difference between TCP and UDP?",
]
FACTS_B = [
    "This project uses Vue 3 with Pinia for state.",
    "Heads up: the warehouse UI dev server runs on port 5174.",
    "We always use the release branch for deploys here.",
    "The team agreed that SKUs are uppercase with a WH- prefix.",
    "Our tech lead is Tomasz Nowak.",
    "Keep in mind the API client is generated from openapi.yaml.",
]
QUESTIONS_B = ["Which port does the dev server use?", "Who is the tech lead?", "What do SKUs look like?"]
