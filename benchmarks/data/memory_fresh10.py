"""Project A is TrailMate, an iOS hiking app in Swift/SwiftUI with TCA, SPM, Mapbox, RevenueCat, Crashlytics and fastlane. Project B is tm-release-cli, an internal Python (Typer) command-line tool the release engineers use to talk to App Store Connect. Facts are phrased the way an iOS developer briefs an agent: deployment targets and tool versions, architecture rules, URLs, limits, owners, release cadence, some with greetings or as an aside in a bug-fix request."""
A, B = "/home/priyanka/code/trailmate-ios", "/home/priyanka/code/tm-release-cli"

FACTS_A = [
    "Minimum deployment target is iOS 16, so no SwiftData and no @Observable macro.",
    "All new screens are SwiftUI; the old UIKit screens under Legacy/ stay as they are until the redesign.",
    "Dependencies are Swift Package Manager only, we removed CocoaPods in 2023. please don't suggest pods",
    "architecture is TCA (Composable Architecture) 1.9, and every feature gets its own folder under Features/ with its Reducer in it",
    "hey, so the staging backend is https://staging-api.trailmate.app and prod is https://api.trailmate.app",
    "Offline maps are cached in Application Support with a max size of 1.5 GB, after that we evict least recently used regions.",
    "Mateo Ruiz owns the map rendering module (TrailMapKit), don't change its public API without talking to him.",
    "We went with Mapbox instead of MapKit because we need custom vector tile styles for the trail difficulty colors.",
    "swiftlint runs as a build phase, line length limit is 140",
    "Can you fix the crash in the elevation chart? btw crashes go to Firebase Crashlytics and the dSYMs are uploaded by the fastlane lane upload_symbols.",
    "Localization uses String Catalogs (Localizable.xcstrings) and we ship English, French and Japanese.",
    "please keep all colors in the asset catalog under Colors/, never hardcode hex values in views",
    "The bundle id is app.trailmate.ios and our team id is 7QK2M9XP4D.",
    "TestFlight builds go out every Thursday from the release/* branches.",
    "while recording a hike the GPS sampling interval is 5 seconds, 2 seconds in precise mode",
    "Snapshot tests use swift-snapshot-testing and are recorded on the iPhone 15 simulator with iOS 17.5, other simulators will produce diffs.",
    "CI is Xcode Cloud on Xcode 15.4. Don't switch anything to Swift 6 language mode yet.",
    "In-app purchases go through RevenueCat and the premium entitlement is called trail_pro.",
    "The Mapbox token and other secrets are in Config/Secrets.xcconfig, which is gitignored; copy Secrets.example.xcconfig to get started.",
    "For analytics we use TelemetryDeck. No third-party trackers that would need an ATT prompt.",
]

NEEDS_FACT = [
    ("Can I use the @Observable macro for the new settings model?", 0),
    ("How do I add Kingfisher to the project?", 2),
    ("where should the reducer for the new trip planner feature live?", 3),
    ("What's the URL of the staging server?", 4),
    ("How much disk space can the offline maps take before stuff gets evicted?", 5),
    ("Who do I check with before changing the public API of the map module?", 6),
    ("why aren't we just using Apple's MapKit?", 7),
    ("Which languages do we have translations for?", 10),
    ("When does the next TestFlight build go out?", 13),
    ("What entitlement name should I check to see if the user has premium?", 17),
]

NO_FACT = [
    "What's the difference between @State and @StateObject in SwiftUI?",
    "When do I need [weak self] in a closure?",
    "Can you explain what an actor is in Swift concurrency?",
    "what's the difference between a struct and a class in Swift?",
    "How do I add swipe-to-delete to a SwiftUI List?",
    "What does @MainActor do when I put it on a function?",
    "how do I format a Date as an ISO 8601 string in Swift?",
    "Explain the difference between `some View` and `any View`.",
    "What is the difference between escaping and non-escaping closures?",
    "how do I squash the last 3 commits in git?",
]

FACTS_B = [
    "The CLI is built with Typer and packaged with uv, Python 3.12 is the minimum.",
    "It talks to App Store Connect with API key id ZX84KQ2L1M; the .p8 file path comes from the ASC_KEY_PATH env var.",
    "tests are pytest and CI fails below 85% coverage",
    "Hannah Okafor from release engineering owns this tool.",
    "Default branch in this repo is master, and releases are tagged vX.Y.Z.",
    "line length here is 100, ruff enforces it",
]

QUESTIONS_B = [
    "what's the minimum Python version for the CLI?",
    "What coverage do the tests need to hit to pass CI?",
    "who maintains this tool?",
]
