// swift-tools-version:6.0
import PackageDescription

// Imports run one way, down (docs/architecture.md): maclr -> {Sweeps, Benchmarks} -> Evaluation
// -> Training -> {Pathways, Losses, DataHDF5, Cluster} -> {Backbones, Video, LongWork} -> Tensor
// -> CBLAS; Sweeps -> CCairo for its report plots.

// The kernel modules are optimised even in debug builds (tests stay fast; preconditions stay on)
// and compiled for the CPU that builds them: without it Swift targets baseline x86-64 (SSE2, no
// FMA), so every SIMD loop runs 4 floats wide on a CPU that has 16. Set MACLR_PORTABLE=1 when
// building a binary for other machines, or MACLR_TARGET_CPU=znver3 (or haswell) for one that runs AVX2 code
// only (an AVX2 CPU's build, measurable on an AVX-512 one); MACLR_NATIVE then stays undefined:
// see EngineOptions.packedGEMMPays.
let targetCPU = Context.environment["MACLR_TARGET_CPU"]
let kernelFlags: [SwiftSetting] = [.unsafeFlags(
    Context.environment["MACLR_PORTABLE"] != nil ? ["-O"]
        : targetCPU.map { ["-O", "-target-cpu", $0] } ?? ["-O", "-target-cpu", "native", "-DMACLR_NATIVE"])]
let package = Package(
    name: "maclr",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "Tensor", targets: ["Tensor"]),
        .library(name: "Backbones", targets: ["Backbones"]),
        .library(name: "Pathways", targets: ["Pathways"]),
        .library(name: "Training", targets: ["Training"]),
        .library(name: "Evaluation", targets: ["Evaluation"]),
        .executable(name: "maclr", targets: ["maclr"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        .package(url: "https://github.com/swiftcsv/SwiftCSV", from: "0.10.0"),
    ],
    targets: [
        // System libraries: a module map, a shim header for the macros Swift cannot import, pkg-config.
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CHDF5", path: "Sources/CHDF5", pkgConfig: "hdf5",
                       providers: [.apt(["libhdf5-dev"])]),
        .systemLibrary(name: "CCairo", path: "Sources/CCairo", pkgConfig: "cairo",
                       providers: [.apt(["libcairo2-dev"])]),
        .systemLibrary(name: "CFFmpeg", path: "Sources/CFFmpeg", pkgConfig: "libavformat",
                       providers: [.apt(["libavformat-dev", "libavcodec-dev", "libavutil-dev", "libswscale-dev"])]),
        .systemLibrary(name: "CMPI", path: "Sources/CMPI", pkgConfig: "ompi-c",
                       providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),

        .target(name: "Tensor", dependencies: ["CBLAS"], swiftSettings: kernelFlags),
        .target(name: "Backbones", dependencies: ["Tensor"]),
        .target(name: "Losses", dependencies: ["Tensor"]),
        .target(name: "Pathways", dependencies: ["Backbones", "Losses", "Tensor"]),
        .target(name: "Video", dependencies: ["CFFmpeg", "Tensor"], swiftSettings: kernelFlags),
        // Progress lines and clean stops on SIGTERM / SIGINT, for every long job.
        .target(name: "LongWork"),
        // The shard format, preparation from videos, clip sampling, augmentation, the loader.
        .target(name: "DataHDF5", dependencies: ["CHDF5", "Video", "Tensor", "LongWork",
                                                  .product(name: "SwiftCSV", package: "SwiftCSV")],
                swiftSettings: kernelFlags),
        // Data-parallel processes over MPI, behind Tensor's Collective.
        .target(name: "Cluster", dependencies: ["CMPI", "Tensor"]),
        // The recipe and what it derives, the trainer loop, the run folder and its checkpoints.
        .target(name: "Training", dependencies: ["Backbones", "Tensor", "Video", "DataHDF5", "Losses", "Pathways", "Cluster", "LongWork",
                                                  .product(name: "Yams", package: "Yams")]),
        // Probe, retrieval, kNN, extract, export, saliency.
        .target(name: "Evaluation", dependencies: ["Training", "Pathways", "Backbones", "Losses", "DataHDF5", "Video", "Tensor", "LongWork"]),
        // Sweep files, the ablation runner, results, plots, the HTML report.
        .target(name: "Sweeps", dependencies: ["Evaluation", "Training", "DataHDF5", "Tensor", "LongWork", "CCairo",
                                                .product(name: "Yams", package: "Yams")]),
        // Throughput figures beside PyTorch and h5py: timing lives here, never in the engine.
        .target(name: "Benchmarks", dependencies: ["Training", "Pathways", "Backbones", "Losses", "DataHDF5", "Video", "Tensor"],
                swiftSettings: kernelFlags),
        .executableTarget(name: "maclr", dependencies: [
            "Training", "Evaluation", "Sweeps", "Benchmarks",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        .testTarget(name: "TensorTests", dependencies: ["Tensor"]),
        .testTarget(name: "BackbonesTests", dependencies: ["Backbones", "Tensor"], exclude: ["Fixtures"]),
        .testTarget(name: "VideoTests", dependencies: ["Video"]),
        .testTarget(name: "LossesTests", dependencies: ["Losses", "Tensor"]),
        .testTarget(name: "PathwaysTests", dependencies: ["Pathways", "Backbones", "Losses", "Tensor"], exclude: ["Fixtures"]),
        .testTarget(name: "LongWorkTests", dependencies: ["LongWork"]),
        .testTarget(name: "DataHDF5Tests", dependencies: ["DataHDF5", "Video", "Tensor", "LongWork"], exclude: ["Fixtures"]),
        // A tiny dataset and recipe that the tests of Training and above train on.
        .target(name: "TrainingTestSupport", dependencies: ["Training", "DataHDF5", "Video", "Tensor"], path: "Tests/TrainingTestSupport"),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "TrainingTestSupport", "Pathways", "Backbones", "DataHDF5", "Video", "Tensor"]),
        .testTarget(name: "EvaluationTests", dependencies: ["Evaluation", "Training", "TrainingTestSupport", "Pathways", "Backbones", "DataHDF5",
                                                            "Video", "Tensor"]),
        .testTarget(name: "SweepsTests", dependencies: ["Sweeps", "Training"]),
        .testTarget(name: "BenchmarksTests", dependencies: ["Benchmarks", "Tensor", "Training"]),
        .testTarget(name: "CBindingsTests", dependencies: ["CBLAS", "CHDF5", "CFFmpeg"]),
        .testTarget(name: "MaclrCLITests", dependencies: ["maclr", "Backbones", "Tensor", "DataHDF5", "CHDF5"]),
    ],
    swiftLanguageModes: [.v5]
)
