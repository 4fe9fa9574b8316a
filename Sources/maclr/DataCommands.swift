import ArgumentParser
import Foundation
import Training

struct Synth: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write labelled synthetic videos whose class is decided by motion alone.",
        discussion: """
            Objects of random shape, colour and texture move by their class's pattern (translation in \
            four directions, rotation either way, zoom in and out, oscillation) over textured \
            backgrounds that drift on their own, or over windows of real videos (--backgrounds). Writes OUTPUT/videos/<class>/*.mp4, OUTPUT/labels.csv \
            (path,label,split) and OUTPUT/classes.txt.
            """)

    @Argument(help: "Output folder.") var output: String
    @Option(help: "Number of classes (2...10).") var classes = 8
    @Option(help: "Videos per class.") var perClass = 24
    @Option(help: "Frames per video.") var frames = 32
    @Option(help: "Frame width and height in pixels (even).") var size = 64
    @Option(help: "Frames per second.") var fps = 16
    @Option(help: "Fraction of each class in the test split.") var testFraction = 0.25
    @Flag(help: "Backgrounds correlate with the class in the training split only (scene bias): --scene-bias-fraction 1.") var sceneBias = false
    @Option(help: "The fraction (0...1) of each class's training videos whose background carries the class's hue (partial scene bias).")
    var sceneBiasFraction: Double?
    @Option(help: "A folder of real videos (searched recursively) whose frames play behind the objects instead of the drifting gratings.")
    var backgrounds: String?
    @Option(help: "Multiplies the objects' speed.") var speed: Float = 1
    @Option(help: "Moving objects per video (1...8).") var objects = 3
    @Option(help: "The background's own drift, at most this many pixels per frame (0: still).") var backgroundDrift: Float = 0.3
    @Option(help: "Seed.") var seed: UInt64 = 0
    @Option(help: "Video codec (default by container: libx264 for .mp4).") var codec: String?
    @Option(help: "Container extension: mp4, avi, mkv, webm.") var container = "mp4"

    func validate() throws {
        guard (2...SyntheticVideos.patterns.count).contains(classes) else {
            throw ValidationError("--classes \(classes) must be 2...\(SyntheticVideos.patterns.count)")
        }
        guard perClass > 0, frames > 1, size >= 16, size % 2 == 0, fps > 0 else {
            throw ValidationError("--per-class and --fps must be positive, --frames > 1, --size even and >= 16")
        }
        guard speed > 0 else { throw ValidationError("--speed \(speed) must be positive") }
        guard (1...8).contains(objects) else { throw ValidationError("--objects \(objects) must be 1...8") }
        guard (0...4).contains(backgroundDrift) else { throw ValidationError("--background-drift \(backgroundDrift) must be 0...4") }
        guard (0..<1).contains(testFraction) else { throw ValidationError("--test-fraction \(testFraction) must be in [0, 1)") }
        if let f = sceneBiasFraction {
            guard (0...1).contains(f) else { throw ValidationError("--scene-bias-fraction \(f) must be in [0, 1]") }
            guard !sceneBias else { throw ValidationError("give --scene-bias or --scene-bias-fraction, not both") }
        }
    }

    func run() throws {
        var synth = SyntheticVideos()
        synth.classes = classes; synth.frames = frames; synth.size = size; synth.fps = fps; synth.speed = speed
        synth.objectsPerVideo = objects; synth.backgroundDrift = backgroundDrift
        synth.sceneBiasFraction = sceneBiasFraction ?? (sceneBias ? 1 : 0)
        if let backgrounds {
            let loaded = try SyntheticVideos.loadBackgrounds(folder: URL(fileURLWithPath: backgrounds), size: size, fps: fps)
            for w in loaded.warnings { stderrLog("warning: \(w)\n") }
            synth.backgrounds = loaded.clips
            stderrLog("backgrounds: \(loaded.clips.count) videos from \(backgrounds)\n")
        }
        let start = Date()
        let items = try synth.generate(into: URL(fileURLWithPath: output), perClass: perClass, testFraction: testFraction, seed: seed,
                                       codec: codec, ext: container) { done, total in
            let rate = Double(done) / max(Date().timeIntervalSince(start), 1e-9)
            stderrLog(String(format: "\rsynth: %d/%d videos, %.1f videos/s, %.0fs left   ", done, total, rate, Double(total - done) / rate))
        }
        stderrLog("\n")
        print("wrote \(items.count) videos (\(items.filter { $0.split == "train" }.count) train, \(items.filter { $0.split == "test" }.count) test) to \(output); labels in \(output)/labels.csv")
    }
}

struct Prepare: ParsableCommand {
    /// The preparation's own defaults: the options start from them.
    static let defaults = DatasetPreparation()

    static let configuration = CommandConfiguration(
        abstract: "Turn videos into a dataset folder of HDF5 shards (decode, resize, resample fps, optical flow).",
        discussion: """
            INPUT is a CSV of path,label[,split], a folder of class sub-folders, or a folder of video files; \
            with --layout, a public dataset's folder and split files as distributed (every split kept: train1, \
            test1, ... for UCF101 and HMDB51). \
            Rerunning after an interruption resumes: finished shards are kept, the rest redone. A video that \
            cannot be decoded is reported, listed in the manifest, and skipped.
            """)

    @Argument(help: "CSV file or folder of videos (with --layout, the dataset's folder as distributed).") var input: String
    @Argument(help: "Output dataset folder.") var output: String
    @Option(help: "How INPUT is laid out: files (a CSV, class folders or plain videos), or a public dataset as distributed: ucf101, hmdb51, kinetics, ssv2.")
    var layout: PreparationLayout = .files
    @Option(help: "The layout's split files: UCF101's ucfTrainTestlist/, HMDB51's testTrainMulti_7030_splits/, Kinetics' annotation CSV or a folder of them, SSv2's folder of JSONs (default: where the dataset keeps them under INPUT).")
    var splitFiles: String?
    @Flag(help: "Read INPUT and its split files, print each split's counts and what is missing, and write nothing.") var check = false
    @Option(help: "Frame size WxH (every frame is resized to it).") var size: String?
    @Option(help: "Short side S: frames of S x round(4S/3) (e.g. 128 -> 171x128). Default: \(Self.defaults.width)x\(Self.defaults.height) unless --size.") var shortSide: Int?
    @Option(help: "Resample to this many frames per second (default: keep each video's rate).") var fps: Double?
    @Flag(inversion: .prefixedNo, help: "Compute TV-L1 optical flow.") var flow = true
    @Option(help: "Flow quantisation bound in pixels.") var flowBound: Double = Self.defaults.flowBound
    @Option(help: "Videos per shard.") var videosPerShard = Self.defaults.videosPerShard
    @Option(help: "Videos decoded in parallel.") var workers = Self.defaults.workers
    @Option(help: "MiB of prepared frames a shard's videos may hold in memory until it is written; beyond it they wait on disk beside the shard, so a long video needs no memory for its length.")
    var frameMemory = Self.defaults.frameMemoryBytes >> 20
    @Option(help: "Prepare every N-th shard from the i-th (i/N), one of N processes or machines sharing the output folder; the last to finish writes the manifest. Under mpirun: the rank and size.")
    var shard: ShardSpec?

    func frameSize() throws -> (Int, Int) {
        if let size {
            let parts = size.lowercased().split(separator: "x").compactMap { Int($0) }
            guard parts.count == 2, parts[0] > 0, parts[1] > 0, parts[0] % 2 == 0, parts[1] % 2 == 0 else {
                throw ValidationError("--size '\(size)' must be WxH with even positive numbers, e.g. 112x112")
            }
            return (parts[0], parts[1])
        }
        if let s = shortSide {
            guard s >= 16, s % 2 == 0 else { throw ValidationError("--short-side \(s) must be even and >= 16") }
            return DatasetPreparation.landscape(shortSide: s)
        }
        return (Self.defaults.width, Self.defaults.height)
    }

    func validate() throws {
        _ = try frameSize()
        guard size == nil || shortSide == nil else { throw ValidationError("give --size or --short-side, not both") }
        guard splitFiles == nil || layout != .files else { throw ValidationError("--split-files goes with --layout ucf101, hmdb51, kinetics or ssv2") }
        guard videosPerShard > 0, workers > 0, flowBound > 0 else { throw ValidationError("--videos-per-shard, --workers and --flow-bound must be positive") }
        guard (0...(1 << 20)).contains(frameMemory) else { throw ValidationError("--frame-memory \(frameMemory) must be 0 to 1048576 MiB") }
        if let fps, fps <= 0 { throw ValidationError("--fps \(fps) must be positive") }
    }

    func run() throws {
        if check {
            let listing = try DatasetPreparation.list(input: input, layout: layout, splitFiles: splitFiles, log: stderrLog)
            print("\(input): \(listing.summary)")
            return
        }
        var p = DatasetPreparation()
        (p.width, p.height) = try frameSize()
        p.fps = fps; p.flow = flow; p.flowBound = flowBound; p.videosPerShard = videosPerShard; p.workers = workers
        p.frameMemoryBytes = frameMemory << 20
        let world = shard == nil ? Processes.world : Processes.single
        (p.part, p.parts) = shard.map { ($0.index - 1, $0.count) } ?? (world.rank, world.size)
        let status = try endingEveryProcessOnError(world) {
            try stoppingCleanlyOnSignals {
                guard let m = try p.run(input: input, output: output, layout: layout, splitFiles: splitFiles, log: stderrLog) else {
                    print("\(output): part \(p.part + 1) of \(p.parts) prepared; the manifest follows when every part has finished")
                    return
                }
                print("\(output): \(m.shards.count) shard(s), \(m.videoCount) videos, \(m.frameCount) frames, \(m.failed.count) failed")
                if let times = p.times.summary { print(times) }
                for f in m.failed { print("  failed: \(f.source): \(f.reason)") }
            }
        }
        if let status { throw ExitCode(status) }
    }
}

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate a dataset, run, checkpoint or .safetensors file and summarise it; exits non-zero on any fault.")

    @Argument(help: "A dataset folder, a run folder, a checkpoint folder, or a .safetensors file.") var path: String
    @Flag(help: "Skip the dataset's shard checksums (faster on large datasets).") var noChecksums = false

    func run() throws {
        let result = Inspection.of(path, verifyChecksums: !noChecksums)
        for line in result.summary { print(line) }
        for fault in result.faults { stderrLog("error: \(fault)\n") }
        if !result.faults.isEmpty { throw ExitCode(1) }
        print("OK")
    }
}
