import Backbones
import DataHDF5
import Foundation
import Losses
import Pathways
import Yams

/// A recipe error: names the file, the key, the value and what is valid (or the nearest valid key).
public struct RecipeError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// The recipe schema: every key, its type and valid values, default and a one-line doc.
/// `maclr recipe` prints this table.
public enum RecipeKey {
    public enum Kind: Equatable, Sendable {
        /// An integer in `range`.
        case int(ClosedRange<Int>)
        /// A number at least `min` (more than `min` when `exclusive`) and at most `max`.
        case number(min: Double, exclusive: Bool = false, max: Double = .infinity)
        case bool, string, optionalString
        /// [low, high] with low <= high, both within `within` (low above `within.lowerBound` when `exclusive`).
        case span(within: ClosedRange<Double>, exclusive: Bool = false)
        /// `count` integers, each in `range`.
        case intList(count: Int, range: ClosedRange<Int>)
        case choice([String])

        static let probability = Kind.number(min: 0, max: 1)
        static func choices<E: CaseIterable & RawRepresentable>(_: E.Type) -> Kind where E.RawValue == String {
            .choice(E.allCases.map(\.rawValue))
        }
    }

    public struct Spec {
        public let key: String, kind: Kind, doc: String
        let defaultValue: AnyHashable
        init(_ key: String, _ kind: Kind, _ defaultValue: AnyHashable, _ doc: String) {
            self.key = key; self.kind = kind; self.defaultValue = defaultValue; self.doc = doc
        }
        /// The default as the recipe prints it (an empty optional string is null).
        public var defaultText: String { kind == .optionalString && defaultValue == AnyHashable("") ? "null" : Recipe.text(defaultValue) }
        /// The valid values, as error messages and `maclr recipe` name them.
        public var validText: String { kind.validText }
    }

    static let positive = Kind.int(1...Int.max)
    static let stages = Kind.intList(count: 4, range: 1...16)

    public static let all: [Spec] = [
        Spec("seed", .int(0...Int(UInt32.max)), 0, "seed of weights, sampling, augmentation and key shuffles"),
        Spec("data.dataset", .string, "runs/quickstart/dataset", "dataset folder made by maclr prepare"),
        Spec("data.split", .optionalString, "train", "split to pretrain on (null: every video)"),
        Spec("data.clip_frames", .int(1...512), 8, "frames per clip"),
        Spec("data.clip_stride", .int(1...64), 2, "take every n-th frame"),
        Spec("data.crop", .int(16...1024), 56, "clips are cropped and resized to crop x crop"),
        Spec("data.positive_gap", .span(within: 0...3600), [0.5, 10.0], "seconds between a video's two clips [min, max]"),
        Spec("data.motion_input", .choices(MotionRepresentation.self), "flow", "what the Motion pathway sees"),
        Spec("data.augment", .bool, true, "random resized crop, flip, colour jitter, grayscale, blur"),
        Spec("data.flip", .bool, true, "random horizontal flips (turn off when classes are left/right or clockwise/anticlockwise motion)"),
        Spec("data.crop_scale", .span(within: 0...1, exclusive: true), [0.3, 1.0], "random resized crop: area fraction [min, max] (CVRL: 0.3-1)"),
        Spec("data.color_jitter", .probability, 0.8, "probability of colour jitter (brightness, contrast, saturation 0.4, hue 0.1)"),
        Spec("data.grayscale", .probability, 0.2, "probability of turning a clip grey"),
        Spec("data.blur", .probability, 0.5, "probability of a Gaussian blur"),
        Spec("data.blur_sigma", .span(within: 0...100), [0.1, 2.0], "blur sigma in pixels of the output clip [min, max]"),
        Spec("data.motion_temporal_sampling", .bool, false, "MCL: prefer clips with more motion"),
        Spec("data.motion_spatial_cropping", .bool, false, "MCL: crops must cover the moving region"),
        Spec("data.loader_workers", .int(0...64), 0, "background threads preparing batches (0: a quarter of the cores, at least 2)"),
        Spec("model.arch", .choices(VideoResNetKind.self), "r2plus1d_18", "visual encoder (torchvision structure)"),
        Spec("model.width", .number(min: 0, exclusive: true, max: 8), 0.25, "channel multiplier of the visual encoder (1 = torchvision)"),
        Spec("model.blocks", stages, [1, 1, 1, 1], "residual blocks per stage of the visual encoder"),
        Spec("model.motion_pathway", .choices(MotionPathwayKind.self), "frames",
             "Motion pathway: frame-wise 2-D ResNet-18, a 3-D ResNet, or none (visual-only)"),
        Spec("model.motion_width", .number(min: 0, exclusive: true, max: 8), 0.125, "channel multiplier of the motion encoder (paper: 1/8)"),
        Spec("model.motion_blocks", stages, [1, 1, 1, 1], "residual blocks per stage of the motion encoder"),
        Spec("model.init", .choices(WeightInit.self), "torchvision",
             "weight init: torchvision's (Kaiming normal, fan_out) or PyTorch's layer default (uniform +-1/sqrt(fan_in))"),
        Spec("model.init_from", .optionalString, "",
             "weights the visual encoder starts from, in fine-tuning or pretraining: a run or checkpoint folder, or an encoder .safetensors in torchvision's, pytorchvideo's or mmaction2's names (null: random init)"),
        Spec("model.dropout", .number(min: 0, max: 0.95), 0.0, "dropout before the classifier of a supervised run or fine-tuning"),
        Spec("model.head_hidden", .int(1...65_536), 512, "hidden size of the projection heads (paper: 2048)"),
        Spec("model.embedding", .int(1...65_536), 128, "embedding size of the projection heads"),
        Spec("model.queue_size", .int(0...1 << 20), 4096, "negatives per modality (paper: 65536); 0: the batch's other keys (MoCo v3)"),
        Spec("model.momentum", .number(min: 0, max: 1), 0.99, "EMA of the key encoders (paper: 0.999)"),
        Spec("model.key_bn", .choices(KeyBatchNorm.self), "shuffle",
             "key BN: shuffled sub-batches (shuffle-BN, spread over the processes when there are several) or running statistics"),
        Spec("model.bn_groups", .int(0...65_536), 0,
             "query BN statistics over this many groups of the global batch; 0: one per process (1 in a single process, DDP's per-GPU BN)"),
        Spec("model.sync_bn", .bool, false, "query BN statistics over the whole global batch across processes (synchronised BN)"),
        Spec("loss.objective", .choices(Objective.self), "maclr", "contrastive pretraining, or labels (upper bound)"),
        Spec("loss.temperature", .number(min: 0, exclusive: true, max: 100), 0.1, "InfoNCE temperature"),
        Spec("loss.cross_modal_weight", .number(min: 0, max: 1000), 1.0, "w of L_v->m + L_m->v"),
        Spec("loss.motion_intra_weight", .number(min: 0, max: 1000), 0.0, "weight of the motion intra-modal term L_m"),
        Spec("loss.alignment_weight", .number(min: 0, max: 1000), 0.0, "MCL's motion alignment loss after the warm-up (MCL: 1; 0: off)"),
        Spec("loss.alignment_warmup_weight", .number(min: 0, max: 1000), 2.0, "its weight during optim.warmup_steps (MCL: 2)"),
        Spec("loss.alignment_layer", .string, "last", "the visual encoder's conv it aligns, as torchvision names it (layer4.0.conv2), or last"),
        Spec("loss.alignment_weighting", .choices(MotionAlignment.Weighting.self), "gradient",
             "Grad-CAM channel weights times the gradient (MCL's code) or the activation (Grad-CAM)"),
        Spec("loss.alignment_spatiotemporal", .number(min: 0, max: 1000), 1.0, "weight of the alignment's spatio-temporal term"),
        Spec("loss.alignment_temporal", .number(min: 0, max: 1000), 1.0, "weight of the alignment's temporal term"),
        Spec("loss.alignment_spatial", .number(min: 0, max: 1000), 1.0, "weight of the alignment's spatial term"),
        Spec("optim.optimizer", .choices(OptimizerKind.self), "sgd", "optimiser"),
        Spec("optim.lr", .number(min: 0, exclusive: true), 0.05, "peak learning rate"),
        Spec("optim.min_lr", .number(min: 0), 0.0, "learning rate at the end of the cosine (at most optim.lr)"),
        Spec("optim.momentum", .number(min: 0, max: 1), 0.9, "SGD momentum"),
        Spec("optim.nesterov", .bool, false, "Nesterov momentum"),
        Spec("optim.weight_decay", .number(min: 0, max: 1), 1e-4, "weight decay (BN and bias parameters exempt)"),
        Spec("optim.batch_size", .int(2...65_536), 8, "clip pairs per step (before accumulation)"),
        Spec("optim.accumulate", .int(1...1024), 1, "micro-batches per optimiser step"),
        Spec("optim.steps", positive, 400, "optimiser steps"),
        Spec("optim.warmup_steps", .int(0...Int.max), 40, "linear warm-up steps before the cosine"),
        Spec("train.output", .string, "runs/quickstart/pretrain", "run folder: checkpoints, metrics.jsonl, TensorBoard events"),
        Spec("train.checkpoint_every", positive, 100, "steps between checkpoints"),
        Spec("train.keep_checkpoints", positive, 2, "checkpoints kept (oldest removed)"),
        Spec("train.log_every", positive, 10, "steps between metrics lines"),
        Spec("train.monitor_every", .int(0...1_000_000), 0,
             "steps between kNN top-1 measurements of the encoder as it trains, on eval.split_test against eval.split_train (0: off)"),
        Spec("train.monitor_videos", .int(2...100_000), 64, "videos of each of those splits the monitor uses, evenly spread, one centre clip each"),
        Spec("eval.split_train", .string, "train", "split the probe trains on and retrieval searches"),
        Spec("eval.split_test", .string, "test", "split the probe and retrieval are scored on"),
        Spec("eval.clips_per_video", .int(1...64), 4, "clips per test video, evenly spaced (features or class scores averaged over the views)"),
        Spec("eval.crops_per_clip", .int(1...5), 1, "square crops per clip along the frame's long side (the field's 3: start, centre, end)"),
        Spec("eval.precise_bn", .int(0...10_000), 0, "training batches that recompute a fine-tuned network's BN statistics before testing (0: off)"),
        Spec("eval.probe_l2", .number(min: 0, max: 100), 1e-3, "L2 weight of the linear probe"),
        Spec("eval.probe_iterations", positive, 500, "full-batch iterations of the linear probe"),
        Spec("eval.knn_k", .int(1...100_000), 20, "neighbours of the kNN classifier (solo-learn, SlowFast: 20)"),
        Spec("eval.knn_temperature", .number(min: 0, exclusive: true, max: 100), 0.07, "kNN votes weigh exp(cosine / temperature)"),
    ]

    static let byKey = Dictionary(uniqueKeysWithValues: all.map { ($0.key, $0) })

    /// Every key with its default, doc and valid values, one a line (`maclr recipe`).
    public static var textTable: String {
        func padded(_ text: String, _ width: Int) -> String { text.padding(toLength: max(width, text.count), withPad: " ", startingAt: 0) }
        return all.map { padded($0.key, 30) + " " + padded($0.defaultText, 26) + " " + $0.doc + " (" + $0.validText + ")" }.joined(separator: "\n")
    }

    /// The same as a Markdown table (`maclr recipe --markdown`), as README.md shows it; the
    /// bounds of 7 digits or more grouped by thousands for reading (4,294,967,295).
    public static var markdownTable: String {
        (["| key | default | what it sets | valid |", "|---|---|---|---|"]
         + all.map { "| `\($0.key)` | `\($0.defaultText)` | \($0.doc.replacingOccurrences(of: "|", with: "\\|")) | \(groupingLongNumbers($0.validText)) |" })
            .joined(separator: "\n")
    }

    /// `text` with each run of 7 or more digits grouped by thousands with commas.
    static func groupingLongNumbers(_ text: String) -> String {
        var result = "", digits = ""
        func flush() {
            guard digits.count >= 7 else { result += digits; digits = ""; return }
            let head = digits.count % 3
            var groups = head > 0 ? [String(digits.prefix(head))] : []
            var rest = digits.dropFirst(head)
            while !rest.isEmpty { groups.append(String(rest.prefix(3))); rest = rest.dropFirst(3) }
            result += groups.joined(separator: ","); digits = ""
        }
        for ch in text {
            if ch.isASCII && ch.isNumber { digits.append(ch) } else { flush(); result.append(ch) }
        }
        flush()
        return result
    }
}

extension RecipeKey.Kind {
    var validText: String {
        func number(_ x: Double) -> String { x == x.rounded() && abs(x) < 1e15 ? String(Int(x)) : "\(x)" }
        switch self {
        case .int(let r):
            if r.upperBound == Int.max { return "an integer >= \(r.lowerBound)" }
            return "an integer in \(r.lowerBound)...\(r.upperBound)"
        case .number(let min, let exclusive, let max):
            let low = exclusive ? "> \(number(min))" : ">= \(number(min))"
            return max == .infinity ? "a number \(low)" : "a number \(low) and <= \(number(max))"
        case .bool: return "true or false"
        case .string: return "a non-empty string"
        case .optionalString: return "a string or null"
        case .span(let within, let exclusive):
            let low = exclusive ? "(\(number(within.lowerBound))" : "[\(number(within.lowerBound))"
            return "[min, max] with min <= max, both in \(low), \(number(within.upperBound))]"
        case .intList(let count, let r): return "a list of \(count) integers in \(r.lowerBound)...\(r.upperBound)"
        case .choice(let options): return "one of \(options.joined(separator: ", "))"
        }
    }
}

/// What the Motion pathway is: frame-wise 2-D ResNet, a 3-D ResNet, or none (visual-only).
public enum MotionPathwayKind: String, Codable, Sendable, CaseIterable { case frames, video, none }
/// Contrastive pretraining, or the supervised upper bound.
public enum Objective: String, Codable, Sendable, CaseIterable { case maclr, supervised }
public enum OptimizerKind: String, Codable, Sendable, CaseIterable { case sgd, adamw }

/// [lower, upper], written as a two-element list in YAML.
public struct Span: Codable, Equatable, Sendable {
    public var lower: Double, upper: Double
    public var range: ClosedRange<Double> { lower...upper }
    public init(from decoder: Decoder) throws {
        var c = try decoder.unkeyedContainer()
        lower = try c.decode(Double.self); upper = try c.decode(Double.self)
    }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.unkeyedContainer()
        try c.encode(lower); try c.encode(upper)
    }
}

/// The recipe's sections, typed: decoded once from the validated keys.
public struct DataSettings: Codable, Equatable, Sendable {
    public var dataset: String
    /// The split to pretrain on; empty for every video (`null` in YAML).
    var split: String
    public var splitName: String? { split.isEmpty ? nil : split }
    public var clipFrames: Int, clipStride: Int, crop: Int
    public var positiveGap: Span
    public var motionInput: MotionRepresentation
    public var augment: Bool, flip: Bool
    public var cropScale: Span
    public var colorJitter: Double, grayscale: Double, blur: Double
    public var blurSigma: Span
    public var motionTemporalSampling: Bool, motionSpatialCropping: Bool
    public var loaderWorkers: Int
}

public struct ModelSettings: Codable, Equatable, Sendable {
    public var arch: VideoResNetKind
    public var width: Double, blocks: [Int]
    public var motionPathway: MotionPathwayKind
    public var motionWidth: Double, motionBlocks: [Int]
    public var `init`: WeightInit
    /// The run, checkpoint or encoder file the visual encoder starts from; empty for a random init.
    var initFrom: String
    public var initFromPath: String? { initFrom.isEmpty ? nil : initFrom }
    public var dropout: Double
    public var headHidden: Int, embedding: Int, queueSize: Int
    public var momentum: Double
    public var keyBn: KeyBatchNorm
    public var bnGroups: Int
    public var syncBn: Bool
}

public struct LossSettings: Codable, Equatable, Sendable {
    public var objective: Objective
    public var temperature: Double, crossModalWeight: Double, motionIntraWeight: Double
    public var alignmentWeight: Double, alignmentWarmupWeight: Double
    public var alignmentLayer: String
    public var alignmentWeighting: MotionAlignment.Weighting
    public var alignmentSpatiotemporal: Double, alignmentTemporal: Double, alignmentSpatial: Double
    /// Whether MCL's alignment loss is on at some step.
    public var alignment: Bool { alignmentWeight > 0 }
}

public struct OptimSettings: Codable, Equatable, Sendable {
    public var optimizer: OptimizerKind
    public var lr: Double, minLr: Double, momentum: Double
    public var nesterov: Bool
    public var weightDecay: Double
    public var batchSize: Int, accumulate: Int, steps: Int, warmupSteps: Int
}

public struct TrainSettings: Codable, Equatable, Sendable {
    public var output: String
    public var checkpointEvery: Int, keepCheckpoints: Int, logEvery: Int
    public var monitorEvery: Int, monitorVideos: Int
}

public struct EvalSettings: Codable, Equatable, Sendable {
    public var splitTrain: String, splitTest: String
    public var clipsPerVideo: Int, cropsPerClip: Int
    public var preciseBn: Int
    /// Views per test video: clips x crops.
    public var views: Int { clipsPerVideo * cropsPerClip }
    public var probeL2: Double
    public var probeIterations: Int
    public var knnK: Int, knnTemperature: Double
}

/// A recipe: the schema's defaults overlaid by a YAML file (and the files it `extends:`) and
/// `--set key=value` overrides, every value checked against its key's valid range, then
/// decoded into one typed value per section.
public struct Recipe: Equatable {
    /// Every key's validated value, flattened ("optim.lr"): what checkpoints store and compare.
    public private(set) var values: [String: AnyHashable]
    public let source: String

    public private(set) var seed: Int
    public private(set) var data: DataSettings
    public private(set) var model: ModelSettings
    public private(set) var loss: LossSettings
    public private(set) var optim: OptimSettings
    public private(set) var train: TrainSettings
    public private(set) var eval: EvalSettings

    /// The defaults, overlaid by `values` (each checked as the file's would be).
    public init(values: [String: Any] = [:], source: String = "defaults") throws {
        var v = Dictionary(uniqueKeysWithValues: RecipeKey.all.map { ($0.key, $0.defaultValue) })
        for (k, x) in values {
            try Self.check(key: k, file: source)
            v[k] = try Self.coerce(x, for: RecipeKey.byKey[k]!, file: source)
        }
        self.values = v
        self.source = source
        (seed, data, model, loss, optim, train, eval) = try Self.decode(v, source: source)
    }

    /// The defaults alone.
    public static var defaults: Recipe { try! Recipe() }

    /// Loads a YAML recipe, resolving `extends:` (a path relative to the file) first.
    public static func load(_ path: String, overrides: [String] = []) throws -> Recipe {
        var visited: Set<String> = []
        var recipe = try Recipe(values: try loadFlat(path, visited: &visited), source: path)
        try recipe.apply(overrides: overrides)
        return recipe
    }

    /// Applies command-line `key=value` overrides (the value read as YAML), checking each key and value.
    public mutating func apply(overrides: [String]) throws {
        var v = values
        for o in overrides {
            guard let eq = o.firstIndex(of: "=") else { throw RecipeError("--set '\(o)': expected key=value") }
            let key = String(o[..<eq]), raw = String(o[o.index(after: eq)...])
            try Self.check(key: key, file: "--set")
            // a value that is not YAML is taken as the string it is; one past a bound is refused
            let parsed: Any?
            do { parsed = try BoundedYAML.load(raw, source: "--set '\(key)=...'") } catch let e as BoundedYAML.Exceeded { throw e } catch { parsed = nil }
            v[key] = try Self.coerce(parsed ?? raw, for: RecipeKey.byKey[key]!, file: "--set")
        }
        (seed, data, model, loss, optim, train, eval) = try Self.decode(v, source: overrides.isEmpty ? source : "--set")
        values = v
    }

    /// Sets one key (checked like an override).
    public mutating func set(_ key: String, _ value: Any) throws { try set([(key, value)]) }

    /// Sets several keys, each checked like an override; the whole recipe is checked once they are
    /// all set, so keys bound to each other (optim.min_lr at most optim.lr) can move together.
    public mutating func set(_ pairs: [(key: String, value: Any)]) throws {
        var v = values
        for (key, value) in pairs {
            try Self.check(key: key, file: "--set")
            v[key] = try Self.coerce(value, for: RecipeKey.byKey[key]!, file: "--set")
        }
        (seed, data, model, loss, optim, train, eval) = try Self.decode(v, source: source)
        values = v
    }

    static func loadFlat(_ path: String, visited: inout Set<String>) throws -> [String: Any] {
        let url = URL(fileURLWithPath: path).standardizedFileURL
        guard visited.insert(url.path).inserted else { throw RecipeError("\(path): extends itself (cycle)") }
        guard let text = try BoundedYAML.read(url.path) else { throw RecipeError("\(path): cannot read recipe") }
        let root = try BoundedYAML.load(text, source: path)
        guard let dict = (root ?? [String: Any]()) as? [String: Any] else { throw RecipeError("\(path): a recipe is a mapping of keys") }
        var base: [String: Any] = [:]
        if let parent = dict["extends"] {
            guard let p = parent as? String else { throw RecipeError("\(path): extends must be a file path") }
            let parentPath = p.hasPrefix("/") ? p : url.deletingLastPathComponent().appendingPathComponent(p).path
            base = try loadFlat(parentPath, visited: &visited)
        }
        for (k, v) in flatten(dict.filter { $0.key != "extends" }, prefix: "") {
            try check(key: k, file: path)
            // checked here, so the error names the file that holds the value
            _ = try coerce(v, for: RecipeKey.byKey[k]!, file: path)
            base[k] = v
        }
        return base
    }

    public static func flatten(_ d: [String: Any], prefix: String) -> [(String, Any)] {
        d.flatMap { (k, v) -> [(String, Any)] in
            let key = prefix.isEmpty ? k : prefix + "." + k
            if let sub = v as? [String: Any], RecipeKey.byKey[key] == nil { return flatten(sub, prefix: key) }
            return [(key, v)]
        }
    }

    static func check(key: String, file: String) throws {
        guard RecipeKey.byKey[key] == nil else { return }
        let nearest = RecipeKey.all.map(\.key).min { editDistance($0, key) < editDistance($1, key) }!
        throw RecipeError("\(file): unknown key '\(key)' (did you mean '\(nearest)'?)")
    }

    /// The value as the recipe stores it, or an error naming the file, key, value and valid values.
    static func coerce(_ v: Any, for spec: RecipeKey.Spec, file: String) throws -> AnyHashable {
        let wrong = RecipeError("\(file): key '\(spec.key)' must be \(spec.validText), got '\(text(v))'")
        // YAML 1.1 reads 1e-4 (no dot) as a string
        func number(_ x: Any) -> Double? { (x as? Double) ?? (x as? Int).map(Double.init) ?? (x as? String).flatMap(Double.init) }
        switch spec.kind {
        case .int(let range):
            if let i = v as? Int, range.contains(i) { return i }
            if let d = v as? Double, d == d.rounded(), let i = Int(exactly: d), range.contains(i) { return i }
        case .number(let min, let exclusive, let max):
            if let d = number(v), d.isFinite, exclusive ? d > min : d >= min, d <= max { return d }
        case .bool:
            if let b = v as? Bool { return b }
        case .string:
            if let s = v as? String, !s.isEmpty { return s }
        case .optionalString:
            if v is NSNull { return "" }
            if let s = v as? String { return s }
        case .span(let within, let exclusive):
            if let a = v as? [Any], a.count == 2, let lo = number(a[0]), let hi = number(a[1]), lo <= hi,
               exclusive ? lo > within.lowerBound : lo >= within.lowerBound, hi <= within.upperBound { return [lo, hi] }
        case .intList(let count, let range):
            if let a = v as? [Any], a.count == count {
                let ints = a.compactMap { $0 as? Int }
                if ints.count == count, ints.allSatisfy(range.contains) { return ints }
            }
        case .choice(let options):
            if let s = v as? String, options.contains(s) { return s }
        }
        throw wrong
    }

    /// The typed sections of validated `values`; checks that relate two keys.
    static func decode(_ values: [String: AnyHashable], source: String) throws
        -> (Int, DataSettings, ModelSettings, LossSettings, OptimSettings, TrainSettings, EvalSettings) {
        var nested: [String: Any] = [:]
        for (key, value) in values {
            let parts = key.split(separator: ".").map(String.init)
            if parts.count == 1 { nested[key] = value.base; continue }
            var section = nested[parts[0]] as? [String: Any] ?? [:]
            section[parts[1]] = value.base
            nested[parts[0]] = section
        }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let json = try JSONSerialization.data(withJSONObject: nested)
        let s: Sections
        do { s = try decoder.decode(Sections.self, from: json) } catch {
            throw RecipeError("\(source): recipe does not decode (\(error))")
        }
        let layers = VideoResNetConfig(kind: s.model.arch, blocksPerStage: s.model.blocks).capturableLayers
        guard s.loss.alignmentLayer == "last" || layers.contains(s.loss.alignmentLayer) else {
            throw RecipeError("\(source): key 'loss.alignment_layer' must be last or one of \(layers.joined(separator: ", ")), got '\(s.loss.alignmentLayer)'")
        }
        if s.loss.objective != .supervised {
            if s.model.dropout > 0 {
                throw RecipeError("\(source): key 'model.dropout' is for a classifier (loss.objective: supervised, as in fine-tuning), got '\(text(s.model.dropout))' with loss.objective \(s.loss.objective.rawValue)")
            }
        }
        if s.data.motionSpatialCropping && !s.data.augment {
            throw RecipeError("\(source): key 'data.motion_spatial_cropping' constrains the random resized crop, which data.augment: false turns off; set data.augment: true (and data.crop_scale, data.color_jitter, data.grayscale, data.blur as wanted)")
        }
        guard s.optim.minLr <= s.optim.lr else {
            throw RecipeError("\(source): key 'optim.min_lr' must be at most optim.lr (\(text(s.optim.lr))), got '\(text(s.optim.minLr))'")
        }
        return (s.seed, s.data, s.model, s.loss, s.optim, s.train, s.eval)
    }

    /// The typed sections together, as they are decoded from (and encoded back to) the keys.
    struct Sections: Codable {
        var seed: Int
        var data: DataSettings, model: ModelSettings, loss: LossSettings, optim: OptimSettings, train: TrainSettings, eval: EvalSettings
    }

    /// Every key's value as the typed sections hold it, flattened as `values` is: a key whose
    /// section has no field for it is missing here (the schema test walks every key through it).
    public var typedValues: [String: AnyHashable] {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        let sections = Sections(seed: seed, data: data, model: model, loss: loss, optim: optim, train: train, eval: eval)
        guard let json = try? encoder.encode(sections),
              let nested = try? JSONSerialization.jsonObject(with: json) as? [String: Any] else { return [:] }
        var flat: [String: AnyHashable] = [:]
        for (key, value) in Self.flatten(nested, prefix: "") {
            if let spec = RecipeKey.byKey[key], let typed = try? Self.coerce(value, for: spec, file: "typed") { flat[key] = typed }
        }
        return flat
    }

    /// A value as a recipe shows it (YAML-like: lists in brackets, null for nothing).
    public static func text(_ value: Any) -> String {
        let v = (value as? AnyHashable)?.base ?? value
        switch v {
        case is NSNull: return "null"
        case let a as [Any]: return "[" + a.map(text).joined(separator: ", ") + "]"
        case let d as Double: return d == d.rounded() && abs(d) < 1e15 ? String(format: "%.1f", d) : "\(d)"
        default: return "\(v)"
        }
    }

    /// The resolved recipe as JSON (stored in checkpoints).
    public func json() throws -> Data {
        try JSONSerialization.data(withJSONObject: values.mapValues { $0.base }, options: [.sortedKeys, .prettyPrinted])
    }

    public static func fromJSON(_ data: Data, source: String) throws -> Recipe {
        guard let d = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { throw RecipeError("\(source): recipe is not a JSON object") }
        return try Recipe(values: d, source: source)
    }

    public static func == (a: Recipe, b: Recipe) -> Bool { a.values == b.values }
}

/// Levenshtein distance, for "did you mean".
public func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    var row = Array(0...b.count)
    for i in 1...max(a.count, 1) where !a.isEmpty {
        var prev = row[0]; row[0] = i
        for j in 1...max(b.count, 1) where !b.isEmpty {
            let cur = row[j]
            row[j] = min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] == b[j - 1] ? 0 : 1))
            prev = cur
        }
    }
    return row[b.count]
}
