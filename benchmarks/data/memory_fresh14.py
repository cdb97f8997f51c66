"""Project A is "Fleetwise.Api", a C#/.NET 8 Web API for fleet maintenance (EF Core on SQL Server,
Entra ID auth, Hangfire, Serilog, Azure App Service). Project B is its Angular 17 admin frontend,
kept in a separate repo (SignalStore, Jest/Playwright, Azure Static Web Apps). Facts are told the way
a developer tells a coding agent: plain statements, rules, decisions with reasons, conventions, owners,
paths, ports, URLs and limits. Some are lowercase with no final period, some open with small talk,
and a few are buried inside a longer request."""

A, B = "/home/dmitri/src/Fleetwise.Api", "/home/dmitri/src/fleetwise-admin"

FACTS_A = [
    # 0
    "hi! some context: the solution file is Fleetwise.sln at the repo root, and the startup project is src/Fleetwise.Api",
    # 1
    "we use EF Core with SQL Server 2022. locally it's a docker container on localhost,1434 because 1433 is taken by an old instance on my machine",
    # 2
    "Please don't add new NuGet packages without asking me. Versions are managed centrally in Directory.Packages.props.",
    # 3
    "We dropped AutoMapper last year because the mapping bugs only showed up at runtime. Mapping is done by hand in static *Mapper classes next to the DTOs, so don't reintroduce it.",
    # 4
    "migrations live in src/Fleetwise.Infrastructure/Persistence/Migrations and we name them with a yyyyMMdd prefix plus a PascalCase description, like 20240611_AddServiceIntervals",
    # 5
    "Auth is Entra ID JWT bearer; the audience is api://fleetwise-api and admin endpoints require the Fleetwise.Admin role claim.",
    # 6
    "Can you look at why VehicleEndpointsTests is flaky? fyi the integration tests spin up SQL Server through Testcontainers and the shared WebApplicationFactory fixture is tests/Fleetwise.IntegrationTests/ApiFactory.cs",
    # 7
    "API versioning is by URL segment. /api/v2 is current, v1 is deprecated and gets removed on 2025-03-31",
    # 8
    "Serilog writes to Seq in dev at http://localhost:5341 and to Application Insights in prod.",
    # 9
    "Nadia Okafor owns telematics ingestion (src/Fleetwise.Telematics). ping her before touching the MQTT consumer",
    # 10
    "pagination convention: every list endpoint takes page and pageSize, pageSize defaults to 50 with a max of 200, and returns PagedResult<T>",
    # 11
    "We deploy to the Azure App Service app-fleetwise-api-prod in West Europe with GitHub Actions; the workflow is .github/workflows/deploy-api.yml.",
    # 12
    "branching is trunk-based on main, release branches get cut as release/yyyy.mm",
    # 13
    "Hangfire runs the nightly maintenance reminder job at 02:30 UTC. The dashboard is at /jobs and only admins can open it.",
    # 14
    "nullable reference types are on and TreatWarningsAsErrors is set in Directory.Build.props, so don't silence warnings with ! unless you explain why in a comment",
    # 15
    "ok so for errors we always return RFC 7807 ProblemDetails, never plain strings, and request validation is FluentValidation",
    # 16
    "The CORS policy only allows https://admin.fleetwise.io and https://admin-staging.fleetwise.io, nothing else.",
    # 17
    "rate limiting uses the built-in Microsoft.AspNetCore.RateLimiting middleware, fixed window, 100 requests per 10 seconds per client id",
    # 18
    "Thanks, that worked. For future reference: money is always decimal(18,2) in the database and the currency is always EUR, we have no plans for multi-currency.",
    # 19
    "morning. for the record, the OpenAPI doc comes from Swashbuckle and the admin's TypeScript client is generated from /swagger/v2/swagger.json with NSwag, so keep the operationIds stable",
]

NEEDS_FACT = [
    ("what port is the local SQL Server container listening on?", 1),
    ("I need to map Driver to DriverDto — what's the approach we use for that here?", 3),
    ("How should I name the migration for the new fuel card table?", 4),
    ("what's the biggest pageSize a client is allowed to request?", 10),
    ("Until when do we have to keep the old version of the endpoints around?", 7),
    ("Who should I talk to before I change how we consume the messages coming from the trucks?", 9),
    ("what time do the nightly reminders fire?", 13),
    ("which origins can call the API from a browser?", 16),
    ("Where can I look at the structured logs when I'm running the API locally?", 8),
    ("what's the name of the app service prod runs on?", 11),
]

NO_FACT = [
    "What's the difference between AddScoped, AddTransient and AddSingleton?",
    "how do i return a 201 with a Location header from a minimal API endpoint",
    "Can you explain IQueryable vs IEnumerable in EF Core and why it matters for performance?",
    "What's the difference between a record and a record struct in C#?",
    "Does ConfigureAwait(false) still matter in ASP.NET Core code?",
    "how do I write an xUnit theory that takes its data from MemberData",
    "Explain what AsNoTracking does and when I shouldn't use it.",
    "what's the cleanest way to cancel an HttpClient call after 5 seconds?",
    "in LINQ, what's the difference between First, FirstOrDefault and Single?",
    "How do IOptions, IOptionsSnapshot and IOptionsMonitor differ?",
]

FACTS_B = [
    "the admin is Angular 17 with standalone components only, no NgModules. ng serve proxies /api to https://localhost:7081 through proxy.conf.json",
    "State management is NgRx SignalStore. Please don't add @ngrx/store, we deliberately moved away from actions and reducers.",
    "Priya Raman owns the design system, i.e. everything under src/app/shared/ui, so she reviews changes there",
    "the admin deploys to the Azure Static Web App swa-fleetwise-admin from the production branch",
    "Unit tests are Jest, not Karma, and the e2e tests are Playwright running against the staging API.",
    "please don't add npm packages without asking, the initial bundle budget is 1.5 MB and we're already close to it",
]

QUESTIONS_B = [
    "which branch do I push to for the admin to get deployed?",
    "who needs to review my change to the shared button component?",
    "can I use @ngrx/store for the vehicles list page state?",
]
