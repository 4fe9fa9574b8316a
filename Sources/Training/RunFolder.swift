import DataHDF5
import Foundation
import Tensor

/// A run folder (`train.output`) and every file in it. This type owns their names, and it is
/// the only code that writes, finds, verifies and reads checkpoints (docs/architecture.md draws
/// the folder):
///
///     checkpoints/step-0000400/           one checkpoint: state.safetensors, recipe.json, meta.json
///     checkpoints/.step-0000400.partial/  one being written (never read as a checkpoint)
///     metrics.jsonl, events.out.tfevents.*, encoder.safetensors, eval.json, finetune.json
///     run.lock                            held by the process training here
///     result.json, failed.json            a sweep's verdict on the run
public struct RunFolder: Sendable {
    public let url: URL
    public init(_ url: URL) { self.url = url }
    public init(path: String) { url = URL(fileURLWithPath: path) }

    public var checkpoints: URL { url.appendingPathComponent("checkpoints") }
    /// One line of `StepMetrics` per logged step.
    public var metrics: URL { url.appendingPathComponent("metrics.jsonl") }
    /// The visual encoder in torchvision's layout, written when the run reaches its last step.
    public var encoder: URL { url.appendingPathComponent("encoder.safetensors") }
    /// The final encoder's evaluation (`maclr pretrain --eval`).
    public var evaluation: URL { url.appendingPathComponent("eval.json") }
    /// A fine-tuned classifier's test (`maclr finetune`).
    public var finetuning: URL { url.appendingPathComponent("finetune.json") }
    public var lock: URL { url.appendingPathComponent("run.lock") }
    /// Written by a sweep when the run is evaluated: the run is complete.
    public var result: URL { url.appendingPathComponent("result.json") }
    /// A sweep's record of the run's last error.
    public var failure: URL { url.appendingPathComponent("failed.json") }
    static let eventsPrefix = "events.out.tfevents."

    /// TensorBoard event files in the folder.
    var eventFiles: [URL] {
        ((try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []).filter { $0.hasPrefix(Self.eventsPrefix) }
            .map { url.appendingPathComponent($0) }
    }

    // MARK: - checkpoints

    static func checkpointName(step: Int) -> String { String(format: "step-%07d", step) }
    static let metaFile = "meta.json", recipeFile = "recipe.json", stateFile = "state.safetensors"

    /// Whether `folder` is one checkpoint (its meta.json, written last, is there).
    public static func isCheckpoint(_ folder: URL) -> Bool {
        FileManager.default.fileExists(atPath: folder.appendingPathComponent(metaFile).path)
    }

    /// Finished checkpoints, oldest first (a `.partial` folder is never one of them).
    public func completeCheckpoints() -> [URL] {
        ((try? FileManager.default.contentsOfDirectory(atPath: checkpoints.path)) ?? []).filter { $0.hasPrefix("step-") }.sorted()
            .map { checkpoints.appendingPathComponent($0) }.filter(Self.isCheckpoint)
    }

    /// A checkpoint folder as given, or the newest complete checkpoint of a run folder.
    public static func resolveCheckpoint(_ path: String) throws -> URL {
        let url = URL(fileURLWithPath: path)
        if isCheckpoint(url) { return url }
        guard let newest = RunFolder(url).completeCheckpoints().last else {
            throw TrainingError("\(path): no checkpoint (a run folder or a checkpoint folder is expected)")
        }
        return newest
    }

    /// Writes `checkpoints/step-NNNNNNN` through a `.partial` folder renamed when complete, then
    /// removes the oldest beyond `keep`.
    func writeCheckpoint(_ checkpoint: Checkpoint.Contents, keep: Int) throws {
        let fm = FileManager.default
        let name = Self.checkpointName(step: checkpoint.meta.step)
        let partial = checkpoints.appendingPathComponent(".\(name).partial")
        try? fm.removeItem(at: partial)
        do {
            try fm.createDirectory(at: partial, withIntermediateDirectories: true)
            // the tensors carry their own checksums; meta.json holds the recipe's
            try SafeTensors.write(checkpoint.tensors, to: partial.appendingPathComponent(Self.stateFile))
            let recipeJSON = try checkpoint.recipe.json()
            try DurableFiles.writeWhole(recipeJSON, to: partial.appendingPathComponent(Self.recipeFile))
            var meta = checkpoint.meta
            meta.recipeChecksum = Checkpoint.checksum(recipeJSON)
            // meta.json last: a folder without it is not a checkpoint
            try DurableFiles.writeWhole(try JSONEncoder.sorted.encode(meta), to: partial.appendingPathComponent(Self.metaFile))
            try DurableFiles.commit(partial, to: checkpoints.appendingPathComponent(name))
        } catch {
            try? fm.removeItem(at: partial)
            throw TrainingError("step \(checkpoint.meta.step): cannot write checkpoint \(name) (\(error)); the checkpoints before it are intact")
        }
        for old in completeCheckpoints().dropLast(keep) { try? fm.removeItem(at: old) }
    }

    /// Removes what a run left (checkpoints, metrics, events) so it starts over.
    func clearForFreshStart() throws {
        for c in completeCheckpoints() { try FileManager.default.removeItem(at: c) }
        try? FileManager.default.removeItem(at: metrics)
        for events in eventFiles { try? FileManager.default.removeItem(at: events) }
    }

    // MARK: - metrics

    func appendMetrics(_ m: StepMetrics) throws {
        var line = try JSONEncoder.compactSorted.encode(m)
        line.append(0x0A)
        do {
            if let h = FileHandle(forWritingAtPath: metrics.path) {
                defer { try? h.close() }
                try h.seekToEnd()
                try h.write(contentsOf: line)
            } else {
                try DurableFiles.writeWhole(line, to: metrics)
            }
        } catch {
            throw TrainingError("\(metrics.path): cannot append step \(m.step)'s metrics (\(error))")
        }
    }

    /// Every line of metrics.jsonl that reads as a step's metrics, in order.
    public func readMetrics() -> [StepMetrics] {
        guard let text = try? String(contentsOf: metrics, encoding: .utf8) else { return [] }
        let decoder = JSONDecoder()
        return text.split(separator: "\n").compactMap { try? decoder.decode(StepMetrics.self, from: Data($0.utf8)) }
    }

    /// On resume, lines past the checkpoint's step would be written again: drop them.
    func trimMetrics(after step: Int) {
        guard FileManager.default.fileExists(atPath: metrics.path) else { return }
        let kept = readMetrics().filter { $0.step <= step }.compactMap { try? JSONEncoder.compactSorted.encode($0) }
        let text = kept.map { String(decoding: $0, as: UTF8.self) + "\n" }.joined()
        try? DurableFiles.write(Data(text.utf8), to: metrics)
    }
}

/// One line of metrics.jsonl: the step's loss terms (by name: loss, loss_v, loss_v2m, ...) beside the
/// learning rate and the run's pace. In the file the terms are keys of their own.
public struct StepMetrics: Codable, Equatable, Sendable {
    public var step: Int
    public var values: [String: Float]
    public var lr: Float
    public var clipsPerSecond: Double
    /// Seconds since this process started training.
    public var elapsedSeconds: Double
    /// The share of this run's time so far that the step waited for the loader.
    public var dataWait: Double
    /// With several processes, the share spent averaging gradients (all-reduce, waits for the
    /// slowest process included).
    public var allReduce: Double?
    /// What the training monitor measured at this step (knn_top1, ...); in the file each is a
    /// key "monitor/NAME".
    public var monitor: [String: Double]

    public init(step: Int, values: [String: Float], lr: Float, clipsPerSecond: Double, elapsedSeconds: Double, dataWait: Double,
                allReduce: Double? = nil, monitor: [String: Double] = [:]) {
        self.step = step; self.values = values; self.lr = lr; self.clipsPerSecond = clipsPerSecond
        self.elapsedSeconds = elapsedSeconds; self.dataWait = dataWait; self.allReduce = allReduce; self.monitor = monitor
    }
    static let monitorPrefix = "monitor/"

    struct Key: CodingKey {
        var stringValue: String
        init(_ s: String) { stringValue = s }
        init?(stringValue: String) { self.stringValue = stringValue }
        var intValue: Int? { nil }
        init?(intValue: Int) { nil }
    }
    static let fixedKeys: Set<String> = ["step", "lr", "clips_per_s", "elapsed_s", "data_wait", "all_reduce"]

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: Key.self)
        step = try c.decode(Int.self, forKey: Key("step"))
        lr = Float(try c.decode(Double.self, forKey: Key("lr")))
        clipsPerSecond = try c.decode(Double.self, forKey: Key("clips_per_s"))
        elapsedSeconds = try c.decode(Double.self, forKey: Key("elapsed_s"))
        dataWait = try c.decode(Double.self, forKey: Key("data_wait"))
        allReduce = try c.decodeIfPresent(Double.self, forKey: Key("all_reduce"))
        var terms: [String: Float] = [:], monitored: [String: Double] = [:]
        for key in c.allKeys where !Self.fixedKeys.contains(key.stringValue) {
            let value = try c.decode(Double.self, forKey: key)
            if key.stringValue.hasPrefix(Self.monitorPrefix) { monitored[String(key.stringValue.dropFirst(Self.monitorPrefix.count))] = value }
            else { terms[key.stringValue] = Float(value) }
        }
        values = terms; monitor = monitored
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        try c.encode(step, forKey: Key("step"))
        try c.encode(Double(lr), forKey: Key("lr"))
        try c.encode(clipsPerSecond, forKey: Key("clips_per_s"))
        try c.encode(elapsedSeconds, forKey: Key("elapsed_s"))
        try c.encode(dataWait, forKey: Key("data_wait"))
        try c.encodeIfPresent(allReduce, forKey: Key("all_reduce"))
        for (name, value) in values { try c.encode(Double(value), forKey: Key(name)) }
        for (name, value) in monitor { try c.encode(value, forKey: Key(Self.monitorPrefix + name)) }
    }
}

/// A checkpoint read back and verified: every file's checksum checked, the recipe decoded.
public struct Checkpoint {
    public let folder: URL
    public let meta: Meta
    public let recipe: Recipe
    public let tensors: [String: Tensor]

    /// What a checkpoint holds besides its tensors and recipe.
    public struct Meta: Codable, Sendable {
        public var step: Int
        var rng: RandomGenerator
        var loader: LoaderPosition
        var queuePointers: [String: Int]
        var batchesTracked: [String: Int]
        public var recipeSource: String
        /// FNV-1a 64 of recipe.json (nil in checkpoints written before checksums).
        public var recipeChecksum: String?
    }

    /// What the trainer hands over to be written.
    struct Contents {
        var meta: Meta
        var recipe: Recipe
        var tensors: [String: SafeTensors.Entry]
    }

    /// A checkpoint whose files do not verify: named, and a resuming run falls back to the one before.
    struct Corrupt: Error, CustomStringConvertible {
        let checkpoint: URL, reason: String
        var description: String { "checkpoint \(checkpoint.path) is corrupt (\(reason))" }
    }

    static func checksum(_ data: Data) -> String { data.withUnsafeBytes { String(format: "%016llx", fnv1a64($0)) } }

    /// Reads and verifies every file of the checkpoint `folder` (`Corrupt` if one fails).
    public init(folder: URL) throws {
        func corrupt(_ reason: String) -> Corrupt { Corrupt(checkpoint: folder, reason: reason) }
        let meta: Meta, recipeData: Data
        do {
            meta = try JSONDecoder().decode(Meta.self, from: try Data(contentsOf: folder.appendingPathComponent(RunFolder.metaFile)))
            recipeData = try Data(contentsOf: folder.appendingPathComponent(RunFolder.recipeFile))
        } catch {
            throw corrupt("\(RunFolder.metaFile) or \(RunFolder.recipeFile) unreadable: \(error)")
        }
        if let expected = meta.recipeChecksum, Self.checksum(recipeData) != expected {
            throw corrupt("\(RunFolder.recipeFile) fails its checksum")
        }
        do {
            recipe = try Recipe.fromJSON(recipeData, source: folder.path)
            tensors = try SafeTensors.read(folder.appendingPathComponent(RunFolder.stateFile)).tensors
        } catch {
            throw corrupt("\(error)")
        }
        self.folder = folder
        self.meta = meta
    }

    /// The checkpoint at `path`: a checkpoint folder, or the newest of a run folder.
    public init(path: String) throws { try self.init(folder: try RunFolder.resolveCheckpoint(path)) }
}

public extension JSONEncoder {
    /// Indented, keys sorted: files people read.
    static var sorted: JSONEncoder {
        let e = JSONEncoder(); e.outputFormatting = [.prettyPrinted, .sortedKeys]; return e
    }
    /// One line, keys sorted, "/" as it is (monitor/knn_top1, for grep): metrics.jsonl.
    static var compactSorted: JSONEncoder {
        let e = JSONEncoder(); e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]; return e
    }
}
