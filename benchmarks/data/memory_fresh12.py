"""Scenario 12: project A is "emberforge", an in-house C++20 game engine and tools repo (CMake presets, Vulkan renderer, DXC/HLSL shaders, VMA, Jolt physics, Perforce with TeamCity preflight, an asset cooker); project B is "emberforge-gamescripts", the LuaJIT gameplay-scripting repo that runs on the engine (Git LFS, busted, hot-reload server). Facts are stated the way a developer tells a coding agent things: rules ("don't use std::shared_ptr in the renderer"), decisions with reasons, ownership of subsystems, paths, hosts/ports, versions and budgets, some lowercase without final period, some opening with a greeting, a few embedded in a bigger request. Project B overlaps A on topics (version control, language version, branch/review owner, port, test tooling) with different values."""

A, B = "/home/kenji/work/emberforge", "/home/kenji/work/emberforge-gamescripts"

FACTS_A = [
    "hey, heads up: this is a Perforce repo, not git. depot path is //Emberforge/main/... and the server is perforce.hollowpine.local:1666",
    "we target C++20 but no modules — MSVC and clang both fall over on them with our setup",
    "minimum CMake is 3.26, don't use anything newer in the CMakeLists without asking",
    "Vulkan SDK is pinned to 1.3.268.0, the CI build agents have exactly that version installed",
    "please don't use std::shared_ptr in the renderer, we use our own RefPtr<T> from Source/Core/Memory/RefPtr.h",
    "the render graph lives in Source/Renderer/RenderGraph and Tomasz owns it — he reviews every CL that touches it",
    "we went with VMA (Vulkan Memory Allocator) instead of keeping our own GPU allocator because the old one fragmented badly on AMD cards",
    "max frames in flight is 2. we tried 3 and input latency got noticeably worse on the Steam Deck",
    "morning! fyi shaders are HLSL compiled to SPIR-V with DXC, not glslang. they go in Shaders/ with the .hlsl extension",
    "exceptions and RTTI are disabled engine-wide (-fno-exceptions, /GR-), so failures go through Result<T, Error>",
    "Style: member variables get an m_ prefix and functions are PascalCase. The .clang-format is at the repo root, run it before you submit.",
    "Can you look at why the asset cooker crashes on the forest level? btw the cooker is Tools/AssetCooker and cooked output goes to Build/Cooked/<Platform>.",
    "the preset we use day to day is win64-dev; win64-shipping strips all the logging",
    "our logging macro is EF_LOG(Category, Level, fmt, ...) — no printf or std::cout anywhere in engine code",
    "frame budget on min spec (GTX 1060) is 16.6ms and the GPU gets 11ms of that. Anja tracks it on the perf dashboard",
    "third-party libs are vendored under ThirdParty/ and built through our own CMake. we don't use vcpkg or conan",
    "Jolt is our physics engine now, we dropped PhysX last year over licensing and binary size",
    "anything submitted to //Emberforge/main needs a green preflight on TeamCity first, build config Engine_Preflight",
    "the job system spins up 6 worker threads by default, you can override it with -jobthreads= on the command line",
    "big binaries like textures, .fbx and .psd need the +l exclusive-lock filetype in the typemap, otherwise two people end up editing the same file",
]

NEEDS_FACT = [
    ("what should I set P4PORT to on my new machine?", 0),
    ("if the pak file fails to open, should I just throw an exception from PakReader::Open?", 9),
    ("I need GPU memory for the new shadow atlas — what do we allocate buffers and images with?", 6),
    ("I want to add zlib-ng as a dependency, how do we usually bring in third-party code?", 15),
    ("who should I add as reviewer on my change to the barrier placement in the render graph?", 5),
    ("would bumping MAX_FRAMES_IN_FLIGHT to 3 be a cheap way to smooth out frame pacing?", 7),
    ("where does the cooker write its output for the linux build?", 11),
    ("how much GPU time per frame do we have to work with on min spec?", 14),
    ("I wrote the new bloom compute shader in GLSL, is that fine or do I need to convert it?", 8),
    ("what do I need to do before I can submit my CL to main?", 17),
]

NO_FACT = [
    "what's the difference between a VkFence and a VkSemaphore?",
    "how do I write a CMake generator expression that adds a compile flag only in Debug builds?",
    "explain std::move vs std::forward in plain terms",
    "what does srcStageMask in a pipeline barrier actually mean?",
    "how do I shelve a changelist from the p4 command line?",
    "what's a good way to find cache misses in a hot loop on Linux?",
    "can you explain descriptor indexing / bindless in Vulkan?",
    "why would I take a std::span instead of a pointer and a size?",
    "how does a lock-free single-producer single-consumer ring buffer work?",
    "what's the difference between PUBLIC, PRIVATE and INTERFACE in target_link_libraries?",
]

FACTS_B = [
    "this repo is on git with Git LFS, not Perforce — remote is git@git.hollowpine.local:gameplay/scripts.git",
    "we're on LuaJIT 2.1, so no Lua 5.3/5.4 stuff like the // integer division operator or <const> locals",
    "branch off trunk in this repo, and every PR needs one approval from Lena",
    "Lena owns the quest scripts under quests/, don't restructure that folder without her",
    "the script hot-reload server listens on port 4711; the engine connects to it when launched with -scriptdebug",
    "tests are written with busted, run `busted spec/` from the repo root",
]

QUESTIONS_B = [
    "can I use integer division with // in the new loot script?",
    "what port does the hot reload thing run on again?",
    "who has to approve my PR before it can be merged?",
]
