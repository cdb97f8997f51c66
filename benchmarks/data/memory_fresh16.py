"""Project A is the Kotlin Android app of a grocery delivery service called Basketly
(Jetpack Compose, Hilt, Ktor client, Room, Firebase Remote Config, Bitrise). Project B is
the company's Node.js/TypeScript backend-for-frontend (Fastify) that the app calls.
Facts are phrased the way a developer tells a coding agent things: plain statements,
rules and preferences, decisions with reasons, ownership, module paths, versions, hosts,
limits and naming conventions, some lowercase, some after small talk, a few inside a
larger request. Project B reuses some topics (owner, branch/deploy, port, caching,
storage) with different values."""

A, B = "/home/dana/code/basketly-android", "/home/dana/code/basketly-bff"

FACTS_A = [
    # 0
    "hi! heads up: minSdk is 26 and targetSdk is 34, so don't suggest anything that needs a higher minSdk",
    # 1
    "We use Hilt for DI. We migrated off Koin last year because missing bindings only blew up at runtime in production.",
    # 2
    "the app talks to the BFF at https://bff.basketly.io/mobile/v3, staging is https://bff-staging.basketly.io/mobile/v3",
    # 3
    "Please don't add new gradle dependencies without asking me first",
    # 4
    "release apk size budget is 28 MB for the universal apk, the CI size check fails the build above that",
    # 5
    "Design tokens live in core/designsystem/src/main/kotlin/io/basketly/designsystem/BasketlyTheme.kt — never hardcode colors or dimensions inside composables.",
    # 6
    "Can you look into why the cart screen recomposes so often? btw we're on Compose BOM 2024.06.00 and Kotlin 2.0.0 with the compose compiler gradle plugin",
    # 7
    "local persistence is Room, the db file is basketly.db, schema version is 14 right now and exported schemas are committed under app/schemas",
    # 8
    "Marta Okonkwo owns the :feature:checkout module. She has to approve every PR that touches it.",
    # 9
    "networking is Ktor client, not Retrofit. we picked it because the network layer is shared with the KMP module the iOS app uses",
    # 10
    "Feature flags come from Firebase Remote Config and every key is prefixed with and_, like and_new_checkout",
    # 11
    "Release builds run on Bitrise; pushing a tag that matches v*.*.*-rc uploads the build to the Play internal testing track.",
    # 12
    "branch naming is feature/BSK-<ticket number>-short-description, BSK is our jira project key",
    # 13
    "screenshot tests use Paparazzi — record with ./gradlew recordPaparazziDebug and commit the generated pngs with your PR",
    # 14
    "good morning :) fyi our crash-free users target is 99.6%, if a staged rollout drops below that we halt it",
    # 15
    "navigation uses type-safe Navigation Compose with @Serializable route objects, we removed all the string routes",
    # 16
    "analytics events go through our AnalyticsTracker interface only, names in snake_case and we cap them at 32 characters",
    # 17
    "Deep links use the custom scheme basketly:// plus https app links on links.basketly.io.",
    # 18
    "the debug build has a hidden dev menu, you open it by tapping the version label in Settings 7 times",
    # 19
    "accessibility rules from design: every tappable element gets at least a 48dp touch target, and screens must still work at 200% font scale",
]

NEEDS_FACT = [
    ("what's the oldest Android version we support? can I use java.time directly without core library desugaring?", 0),
    ("Let's use Coil for the product images, just add it to libs.versions.toml and set it up.", 3),
    ("I need a warning color for the out-of-stock banner, where do our theme colors come from?", 5),
    ("I'm adding a favorites table to the local database. What do I bump the schema version to?", 7),
    ("who should review my PR? it changes the payment step in checkout", 8),
    ("remind me why we didn't go with Retrofit for the API calls?", 9),
    ("what should I name the remote config flag for the new reorder button?", 10),
    ("How do I get a release candidate build onto the internal testing track?", 11),
    ("what should I call my branch for ticket 412, the address autocomplete one?", 12),
    ("how do I get into the developer options in a debug build? I can't find them anywhere", 18),
]

NO_FACT = [
    "What's the difference between remember and rememberSaveable?",
    "how do I collect a StateFlow in a composable in a lifecycle-aware way?",
    "When should I use derivedStateOf instead of just remember with keys?",
    "what's the difference between launch and async in kotlin coroutines",
    "How do I give LazyColumn items stable keys so they don't all recompose when the list changes?",
    "Can you explain what inline functions with reified type parameters are good for?",
    "sealed interface vs sealed class in Kotlin, when would I pick which?",
    "give me an adb one-liner to clear an app's data",
    "What's the difference between Dispatchers.IO and Dispatchers.Default?",
    "how does the key parameter of LaunchedEffect work?",
]

FACTS_B = [
    "this BFF is Node 20 + TypeScript 5.4 on Fastify, locally it listens on port 4100",
    "It aggregates the orders service and the catalog service; the catalog service is at http://catalog.internal:8081.",
    "catalog endpoints are cached in Redis with a 60 second TTL",
    "we deploy from main through GitHub Actions to Cloud Run in europe-west1",
    "Jonas Lindqvist owns the BFF. Ask him before changing the response shape of any /mobile/v3 endpoint.",
    "sessions are stored in PostgreSQL 15, schema bff_sessions, nothing else uses that database",
]

QUESTIONS_B = [
    "what port does the BFF listen on when I run it locally?",
    "I want to add a field to the /mobile/v3/cart response, who do I need to check with first?",
    "how long do catalog responses stay cached?",
]
