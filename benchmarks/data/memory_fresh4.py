"""A fifth memory scenario, written by the author of the current rule set after it was built and
before this file was first run (its first-run figures are in docs/memory.md): a Kotlin/Spring
backend and a SvelteKit admin, facts said in the middle of turns that also thank, ask and request,
in lower-case chat, after lead-ins, as labels ("Timezones: …") and next to a rule's reason.

    python benchmarks/memory_eval.py --scenario fresh4
"""

A, B = "/home/kim/work/clinic-booking", "/home/kim/work/clinic-admin"

FACTS_A = [   # sessions 1 and 2
    "morning! fyi we're on Spring Boot 3.3 with Kotlin 2.0, so don't suggest Java-style getters.",
    "Can you look at the booking controller? Context: appointments are stored in the `slots` table, one row per 15-minute slot.",
    "The Postgres instance for local dev runs in docker on port 5544 — not the default, careful.",
    "Patient names must never appear in logs (GDPR), use the patient id instead.",
    "Thanks, that fixed it. Btw Ingrid from compliance reviews every change to the consent module.",
    "we use Flyway for migrations, they live in src/main/resources/db/migration",
    "Let me explain the setup: the frontend talks to us only through the BFF at /bff/*, never directly.",
    "SMS reminders are sent via Twilio 24 hours before the appointment.",
    "Please add an index on slots.starts_at. Also, for future reference, integration tests use Testcontainers, not an H2 database.",
    "Timezones: everything is stored as UTC and converted in the client.",
    "I'd prefer constructor injection everywhere, no field @Autowired.",
    "Our Kubernetes cluster is on GKE in europe-west3.",
    "OK so the billing export is a nightly Cloud Run job called export-invoices.",
    "Small thing — the API returns problem+json (RFC 9457) for all errors.",
    "The mobile team (Aron and Sofia) consumes our OpenAPI spec from /v3/api-docs.",
    "Feature toggles are in Unleash; the project name there is clinic-booking.",
    "Reminder: the code freeze for releases is Thursday 12:00 CET.",
    "Ktlint runs in a pre-commit hook, so format before committing.",
    "Max 3 bookings per patient per day, that's a business rule from the clinics.",
    "Sentry collects exceptions from prod; the DSN comes from the SENTRY_DSN env var.",
]
NEEDS_FACT = [   # session 3: (question, the fact it needs, by its index in FACTS_A)
    ("Which Spring Boot version are we on?", 0),
    ("What table holds the appointment slots?", 1),
    ("What port is the local Postgres on?", 2),
    ("Can I log the patient's name when a booking fails?", 3),
    ("Who needs to review changes to the consent module?", 4),
    ("Where do I put a new database migration?", 5),
    ("Should I use H2 for the new integration test?", 8),
    ("How should I inject dependencies in the new service?", 10),
    ("Where is our Kubernetes cluster hosted?", 11),
    ("How many bookings can a patient make per day?", 18),
]
NO_FACT = [
    "What's the difference between a data class and a regular class in Kotlin?",
    "How do I write a coroutine that times out after 2 seconds?",
    "Explain optimistic locking in JPA.",
    "What's a good regex for a Swiss phone number?",
    "How do I squash my last three commits?",
    "What does idempotent mean for an HTTP PUT?",
    "Summarize the differences between OAuth2 and OpenID Connect.",
    "How do I make a bash loop over lines of a file?",
    "What is a bloom filter used for?",
    "Give me a SQL query that finds duplicate emails in a users table.",
]
FACTS_B = [
    "The admin app is SvelteKit 2 with TypeScript strict mode.",
    "hey, quick one: admin users log in via Azure AD, tenant clinic-corp.",
    "Tables in the admin use the DataGrid component from src/lib/grid.",
    "We deploy the admin to Vercel from the main branch.",
    "The admin's design contact is Noor.",
    "Dates in the admin are shown in dd.MM.yyyy format.",
]
QUESTIONS_B = ["How do admin users log in?", "Where is the admin deployed?", "Who do I ask about the admin's design?"]
